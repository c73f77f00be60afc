"""Deepfake Lens — entry page (streamlit run Home.py)."""
from __future__ import annotations

import streamlit as st

from core.models.registry import get_spec, list_detectors
from ui.analysis import ensemble_keys, run_detectors, stored
from ui.figures import ensemble_bar
from ui.state import init_state
from ui.status import status_table
from ui.verdict import current_assessment, render_headline, rule_picker
from ui.widgets import image_input, show_image, sidebar_settings

st.set_page_config(page_title="Deepfake Lens", page_icon=":material/search:", layout="wide")
init_state()
sidebar_settings()
with st.sidebar:
    rule_picker()               # the same choice as on the Ensemble page (shared session key)

st.title("Deepfake Lens")
whole = [d for d in list_detectors() if get_spec(d).coverage.content != "faces"]
st.markdown(
    "Deepfake Lens tells you whether an image is more likely **camera-made or AI-generated**, and whether a "
    f"**face was swapped**. It runs {len(whole)} detectors of AI-generated images ({', '.join(whole)}) and a "
    "face-swap classifier on CPU, each exactly as its paper's code, and gives a **graded assessment** — strong, "
    "moderate or weak evidence, or inconclusive — with its reasons. Every number comes with what the model saw, "
    "so you can judge how far to trust it."
)

st.subheader("Detectors")
table = status_table()
n_ready = int((table["status"] == "installed").sum())
st.markdown(f"**{n_ready} of {len(table)} detectors ready.** Each uses the variant set in the sidebar (by default "
            "the installed one). Detectors without weights are never run — no verdict comes from missing or random "
            "weights.")
st.table(table.set_index("detector"))          # a static table wraps long text: no column is cut off
st.page_link("pages/5_Models.py", label="Install or manage weights → Models", icon=":material/inventory_2:")
st.page_link("pages/6_Forensics.py", label="No weights yet? Forensic evidence works without them → Forensics",
             icon=":material/troubleshoot:")

st.subheader("Analyse an image")
picked = image_input("home")
keys, missing = ensemble_keys()
face_key = next((k for k in keys if k.startswith("FACE:")), None)
if picked is not None:
    cur, img = picked
    left, right = st.columns([2, 3])
    with left:
        show_image(img, cur)
    with right:
        if not keys:
            st.info("No detector weights are installed yet, so no verdict can be given. Install weights on the "
                    "Models page; the Face Grad-CAM page still finds faces without them.")
        elif st.button(f"Analyse with the {len(keys)} installed detector(s)", type="primary", key="home.run"):
            run_detectors(cur, img, keys)
        if stored(cur.sha256):
            assessment, ens, results = current_assessment(cur)
            render_headline(assessment, ens)
            if ens.votes:
                st.plotly_chart(ensemble_bar(ens), key="home.chart")
            face = stored(cur.sha256).get(face_key) if face_key else None
            if face is not None:
                st.write(f"**Faces** (face-swap classifier, no vote above): {len(face.faces)} found; most "
                         f"suspicious face P(fake) {face.p_fake:.2f} ({face.label}) — see Face Grad-CAM."
                         if face.ok else "**Faces:** no face found, so the face-swap classifier says nothing here.")
            st.page_link("pages/2_Ensemble.py", label="Details, rules and the vote → Ensemble",
                         icon=":material/balance:")

with st.expander("Limits — read before trusting a verdict"):
    st.markdown(
        "- Detectors are trained on specific generators; new generators can fool them.\n"
        "- Images recompressed by social networks (resized, JPEG) lose the traces detectors rely on: on TrueFake, "
        "NPR's fake recall falls to about 0 after sharing. Prefer the original file.\n"
        "- Heatmaps (Grad-CAM) show where a model looked, not which pixels were manipulated.\n"
        "- Large images are centre-cropped to 1024×1024 for the full-resolution detectors; the crop is shown.\n"
        "- No detector is calibrated out of the box: a probability is shown only with a calibration profile "
        "fitted on your own labelled images (`python -m core calibrate`).\n"
        "- A verdict is evidence, not proof: combine it with provenance and context."
    )
