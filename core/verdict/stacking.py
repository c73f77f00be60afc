"""Learned fusion (stacking): a logistic regression over the detectors' calibrated logits.

The inputs are calibrated logits (``logit`` of each detector's calibrated P(fake)), so the detectors' very
different raw scales (R50_TF's squared distances in the tens, CLIP-D's log-likelihood ratios near zero) no longer
matter. A detector that did not score an image (no weights, failed, not in the CSV) enters as 0 (no evidence)
plus a "missing" indicator with its own coefficient, so the fusion stays defined when some detectors are absent.
Fitting, with cross-validation, is done by :func:`core.verdict.calibration.fit_profile`; this module holds the
fitted model and its arithmetic. No torch, no streamlit.

Example:
    >>> stacker.predict({"CLIP-D:original": 2.1, "NPR:original": -0.3})
    0.83
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from core.convert import safe_logit, sigmoid
from core.errors import ProfileError

P_CLIP = 1e-4                       # calibrated probabilities are kept in [P_CLIP, 1 - P_CLIP] ...
Z_CLIP = float(safe_logit(1.0 - P_CLIP))   # ... so a calibrated logit is finite (|z| <= 9.21)


def calibrated_logit(p: np.ndarray | float) -> np.ndarray | float:
    """``logit`` of a calibrated probability clipped to [P_CLIP, 1 - P_CLIP] (NaN stays NaN)."""
    arr = np.asarray(p, dtype=np.float64)
    out = np.where(np.isfinite(arr), safe_logit(np.clip(np.nan_to_num(arr, nan=0.5), P_CLIP, 1 - P_CLIP)), np.nan)
    return float(out) if out.ndim == 0 else out


def design(z: np.ndarray) -> np.ndarray:
    """Features of a (rows × inputs) matrix of calibrated logits (NaN = missing): the logits with missing set to
    0, then one missing-indicator column per input."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    missing = ~np.isfinite(z)
    return np.hstack([np.where(missing, 0.0, np.clip(z, -Z_CLIP, Z_CLIP)), missing.astype(np.float64)])


def fit_logistic(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Fit the fusion on (rows × inputs) calibrated logits; returns (coefficients of :func:`design`, intercept).

    L2-regularised (scikit-learn's default C=1): with a handful of inputs and hundreds of images it hardly
    shrinks, and it keeps the weights finite when one detector separates the data perfectly.
    """
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit(design(z), np.asarray(y, dtype=np.int64))
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


@dataclass(frozen=True)
class Stacker:
    """A fitted learned fusion."""

    inputs: tuple[str, ...]           # score keys, in feature order ("ID:variant" or a CSV column)
    coef: tuple[float, ...]           # weight of each input's calibrated logit
    missing_coef: tuple[float, ...]   # added when that input is missing
    intercept: float
    threshold: float                  # P(fake) above which the fusion calls an image fake
    cv_auc: float | None              # cross-validated ROC-AUC of the fused P(fake)
    cv_log_loss: float | None
    cv_ece: float | None
    n: int                            # images it was fitted on

    def predict_many(self, z: np.ndarray) -> np.ndarray:
        """Fused P(fake) for a (rows × inputs) matrix of calibrated logits; NaN for a row with no input at all."""
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        x = design(z)
        w = np.asarray(self.coef + self.missing_coef, dtype=np.float64)
        p = np.asarray(sigmoid(x @ w + self.intercept), dtype=np.float64)
        return np.where(np.isfinite(z).any(axis=1), p, np.nan)

    def predict(self, z: Mapping[str, float]) -> float:
        """Fused P(fake) of one image from ``{input key: calibrated logit}`` (absent or NaN = missing)."""
        row = np.array([[float(z.get(k, math.nan)) for k in self.inputs]])
        return float(self.predict_many(row)[0])

    def used(self, z: Mapping[str, float]) -> tuple[str, ...]:
        """The inputs present for this image."""
        return tuple(k for k in self.inputs if math.isfinite(float(z.get(k, math.nan))))

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": list(self.inputs), "coef": list(self.coef), "missing_coef": list(self.missing_coef),
                "intercept": self.intercept, "threshold": self.threshold, "cv_auc": self.cv_auc,
                "cv_log_loss": self.cv_log_loss, "cv_ece": self.cv_ece, "n": self.n}

    @classmethod
    def from_dict(cls, d: Any) -> "Stacker":
        """Validate a stored fusion (raises ProfileError naming the problem)."""
        try:
            inputs = tuple(str(k) for k in d["inputs"])
            coef = _floats(d["coef"], len(inputs))
            miss = _floats(d["missing_coef"], len(inputs))
            return cls(inputs, coef, miss, _finite(d["intercept"]), _finite(d["threshold"]),
                       _opt(d.get("cv_auc")), _opt(d.get("cv_log_loss")), _opt(d.get("cv_ece")), int(d.get("n", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"the profile's learned fusion is malformed ({exc}).") from None


def _finite(v: Any) -> float:
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{v!r} is not a finite number")
    return f


def _opt(v: Any) -> float | None:
    return None if v is None else _finite(v)


def _floats(values: Sequence[Any], n: int) -> tuple[float, ...]:
    if len(values) != n:
        raise ValueError(f"expected {n} numbers, got {len(values)}")
    return tuple(_finite(v) for v in values)


__all__ = ["Stacker", "design", "fit_logistic", "calibrated_logit", "P_CLIP", "Z_CLIP"]
