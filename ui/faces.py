"""Face page helpers: cached MTCNN detection, per-face scoring with Grad-CAM, and the labels that keep a face's two
numbers apart (face detection confidence from MTCNN, P(fake) from the classifier)."""
from __future__ import annotations

import math
from collections.abc import Sequence

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


DETECTION = "face detection confidence"
P_FAKE = "P(fake): face swapped"
HELP = {DETECTION: "MTCNN's confidence that the box holds a face (not a P(fake)).",
        P_FAKE: "The face classifier's probability that this face was swapped (uncalibrated)."}


def face_boxes(faces: Sequence[FaceResult], threshold: float | None) -> tuple[list[str], list[str]]:
    """Box labels and colours: P(fake) and its verdict when the faces were scored (``threshold`` set), else the
    face detection confidence, named as such so it is never read as a P(fake)."""
    labels, colours = [], []
    for f in faces:
        if threshold is None:
            labels.append(f"#{f.index} face detection confidence {f.detection_prob:.2f}")
            colours.append("#facc15")
        else:
            fake = f.p_fake > threshold
            labels.append(f"#{f.index} P(fake) {f.p_fake:.3f} {'FAKE' if fake else 'real'}")   # 0.503, not "0.50 FAKE"
            colours.append("#dc2626" if fake else "#16a34a")
    return labels, colours


def face_rows(faces: Sequence[FaceResult], threshold: float | None) -> list[dict]:
    """One row per face with its two different numbers in two named columns (P(fake) only when scored)."""
    rows = []
    for f in faces:
        scored = threshold is not None and math.isfinite(f.p_fake)
        rows.append({"face": f"#{f.index}", DETECTION: round(f.detection_prob, 3),
                     P_FAKE: round(f.p_fake, 3) if scored else None,
                     "verdict": ("FAKE (swapped)" if f.p_fake > threshold else "real") if scored
                     else "not scored (no classifier weights)"})
    return rows
