"""Face page helpers: cached MTCNN detection, per-face scoring with Grad-CAM, and the labels that keep a face's two
numbers apart (face detection confidence from MTCNN, P(fake) from the classifier)."""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import streamlit as st
from PIL import Image

from core.errors import DeepfakeLensError
from core.models.detectors.face import find_faces
from core.results import DetectionResult, FaceResult
from ui.gradcam import cached, read_only, result_key, shared
from ui.models import get_detector


def detect_faces(sha: str, image: Image.Image) -> list[FaceResult]:
    """MTCNN boxes for an image (works without classifier weights), computed once per image bytes and shared by
    every session."""
    return cached(("mtcnn", sha), lambda: list(find_faces(image)))


def faces_found(sha: str) -> bool:
    """Whether MTCNN already ran on this image (on this server)."""
    return shared().get(("mtcnn", sha)) is not None


def _frozen(res: DetectionResult) -> DetectionResult:
    """The result with read-only per-face maps: one stored object is read by every session."""
    faces = tuple(replace(f, heatmap=read_only(f.heatmap)) if f.heatmap is not None else f for f in res.faces)
    return replace(res, faces=faces)


def faces_cached(key: str, sha: str) -> bool:
    """Whether scores and Grad-CAM of this image by this detector (weights, precision) are already stored."""
    k = result_key("faces", key, sha)
    return k is not None and shared().get(k) is not None


def score_faces(key: str, sha: str, image: Image.Image, status: Any = None) -> DetectionResult | None:
    """Classifier scores and Grad-CAM per face, computed once per image bytes, weights and precision and shared
    by every session (a new session on the same photo no longer waits half a minute); None without weights.

    Args:
        key: the face detector's ``ID:variant``.
        sha: the image bytes' sha256.
        image: the decoded image.
        status: an ``st.status`` box to report the steps in (optional).
    """
    store_key = result_key("faces", key, sha)
    if store_key is None:
        return None

    def compute() -> DetectionResult:
        say = status.update if status is not None else (lambda **_: None)
        t0 = time.perf_counter()
        say(label=f"Loading the face classifier {key} (slow only on its first use on this server)…")
        det, why = get_detector(key)
        if det is None:
            raise DeepfakeLensError(why)
        n = len(detect_faces(sha, image))
        per_face = shared().get(("faces.seconds_per_face", key))
        eta = f" — about {per_face * n:.0f} s, from the last image" if per_face else ""
        say(label=f"Scoring {n} face(s) and computing Grad-CAM for each{eta}…")
        t1 = time.perf_counter()
        res = det.predict_faces(image, with_cam=True)
        shared().put(("faces.seconds_per_face", key), (time.perf_counter() - t1) / max(n, 1))
        if status is not None:
            st.write(f"✓ {n} face(s) scored with Grad-CAM in {time.perf_counter() - t0:.1f} s; kept for every "
                     "session on this server, so this image opens at once next time.")
        return _frozen(res)
    return cached(store_key, compute)


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
