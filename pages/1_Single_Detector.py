"""Single detector: what one model says about one image, what it saw, and where it looked."""
from __future__ import annotations

import json

import streamlit as st

from core.errors import DeepfakeLensError
from core.models.registry import get_spec, list_detectors
from ui.analysis import stored
from ui.figures import draw_boxes, p_fake_gauge_text
from ui.forensics_views import render_probe, render_reasons, result_doubts
from ui.gradcam import show_explanation
from ui.models import apply_threads, availability, get_detector, variant_choice, variant_label, variants_of
from ui.state import init_state
from ui.verdict import render_calibrated
from ui.widgets import image_input, show_image, sidebar_settings

st.set_page_config(page_title="Single detector · Deepfake Lens", page_icon=":material/biotech:", layout="wide")
init_state()
sidebar_settings()
st.title("Single detector")

det_ids = list_detectors()
ready = {d for d in det_ids if availability(variant_choice(d)).ready}
if st.session_state.get("single.detector") not in det_ids:        # a new session opens on a runnable detector
    st.session_state["single.detector"] = next((d for d in det_ids if d in ready), det_ids[0])
c1, c2 = st.columns(2)
det_id = c1.selectbox("Detector", det_ids, key="single.detector",
                      format_func=lambda d: d if d in ready else f"{d} (no weights)")
vkey = f"single.variant.{det_id}"              # one per detector: a variant never carries over to another one
st.session_state.setdefault(vkey, variant_choice(det_id).split(":", 1)[1])
variant = c2.selectbox("Variant", variants_of(det_id), key=vkey, format_func=lambda v: variant_label(det_id, v))
spec = get_spec(det_id, variant)
av = availability(spec.key)
with st.expander(f"Model card — {spec.card.title or spec.key}"):
    st.markdown(f"**Paper:** {spec.card.paper}  \n**Code:** {spec.card.code}  \n**Licence:** {spec.card.licence}  \n"
                f"**Training data:** {spec.card.training_data}  \n**Threshold:** p_fake > {spec.threshold}")
    if spec.card.notes:
        st.caption(spec.card.notes)
if not av.ready:
    st.warning(f"**{spec.key}: {av.state}.** {av.message}")
    st.page_link("pages/5_Models.py", label="Install weights → Models", icon=":material/inventory_2:")

picked = image_input("single")
if picked is None or not av.ready:
    st.stop()
cur, img = picked
results = stored(cur.sha256)
if st.button(f"Run {spec.key}", type="primary", key="single.run"):
    det, why = get_detector(spec.key)
    if det is None:
        st.error(why)
    else:
        apply_threads()
        try:
            with st.spinner(f"Running {spec.key}…", show_time=True):
                results[spec.key] = det.predict(img)
        except DeepfakeLensError as exc:
            st.error(str(exc))
res = results.get(spec.key)
left, right = st.columns([3, 2])
with left:
    if res is not None and res.crop_box is not None:
        show_image(img, cur, "box = region the model analysed",
                   shown=draw_boxes(img, [res.crop_box], ["analysed region"]))
    else:
        show_image(img, cur)
if res is None:
    right.info("Press the button to score this image.")
    st.stop()
with right:
    if not res.ok:
        st.info(res.details.get("message", "No verdict for this image."))
    else:
        colour = "red" if res.label == "fake" else "green"
        st.markdown(f"## :{colour}[{res.label.upper()}]")
        m1, m2 = st.columns(2)
        m1.metric("P(fake)", p_fake_gauge_text(res.p_fake),
                  help="The detector's own score (sigmoid of its logit): uncalibrated. A calibration profile "
                       "chosen in the sidebar adds a calibrated P(fake) below.")
        m2.metric("Logit (positive = fake)", f"{res.logit:+.3f}")
        m3, m4 = st.columns(2)
        m3.metric("Threshold", f"{res.threshold:.2f}")
        m4.metric("Time", f"{res.elapsed_s:.2f} s")
    if res.details.get("precision") == "bf16":
        st.caption("Computed in fast mode (bfloat16); turn it off in the sidebar for the faithful float32 score.")
    st.markdown(f"**Model input:** {res.input_size[0]}×{res.input_size[1]}"
                f"{' (resampled)' if res.resized else ' (no resampling)'}  \n**Preprocessing:** {res.preprocessing}")
    st.caption(f"Weights sha256: `{res.weights_sha256}`")
    render_calibrated(res)
    render_reasons(result_doubts(cur, res))
    st.download_button("Download result (JSON)", json.dumps(res.to_dict(), indent=1), f"{spec.key}.json",
                       "application/json", key="single.download")
    det, _ = get_detector(spec.key)
    show_cam = det is not None and det.explainable and st.checkbox("Show Grad-CAM (where the model looked)",
                                                                   key="single.cam")
if show_cam:        # full width; computed once per image and weights, the sliders only re-blend (ui.gradcam)
    show_explanation(spec.key, cur.sha256, img, "single.cam")
with st.expander("Robustness probe — does the verdict survive recompression, resizing, blur?"):
    render_probe(cur, img, [spec.key], key_prefix="single")
