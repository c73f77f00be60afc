"""Face Grad-CAM: every face MTCNN finds, each scored by the face classifier with a Grad-CAM overlay."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import DeepfakeLensError
from core.models.registry import get_spec
from ui.faces import (
    DETECTION,
    HELP,
    P_FAKE,
    detect_faces,
    face_boxes,
    face_rows,
    faces_cached,
    faces_found,
    score_faces,
)
from ui.figures import draw_boxes, p_fake_gauge_text
from ui.gradcam import CamItem, compare
from ui.models import availability, variant_choice
from ui.state import init_state
from ui.widgets import image_input, show_image, sidebar_settings

st.set_page_config(page_title="Face Grad-CAM · Deepfake Lens", page_icon=":material/face:", layout="wide")
init_state()
sidebar_settings()
st.title("Face Grad-CAM")
st.caption("MTCNN finds every face; each face is classified as swapped (fake) or real by an InceptionResnetV1 "
           "trained on FaceForensics++ crops, and Grad-CAM shows which parts of the face drove the score. Two "
           "different numbers appear below: the **face detection confidence** (how sure MTCNN is that a box holds "
           "a face) and **P(fake)** (the classifier's score that the face was swapped).")

key = variant_choice("FACE")
av = availability(key)
if not av.ready:
    st.warning(f"**{get_spec(key).key}: {av.state}.** Faces are still located below; the classifier part needs "
               f"its weights. {av.message}")
picked = image_input("face")
if picked is None:
    st.stop()
cur, img = picked
steps = st.empty()          # the steps' progress boxes, removed once every step has succeeded
failed = False
with steps.container():
    faces = detect_faces(cur.sha256, img) if faces_found(cur.sha256) else None
    if faces is None:
        with st.status("Finding faces (MTCNN)…", expanded=False) as box:
            faces = detect_faces(cur.sha256, img)
            box.update(label=f"Found {len(faces)} face(s)", state="complete")
    scored = None
    if faces and av.ready:
        if faces_cached(key, cur.sha256):
            scored = score_faces(key, cur.sha256, img)
        else:
            with st.status("Scoring faces…", expanded=True) as box:
                try:
                    scored = score_faces(key, cur.sha256, img, box)
                    box.update(label=f"Scored {len(scored.faces)} face(s) with Grad-CAM", state="complete",
                               expanded=False)
                except DeepfakeLensError as exc:
                    failed = True
                    box.update(label="The face classifier could not run", state="error")
                    st.error(str(exc))
if not failed:
    steps.empty()
if not faces:
    show_image(img, cur)
    st.info("No face found in this image.")
    st.stop()
shown = scored.faces if scored else faces
left, right = st.columns(2)
with right:
    st.markdown(f"**{len(faces)} face(s) found**")
    # the P(fake) threshold exists only where there is a P(fake): never beside detection confidences alone
    threshold = st.slider("Verdict threshold on P(fake) (face swapped)", 0.05, 0.95,
                          float(get_spec(key).threshold), 0.05, key="face.threshold") if scored else None
    st.dataframe(pd.DataFrame(face_rows(shown, threshold)), hide_index=True, key="face.table",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f", help=HELP[c])
                                for c in (DETECTION, P_FAKE)})
labels, colours = face_boxes(shown, threshold)
with left:
    show_image(img, cur, shown=draw_boxes(img, [f.box for f in shown], labels, colours))
    st.caption("Boxes: faces found by MTCNN, numbered; label and colour = P(fake) and the verdict at the "
               "threshold" if scored else "Boxes: faces found by MTCNN, numbered")
if scored is None:
    right.caption("The numbers on the boxes are each face's face detection confidence (not P(fake)): whether a "
                  "face was swapped needs the classifier's weights.")
    st.stop()
with right:
    cols = st.columns(min(3, len(scored.faces)))
    for i, f in enumerate(scored.faces):
        verdict = "FAKE" if f.p_fake > threshold else "REAL"
        cols[i % len(cols)].metric(f"Face #{f.index} P(fake)", p_fake_gauge_text(f.p_fake), verdict,
                                   delta_color="inverse" if verdict == "FAKE" else "normal")
st.subheader("Grad-CAM: where the classifier looked in each face")
st.caption("Computed once per image (and shared with other sessions); the view, opacity and swipe sliders only "
           "re-blend the stored maps.")
compare([CamItem(f"face #{f.index} · P(fake) {f.p_fake:.3f} · detection confidence {f.detection_prob:.3f}",
                 img.crop(f.crop_box), f.heatmap) for f in scored.faces if f.heatmap is not None], "face.cam",
        default_view="Side by side")
