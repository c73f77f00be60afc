"""Numeric and JSON conversions shared by every layer: the one home of ``sigmoid``, ``safe_logit`` and
``to_jsonable``. Imports nothing of ours and no torch.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def sigmoid(z: np.ndarray | float) -> np.ndarray | float:
    """Numerically safe logistic function on a float or an array (NaN stays NaN).

    Example:
        >>> sigmoid(0.0)
        0.5
    """
    arr = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(arr))
    out = np.where(arr >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return float(out) if out.ndim == 0 else out


def safe_logit(p: np.ndarray | float) -> np.ndarray | float:
    """``log(p / (1 - p))`` with p clipped to [1e-12, 1 - 1e-12] (so 0 and 1 stay finite and ordered)."""
    arr = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0 - 1e-12)
    out = np.log(arr) - np.log1p(-arr)
    return float(out) if out.ndim == 0 else out


def is_finite_number(x: Any) -> bool:
    """True for a real, finite int/float (numpy scalars included); False for NaN, ±inf, None and the rest."""
    try:
        return x is not None and not isinstance(x, bool) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def to_jsonable(value: Any) -> Any:
    """Plain JSON types from tuples, mappings, numpy scalars and arrays; NaN and ±inf become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return to_jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    return value
