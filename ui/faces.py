"""Face page helpers: cached MTCNN detection and per-face scoring with Grad-CAM."""
from __future__ import annotations

import streamlit as st
from PIL import Image

from core.models.detectors.face import find_faces
from core.results import DetectionResult, FaceResult
from ui.models import get_detector


@st.cache_data(max_entries=16, show_spinner="Finding faces (MTCNN)…")
def detect_faces(sha: str, _image: Image.Image) -> list[FaceResult]:
    """MTCNN boxes for an image (works without classifier weights); cached by image hash."""
    return find_faces(_image)


def score_faces(key: str, sha: str, image: Image.Image) -> DetectionResult | None:
    """Classifier scores and Grad-CAM per face, kept in session state; None when the weights are missing."""
    store = st.session_state.setdefault("faces.results", {})
    if (key, sha) in store:
        return store[(key, sha)]
    det, _ = get_detector(key)
    if det is None:
        return None
    with st.spinner("Scoring faces and computing Grad-CAM…"):
        store[(key, sha)] = det.predict_faces(image, with_cam=True)
    return store[(key, sha)]
