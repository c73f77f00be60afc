"""Shared pieces of the forensic views: limits, text cleaning, greyscale, strips, pooling and array → image."""
from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from PIL import Image

from core import settings
from core.errors import BadImage

# The frequency view analyses at most this many pixels per side (a centre crop: every spectrum then has the same
# frequency grid); the NPR, ELA and noise views analyse the whole image and *show* their map at most this large.
MAX_SIDE = 1024
PEAK_MIN = 1.5          # natural-log magnitude above the local median that counts as a periodic peak (≈ 4.5×)
STRIP_PIXELS = 2_000_000   # whole-image views work in horizontal strips of about this many pixels (bounded memory)

MapMode = Literal["signed", "magnitude", "stretch"]


def _round(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _text(v: Any, limit: int = 200) -> str:
    """A metadata value as one bounded, printable string (binary blobs become ``<N bytes>``)."""
    if isinstance(v, bytes):
        if v.startswith((b"ASCII\x00\x00\x00", b"UNICODE\x00")):      # EXIF UserComment
            v = v[8:].decode("utf-16" if v.startswith(b"UNICODE") else "ascii", "replace")
        elif len(v) > 64 or sum(c < 9 for c in v) > 2:
            return f"<{len(v)} bytes>"
        else:
            v = v.decode("latin-1")
    s = str(v)[:limit * 4].replace("\x00", "").strip()     # cut first: a 10 MB value is never copied whole
    return s if len(s) <= limit else s[:limit] + "…"


def check_pixels(width: int, height: int, what: str = "<image>") -> None:
    """Refuse an image above the pixel limit (``settings.max_pixels()``) with one sentence.

    Raises:
        BadImage: ``width × height`` exceeds the limit.
    """
    if width * height > settings.max_pixels():
        raise BadImage(what, f"is {width}×{height} pixels, above the {settings.max_pixels() / 1e6:.0f} MP limit this "
                             "tool analyses (set DEEPFAKE_LENS_MAX_PIXELS to raise it).")


def _grey(image: Image.Image) -> np.ndarray:
    """Luma (ITU-R BT.601, as JPEG uses) as float64."""
    a = np.asarray(image.convert("RGB"), dtype=np.float64)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


# ----------------------------------------------------------------------------------------------- whole-image maps

def display_scale(width: int, height: int, max_side: int = MAX_SIDE) -> int:
    """The integer factor by which a whole-image map is shrunk so that its longer side fits ``max_side``."""
    return max(1, math.ceil(max(width, height) / max(1, max_side)))


def strips(height: int, width: int, align: int) -> Iterator[tuple[int, int]]:
    """(top, bottom) row ranges covering ``height`` rows, each a multiple of ``align`` rows (but the last).

    Strips hold about :data:`STRIP_PIXELS` pixels, so a view's working memory does not grow with the image.
    """
    rows = max(align, (STRIP_PIXELS // max(1, width)) // align * align)
    for top in range(0, height, rows):
        yield top, min(height, top + rows)


def pool_mean(a: np.ndarray, scale: int) -> np.ndarray:
    """Mean of each ``scale``×``scale`` block of a 2-D array (ragged blocks at the right/bottom edge included)."""
    if scale == 1:
        return a.astype(np.float32)
    h, w = a.shape
    rows, cols = np.arange(0, h, scale), np.arange(0, w, scale)
    sums = np.add.reduceat(np.add.reduceat(a.astype(np.float64), rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, h)), np.diff(np.append(cols, w)))
    return (sums / counts).astype(np.float32)


def coverage_sentence(width: int, height: int, scale: int, pooled: str) -> str:
    """What a whole-image view analysed and how its map is shown (one sentence)."""
    s = f"Whole image ({width}×{height} px) analysed at full resolution"
    if scale == 1:
        return s + "."
    return s + f"; the map is shown at 1/{scale} scale ({pooled} of each {scale}×{scale}-pixel block)."


def hist_percentile(hist: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) of integer values given as a histogram of counts."""
    n = int(hist.sum())
    if n == 0:
        return float("nan")
    cum = np.cumsum(hist)
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    v_lo = int(np.searchsorted(cum, lo, side="right"))
    v_hi = int(np.searchsorted(cum, min(lo + 1, n - 1), side="right"))
    return float(v_lo + (v_hi - v_lo) * (pos - lo))


def to_image(arr: np.ndarray, mode: MapMode = "stretch", gain: float | None = None) -> Image.Image:
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
    lo, hi = display_range(a, mode)
    if mode == "magnitude" and gain is not None:
        out = np.clip(np.abs(a) * gain, 0, 255)
    elif mode == "magnitude":
        out = np.clip(np.abs(a) / (hi or 1.0), 0, 1) * 255
    else:
        out = np.clip((a - lo) / ((hi - lo) or 1.0), 0, 1) * 255
    return Image.fromarray(np.rint(out).astype(np.uint8), mode="L")


def display_range(arr: np.ndarray, mode: MapMode) -> tuple[float, float]:
    """The (low, high) values that :func:`to_image` maps to black and white (for a colour scale's labels)."""
    a = np.nan_to_num(np.asarray(arr, dtype=np.float64))
    if a.size == 0:
        return 0.0, 1.0
    if mode == "signed":
        s = float(np.percentile(np.abs(a), 99.5)) or 1.0
        return -s, s
    if mode == "magnitude":
        return 0.0, float(np.percentile(np.abs(a), 99.5)) or 1.0
    lo, hi = np.percentile(a, [0.5, 99.5])
    return float(lo), float(hi)


def map_image(view: Any) -> Image.Image:
    """The greyscale rendering of a view's map (``residual`` or ``error``) in the view's own ``map_mode``."""
    arr = getattr(view, "error", None)
    if arr is None:
        arr = view.residual
    return to_image(arr, getattr(view, "map_mode", "signed"))
