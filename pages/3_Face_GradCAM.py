"""Face Grad-CAM: every face MTCNN finds, each scored by the face classifier with a Grad-CAM overlay."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.models.explain import CAVEAT
from core.models.registry import get_spec
from ui.faces import DETECTION, HELP, P_FAKE, detect_faces, face_boxes, face_rows, score_faces
from ui.figures import draw_boxes, heat_overlay, p_fake_gauge_text
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
faces = detect_faces(cur.sha256, img)
if not faces:
    show_image(img, cur)
    st.info("No face found in this image.")
    st.stop()
scored = score_faces(key, cur.sha256, img) if av.ready else None
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
    opacity = st.slider("Grad-CAM opacity", 0.0, 1.0, 0.45, 0.05, key="face.opacity")
    cols = st.columns(2)
    for i, f in enumerate(scored.faces):
        with cols[i % len(cols)]:
            crop = img.crop(f.crop_box)
            st.image(heat_overlay(crop, f.heatmap, opacity) if f.heatmap is not None else crop,
                     caption=f"face #{f.index} · face detection confidence {f.detection_prob:.3f}",
                     width="stretch")
            if f.heatmap is not None and float(f.heatmap.max()) == 0.0:
                st.caption("Empty map: nothing in this face pushed the model towards 'fake'.")
            verdict = "FAKE" if f.p_fake > threshold else "REAL"
            st.metric(f"Face #{f.index} P(fake)", p_fake_gauge_text(f.p_fake), verdict,
                      delta_color="inverse" if verdict == "FAKE" else "normal")
st.caption(CAVEAT)
