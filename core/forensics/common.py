"""Shared pieces of the forensic views: size limits, greyscale conversion and array → image."""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
from PIL import Image


# Views work on at most this many pixels per side (a centre crop), so a 50 MP photo costs the same as a 1 MP one
# and every spectrum has the same frequency grid resolution.
MAX_SIDE = 1024
PEAK_MIN = 1.5          # natural-log magnitude above the local median that counts as a periodic peak (≈ 4.5×)
DOUBLE_JPEG_MIN = 1.0   # double-quantisation score above which double compression is reported (see _dq_score)
RECOMPRESSED_QUALITY = 80   # quality estimates below this are called "strongly compressed" in the findings

# ----------------------------------------------------------------------------------------------- helpers


def _grey(image: Image.Image) -> np.ndarray:
    """Luma (ITU-R BT.601, as JPEG uses) as float64."""
    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _centre_crop(image: Image.Image, side: int = MAX_SIDE) -> tuple[Image.Image, tuple[int, int, int, int]]:
    w, h = image.size
    cw, ch = min(w, side), min(h, side)
    left, top = (w - cw) // 2, (h - ch) // 2
    box = (left, top, left + cw, top + ch)
    return (image.crop(box) if (cw, ch) != (w, h) else image), box


def _round(x: float, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def to_image(arr: np.ndarray, mode: Literal["signed", "magnitude", "stretch"] = "stretch",
             gain: float | None = None) -> Image.Image:
    """Render a 2-D float array as an 8-bit greyscale PIL image.

    Args:
        arr: the array (a residual, an error map or a log spectrum).
        mode: ``signed``: 0 is mid-grey, ±(99.5th percentile of |arr|) maps to black/white; ``magnitude``: 0 is black
            and ``gain`` (default: 255 / 99.5th percentile) scales |arr|; ``stretch``: the 0.5–99.5 percentile
            range maps to 0–255 (spectra).
        gain: multiplier for ``magnitude`` mode.

    Returns:
        A mode ``"L"`` image of the array's shape.
    """
    a = np.nan_to_num(np.asarray(arr, dtype=np.float64))
    if a.size == 0:
        return Image.new("L", (1, 1))
    if mode == "signed":
        s = float(np.percentile(np.abs(a), 99.5)) or 1.0
        out = 127.5 + 127.5 * np.clip(a / s, -1, 1)
    elif mode == "magnitude":
        g = gain if gain is not None else 255.0 / (float(np.percentile(np.abs(a), 99.5)) or 1.0)
        out = np.clip(np.abs(a) * g, 0, 255)
    else:
        lo, hi = np.percentile(a, [0.5, 99.5])
        out = np.clip((a - lo) / ((hi - lo) or 1.0), 0, 1) * 255
    return Image.fromarray(np.rint(out).astype(np.uint8), mode="L")


