"""Typed, frozen results: the only thing pages, the CLI and reports consume.

Convention everywhere: ``p_fake`` in [0, 1] and the raw ``logit`` with positive = fake.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from core.convert import to_jsonable

Label = Literal["real", "fake", "no_face"]


@dataclass(frozen=True)
class FaceResult:
    """One face found by MTCNN and scored by the face classifier."""

    index: int                                    # 0-based, in MTCNN's order (highest probability first)
    box: tuple[float, float, float, float]        # x1, y1, x2, y2 in original-image pixels (MTCNN float box)
    detection_prob: float                         # MTCNN confidence that this is a face
    landmarks: tuple[tuple[float, float], ...]    # 5 points (eyes, nose, mouth corners)
    logit: float = float("nan")                   # classifier logit, positive = fake; NaN without weights
    p_fake: float = float("nan")                  # sigmoid(logit)
    label: Literal["real", "fake", "unscored"] = "unscored"
    crop_box: tuple[int, int, int, int] = (0, 0, 0, 0)  # integer box actually cropped
    heatmap: np.ndarray | None = field(default=None, compare=False, repr=False)  # Grad-CAM on the crop, HxW in [0,1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the heatmap is left out)."""
        return to_jsonable({
            "index": self.index, "box": self.box, "detection_prob": self.detection_prob,
            "landmarks": self.landmarks, "logit": self.logit, "p_fake": self.p_fake,
            "label": self.label, "crop_box": self.crop_box,
        })


@dataclass(frozen=True)
class DetectionResult:
    """One detector's verdict on one image, with what the model actually saw."""

    detector_id: str                              # paper name, e.g. "NPR"
    variant: str                                  # training-data tag, e.g. "original" or "truefake"
    logit: float                                  # raw score, positive = fake (NaN when nothing was scored)
    p_fake: float                                 # sigmoid(logit) in [0, 1] (NaN when nothing was scored)
    label: Label                                  # "fake" iff p_fake > threshold; "no_face" for FACE without faces
    threshold: float                              # decision threshold on p_fake
    elapsed_s: float                              # wall time of preprocessing + forward
    image_size: tuple[int, int]                   # (W, H) of the RGB image given
    input_size: tuple[int, int]                   # (W, H) of the tensor the network saw
    crop_box: tuple[int, int, int, int] | None    # (left, top, right, bottom) in image pixels; None = whole image
    resized: bool                                 # True when the image was resampled before the network
    preprocessing: str                            # one line describing the transform
    weights_sha256: str | None = None             # checkpoint the score came from (None only in tests)
    details: Mapping[str, Any] = field(default_factory=dict)  # detector-specific numbers (P2G tasks, ...)
    faces: tuple[FaceResult, ...] = ()            # FACE only

    @property
    def ok(self) -> bool:
        """True when the result carries a verdict (False for 'no face found')."""
        return self.label in ("real", "fake")

    @property
    def has_score(self) -> bool:
        """True when the result carries a verdict with a finite p_fake and logit (a NaN/inf score never counts)."""
        return self.ok and math.isfinite(self.p_fake) and math.isfinite(self.logit)

    @property
    def key(self) -> str:
        """``ID`` or ``ID:variant``-style key used in tables."""
        return f"{self.detector_id}:{self.variant}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (NaN → null, tuples → lists)."""
        return to_jsonable({
            "detector_id": self.detector_id, "variant": self.variant, "logit": self.logit,
            "p_fake": self.p_fake, "label": self.label, "threshold": self.threshold,
            "elapsed_s": self.elapsed_s, "image_size": self.image_size, "input_size": self.input_size,
            "crop_box": self.crop_box, "resized": self.resized, "preprocessing": self.preprocessing,
            "weights_sha256": self.weights_sha256, "details": dict(self.details),
            "faces": [f.to_dict() for f in self.faces],
        })
