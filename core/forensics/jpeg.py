"""JPEG facts: quantisation tables, the IJG quality estimate and a double-compression score."""
from __future__ import annotations

import io
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin

from core import settings
from core.forensics.common import MAX_SIDE, _round

# The one home of the two JPEG decisions that the Forensics page, the case report and the abstention rules share.
RECOMPRESSED_QUALITY = 80   # an estimated quality below this counts as strongly compressed / recompressed
DOUBLE_JPEG_MIN = 1.0       # a double-quantisation score above this (0–2 scale) counts as double compression
DOUBLE_SCORE_MAX = 2.0      # the score is an L1 distance between two distributions: it never exceeds 2


def is_recompressed(quality: int | None) -> bool:
    """True when an estimated JPEG quality is below :data:`RECOMPRESSED_QUALITY`."""
    return quality is not None and quality < RECOMPRESSED_QUALITY


# Annex K tables of the JPEG standard (natural order), as libjpeg's jpeg_set_quality scales them.
_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])
_STD_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32)


def ijg_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's scaling of a base table to ``quality`` (1–100, baseline: values clipped to 1–255)."""
    q = min(100, max(1, int(quality)))
    scale = 5000 // q if q < 50 else 200 - 2 * q
    return np.clip((base * scale + 50) // 100, 1, 255)


def estimate_jpeg_quality(tables: Mapping[int, Any] | list) -> tuple[int | None, bool]:
    """(IJG-equivalent quality 1–100, exact match) for the file's quantisation tables (natural order).

    The quality whose libjpeg tables are closest (sum of absolute differences over the luminance table and,
    when present, the first chroma table) is returned; ``exact`` is True when they match exactly, i.e. the file
    was most likely written by libjpeg (Pillow, OpenCV, GIMP, most web tools) at that quality.
    """
    tabs = list(tables.values()) if isinstance(tables, Mapping) else list(tables)
    if not tabs or len(tabs[0]) != 64:
        return None, False
    luma = np.asarray(tabs[0], dtype=np.int64)
    chroma = np.asarray(tabs[1], dtype=np.int64) if len(tabs) > 1 and len(tabs[1]) == 64 else None
    best, best_err = None, None
    for q in range(1, 101):
        err = int(np.abs(ijg_table(_STD_LUMA, q) - luma).sum())
        if chroma is not None:
            err += int(np.abs(ijg_table(_STD_CHROMA, q) - chroma).sum())
        if best_err is None or err < best_err or (err == best_err and q > best):
            best, best_err = q, err
    return best, best_err == 0


_DCT = np.array([[math.sqrt((1 if k == 0 else 2) / 8) * math.cos((2 * n + 1) * k * math.pi / 16) for n in range(8)]
                 for k in range(8)])
_ZIGZAG = sorted(((u, v) for u in range(8) for v in range(8)),
                 key=lambda p: (p[0] + p[1], p[1] if (p[0] + p[1]) % 2 else p[0]))


def _open(data: bytes) -> Image.Image:
    """Open (not decode) a JPEG; Pillow's own bomb warning is ours to judge with :func:`settings.max_pixels`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data))


def _luma_crop(data: bytes, side: int = MAX_SIDE) -> np.ndarray | None:
    """The decoder's own Y plane, centre-cropped on the 8×8 grid to at most ``side`` pixels, as float64.

    Memory is bounded: the file is decoded as luma only (1 byte per pixel, never the 3-channel float copy), and
    only within the pixel limit. None for images above the limit, non-YCbCr JPEGs (CMYK) and decoding failures.
    """
    try:
        im = _open(data)
        w, h = im.size
        if w * h > settings.max_pixels():
            return None
        im.draft("L", im.size)            # libjpeg outputs the Y component only: no colour conversion, 1 B/px
        if im.mode != "L":
            return None
        ch, cw = min(h // 8 * 8, side), min(w // 8 * 8, side)
        if ch < 8 or cw < 8:
            return None
        top, left = ((h - ch) // 2) // 8 * 8, ((w - cw) // 2) // 8 * 8
        im.load()
        return np.asarray(im.crop((left, top, left + cw, top + ch)), dtype=np.float64)
    except Exception:  # noqa: BLE001 - the hint is optional; decoding problems are reported by core.io
        return None


def _dq_score(y: np.ndarray, qtable: np.ndarray, *, positions: int = 12, max_bin: int = 30) -> float | None:
    """Double-quantisation score of a JPEG's luma plane (Lukáš & Fridrich 2003; Popescu & Farid 2004).

    The luma plane is re-transformed with the 8×8 DCT on the file's own grid and divided by the file's quantiser.
    A singly compressed image gives smooth (Laplacian-like) histograms of those integer coefficients; a second
    compression at a different quality leaves periodic gaps and peaks. The score is, for the strongest of the
    first ``positions`` AC frequencies, the L1 distance between the histogram of |coefficient| (1..max_bin) and
    its 5-bin moving average, relative to the histogram's mass: 0 (smooth) to 2 (clipped there). Measured on
    skimage photos: single 0.2–0.8, double (lower then higher quality) 1.0–1.6. None when there are too few
    non-zero coefficients to judge.
    """
    ch, cw = y.shape
    b = y.reshape(ch // 8, 8, cw // 8, 8).transpose(0, 2, 1, 3) - 128.0
    coef = np.einsum("ij,abjk,lk->abil", _DCT, b, _DCT).reshape(-1, 8, 8)
    q = np.asarray(qtable, dtype=np.float64).reshape(8, 8)
    best = None
    for u, v in _ZIGZAG[1:1 + positions]:
        k = np.rint(coef[:, u, v] / q[u, v]).astype(np.int64)
        k = np.abs(k[(k != 0) & (np.abs(k) <= max_bin)])
        if k.size < 200:
            continue
        hist = np.bincount(k, minlength=max_bin + 1)[1:].astype(np.float64)
        hist /= hist.sum()
        smooth = np.convolve(np.pad(hist, 2, mode="edge"), np.ones(5) / 5, mode="valid")
        score = min(DOUBLE_SCORE_MAX, float(np.abs(hist - smooth).sum()))
        best = score if best is None else max(best, score)
    return best


@dataclass(frozen=True)
class JpegInfo:
    """JPEG quantisation tables, estimated quality and a double-compression hint."""

    is_jpeg: bool
    qtables: tuple[tuple[int, ...], ...] = ()     # natural (row-major) order, 64 values each
    quality: int | None = None                    # IJG-equivalent quality estimate
    standard_tables: bool = False                 # tables equal libjpeg's at that quality
    subsampling: str | None = None                # 4:4:4 | 4:2:2 | 4:2:0
    progressive: bool = False
    double_compression: bool | None = None        # None when it cannot be judged
    double_score: float | None = None             # 0 (smooth histograms) … 2; above DOUBLE_JPEG_MIN = double
    summary: str = ""

    @property
    def recompressed(self) -> bool:
        """A JPEG whose estimated quality is below :data:`RECOMPRESSED_QUALITY`."""
        return self.is_jpeg and is_recompressed(self.quality)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["qtables"] = [list(t) for t in self.qtables]
        d["double_score"] = _round(self.double_score, 3) if self.double_score is not None else None
        d["double_score_scale"] = {"min": 0.0, "max": DOUBLE_SCORE_MAX, "double_above": DOUBLE_JPEG_MIN}
        d["recompressed"] = self.recompressed
        return d


def _double_sentence(score: float | None, why_none: str) -> str:
    if score is None:
        return f" Double compression could not be judged ({why_none})."
    scale = f"score {score:.2f} on a 0–{DOUBLE_SCORE_MAX:g} scale, where above {DOUBLE_JPEG_MIN:g} suggests it"
    if score > DOUBLE_JPEG_MIN:
        return (f" Double compression likely: the DCT-coefficient histograms show periodic gaps ({scale}); the "
                "image was probably JPEG-compressed at least twice.")
    return f" No double-compression trace: the DCT-coefficient histograms are smooth ({scale})."


def jpeg_info(source: bytes | Image.Image) -> JpegInfo:
    """Quantisation tables, quality estimate and double-compression hint of a JPEG (``is_jpeg=False`` otherwise).

    Only the header is read for the tables; the double-compression score decodes the luma plane alone, and only
    for images within the pixel limit, so a tiny file that declares a huge image costs no more than that limit.

    Example:
        >>> jpeg_info(open("q60.jpg", "rb").read()).quality
        60
    """
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
    try:
        im = _open(data) if data is not None else source
    except Exception:  # noqa: BLE001
        return JpegInfo(False, summary="Not a readable image.")
    if im.format != "JPEG" or not getattr(im, "quantization", None):
        return JpegInfo(False, summary="Not a JPEG file: no quantisation tables.")
    tables = {k: list(v) for k, v in sorted(im.quantization.items())}
    quality, exact = estimate_jpeg_quality(tables)
    sampling = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JpegImagePlugin.get_sampling(im))
    progressive = bool(im.info.get("progressive") or im.info.get("progression"))
    score, why_none = None, "only the file's bytes can be judged"
    if data is not None:
        too_big = im.width * im.height > settings.max_pixels()
        y = None if too_big else _luma_crop(data)
        score = None if y is None else _dq_score(y, np.asarray(tables[min(tables)]))
        why_none = ("the image is above the pixel limit" if too_big else "the luma plane could not be decoded"
                    if y is None else "too few non-zero DCT coefficients")
    double = None if score is None else score > DOUBLE_JPEG_MIN
    how = "libjpeg's standard tables" if exact else "custom tables (camera or editor); nearest libjpeg quality"
    summary = (f"JPEG, estimated quality {quality} ({how})" + (f", {sampling} chroma" if sampling else "") + "."
               + _double_sentence(score, why_none))
    return JpegInfo(True, tuple(tuple(int(x) for x in t) for t in tables.values()), quality, exact, sampling,
                    progressive, double, score, summary)
