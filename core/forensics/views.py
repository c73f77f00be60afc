"""Whole-image pixel views that need no learned weights: NPR residual, error level analysis (ELA) and noise.

Each view analyses **every pixel** of the image, working in horizontal strips so that its memory does not grow
with the image, and returns a map for display that is at most :data:`MAX_SIDE` pixels on its longer side. When
the map had to be shrunk, ``scale`` says by how much and ``coverage`` says so in one sentence; the statistics
always cover the whole image. (The frequency view lives in :mod:`core.forensics.frequency`.)
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from core.errors import BadImage
from core.forensics.common import (
    MAX_SIDE,
    MapMode,
    _round,
    check_pixels,
    coverage_sentence,
    display_scale,
    hist_percentile,
    pool_mean,
    strips,
)


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


def _whole(image: Image.Image) -> tuple[int, int, int, int]:
    return 0, 0, image.width, image.height


@dataclass(frozen=True, kw_only=True)
class _WholeImageView:
    """How a whole-image view was analysed and how its map is shown (shared by the three views)."""

    scale: int = 1                   # the map is 1/scale of the image (1 = every pixel shown)
    coverage: str = ""               # one sentence: what was analysed and how the map is shown
    region: tuple[int, int, int, int] = (0, 0, 0, 0)   # (left, top, right, bottom) analysed: the whole image

    @property
    def map_mode(self) -> MapMode:
        """How to render the map: signed at full scale, a magnitude once blocks were averaged."""
        return "signed" if self.scale == 1 else "magnitude"

    def _shown(self) -> dict[str, Any]:
        return {"scale": self.scale, "coverage": self.coverage, "region": list(self.region)}


# ----------------------------------------------------------------------------------------------- NPR residual

@dataclass(frozen=True)
class NPRView(_WholeImageView):
    """NPR residual x − up(down(x)) (nearest neighbour, factor 2; Tan et al. CVPR 2024), in pixel units 0–255."""

    residual: np.ndarray = field(compare=False, repr=False)   # map: signed mean over RGB, or mean |r| when scaled
    mean_abs: float                  # mean |r| over the pixels that are not copied (3 of each 2×2 block)
    std: float
    max_abs: float
    zero_fraction: float             # share of those pixels whose residual is exactly 0 in every channel
    phase_mean_abs: tuple[float, float, float, float]   # mean |r| for the grid offsets (0,0), (0,1), (1,0), (1,1)
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"mean_abs": _round(self.mean_abs), "std": _round(self.std), "max_abs": _round(self.max_abs),
                "zero_fraction": _round(self.zero_fraction), "phase_mean_abs": [_round(v) for v in self.phase_mean_abs],
                "summary": self.summary, **self._shown()}


def npr_residual(x: np.ndarray) -> np.ndarray:
    """x − up2(down2(x)) with nearest interpolation on an H×W(×C) array with even H and W.

    ``down2`` keeps the top-left pixel of each 2×2 block (nearest, scale 0.5) and ``up2`` repeats it, so the
    residual is 0 at those pixels and the difference to that pixel elsewhere.
    """
    d = x[::2, ::2]
    return x - np.repeat(np.repeat(d, 2, axis=0), 2, axis=1)


class _NPRSums:
    """Running sums of |r| over the non-copied pixels of one 2×2 grid offset (one pass over strips)."""

    def __init__(self) -> None:
        self.n = self.zeros = 0
        self.total = self.squares = self.max = 0.0

    def add(self, r: np.ndarray, full: bool) -> np.ndarray:
        # the copied pixels (top-left of each 2×2 block) are 0 by construction, so sums over every pixel equal
        # sums over the others and no mask (a copy of the strip) is needed; only the counts leave them out
        absr = np.abs(r)
        h, w = r.shape[:2]
        copied = (h // 2) * (w // 2)
        self.n += (h * w - copied) * r.shape[2]
        self.total += float(absr.sum(dtype=np.int64))
        if full:
            self.squares += float(np.square(absr, dtype=np.int32).sum(dtype=np.int64))
            self.max = max(self.max, float(absr.max(initial=0)))
            self.zeros += int((absr.max(axis=2) == 0).sum()) - copied
        return absr

    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")


def _npr_offset(img: Image.Image, dy: int, dx: int, scale: int) -> tuple[_NPRSums, np.ndarray | None]:
    """Sums for one grid offset (strip by strip, so memory stays bounded); for offset (0, 0) also the map."""
    sh, sw = ((img.height - dy) // 2) * 2, ((img.width - dx) // 2) * 2
    sums, parts = _NPRSums(), []
    if sh < 2 or sw < 2:
        return sums, None
    full = (dy, dx) == (0, 0)
    for top, bottom in strips(sh, sw * 3, _lcm(2, scale)):
        x = np.asarray(img.crop((dx, dy + top, dx + sw, dy + bottom)), dtype=np.int16)
        r = npr_residual(x)
        absr = sums.add(r, full)
        if full:
            parts.append(r.mean(axis=2) if scale == 1 else pool_mean(absr.mean(axis=2), scale))
    return sums, (np.vstack(parts).astype(np.float32) if full else None)


def _npr_summary(mean_abs: float, zero: float, phases: list[float]) -> str:
    if mean_abs < 0.5 or zero > 0.9:
        return (f"The NPR residual is almost zero (mean |r| {mean_abs:.2f}, {zero:.0%} exact zeros): neighbouring "
                "pixels repeat in 2×2 blocks, as after 2× nearest-neighbour up-sampling.")
    finite = [p for p in phases if math.isfinite(p)]
    ratio = (max(finite) / min(finite)) if finite and min(finite) > 0 else float("inf")
    return (f"NPR residual mean |r| {mean_abs:.2f} (0–255 scale), {zero:.0%} exact zeros; "
            + ("similar across the four 2×2 grid offsets: no 2×2 block structure."
               if ratio < 1.5 else "it differs across 2×2 grid offsets: a shifted block structure may be present."))


def npr_view(image: Image.Image, *, max_side: int = MAX_SIDE) -> NPRView:
    """The NPR residual of the whole image (cropped to even size), its statistics and a map for display.

    Args:
        image: RGB image within the pixel limit.
        max_side: the longest side of the returned map; larger images are shown as the mean |r| of blocks.

    Raises:
        BadImage: smaller than 2×2 or above the pixel limit.
    """
    check_pixels(*image.size)
    img = image if image.mode == "RGB" else image.convert("RGB")
    h, w = img.height - img.height % 2, img.width - img.width % 2
    if h < 2 or w < 2:
        raise BadImage("<image>", "is too small for the NPR residual (2×2 minimum).")
    scale = display_scale(w, h, max_side)
    phases, res0, first = [], None, _NPRSums()
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        sums, residual = _npr_offset(img, dy, dx, scale)
        phases.append(sums.mean())
        if residual is not None:
            res0, first = residual, sums
    mean_abs = first.mean()
    std = math.sqrt(max(0.0, first.squares / first.n - mean_abs ** 2)) if first.n else float("nan")
    zero = first.zeros / (first.n / 3) if first.n else float("nan")     # n counts every channel
    return NPRView(res0, mean_abs, std, first.max, zero, tuple(phases),  # type: ignore[arg-type]
                   _npr_summary(mean_abs, zero, phases), scale=scale,
                   coverage=coverage_sentence(image.width, image.height, scale, "mean |r|"), region=_whole(image))


# ----------------------------------------------------------------------------------------------- ELA

@dataclass(frozen=True)
class ELAView(_WholeImageView):
    """Error level analysis: how much each pixel changes when the image is re-saved as JPEG at ``quality``."""

    quality: int
    error: np.ndarray = field(compare=False, repr=False)   # map: max |difference| over RGB (0–255), block means
    mean: float
    p99: float
    max: float
    summary: str

    @property
    def map_mode(self) -> MapMode:
        """How to render ``error``: it is never negative."""
        return "magnitude"

    def to_dict(self) -> dict[str, Any]:
        return {"quality": self.quality, "mean": _round(self.mean), "p99": _round(self.p99),
                "max": _round(self.max), "summary": self.summary, **self._shown()}


def _ela_strip(img: Image.Image, top: int, bottom: int, quality: int) -> np.ndarray:
    """|strip − JPEG(strip)|, max over RGB, as uint8. Strips start on the 8-pixel grid and JPEG is 4:4:4, so
    re-saving strip by strip gives exactly the pixels of re-saving the whole image (every 8×8 block is coded alone).
    """
    strip = img.crop((0, top, img.width, bottom))
    buf = io.BytesIO()
    strip.save(buf, format="JPEG", quality=int(quality), subsampling=0)
    again = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    diff = np.abs(np.asarray(strip, dtype=np.int16) - np.asarray(again, dtype=np.int16))
    return diff.max(axis=2).astype(np.uint8)


def ela_view(image: Image.Image, quality: int = 90, *, max_side: int = MAX_SIDE) -> ELAView:
    """Re-save the whole image as JPEG at ``quality`` (4:4:4, so chroma subsampling does not dominate) and measure
    the change of every pixel.

    Regions pasted from another source or retouched often re-compress differently from the rest. Uniform error
    levels prove nothing; strong edges and textures always show higher error.

    Args:
        image: RGB image within the pixel limit.
        quality: JPEG quality 1–100 of the re-save.
        max_side: the longest side of the returned map (larger images: mean error of each block).

    Raises:
        ValueError: quality outside 1–100.
        BadImage: above the pixel limit.
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be 1–100, got {quality}")
    check_pixels(*image.size)
    img = image if image.mode == "RGB" else image.convert("RGB")
    scale = display_scale(img.width, img.height, max_side)
    hist = np.zeros(256, dtype=np.int64)
    parts = []
    for top, bottom in strips(img.height, img.width * 3, _lcm(8, scale)):
        err = _ela_strip(img, top, bottom, quality)
        hist += np.bincount(err.ravel(), minlength=256)
        parts.append(pool_mean(err, scale))
    mean = float((hist * np.arange(256)).sum() / hist.sum())
    p99, mx = hist_percentile(hist, 99), float(np.flatnonzero(hist).max())
    summary = (f"Re-saving at JPEG quality {quality} changes pixels by {mean:.2f} on average (99th percentile "
               f"{p99:.0f}, max {mx:.0f}). Look for regions whose error level differs from similar texture "
               "elsewhere; edges are always brighter.")
    return ELAView(int(quality), np.vstack(parts), mean, p99, mx, summary, scale=scale,
                   coverage=coverage_sentence(img.width, img.height, scale, "mean error"), region=_whole(img))


# ----------------------------------------------------------------------------------------------- noise

@dataclass(frozen=True)
class NoiseView(_WholeImageView):
    """Noise residual (image minus its 3×3 median) and how evenly the noise level is spread."""

    residual: np.ndarray = field(compare=False, repr=False)    # map: signed luma residual, or mean |r| when scaled
    block_std: np.ndarray = field(compare=False, repr=False)   # grid of residual std per 32×32 block
    std: float
    inconsistency: float       # (95th − 5th percentile of block std) / median block std
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"std": _round(self.std), "inconsistency": _round(self.inconsistency), "summary": self.summary,
                "block": 32, **self._shown()}


def _noise_strip(image: Image.Image, top: int, bottom: int) -> np.ndarray:
    """Luma minus its 3×3 median for rows [top, bottom); one halo row each side gives the whole-image result."""
    t, b = max(0, top - 1), min(image.height, bottom + 1)
    grey = image.crop((0, t, image.width, b)).convert("L")
    r = np.asarray(grey, dtype=np.float32) - np.asarray(grey.filter(ImageFilter.MedianFilter(3)), dtype=np.float32)
    return r[top - t:r.shape[0] - (b - bottom)]


def _noise_summary(std: float, inc: float) -> str:
    if not math.isfinite(inc):
        return f"Noise residual std {std:.2f}; too small or too flat to compare noise levels across blocks."
    return (f"Noise residual std {std:.2f}; noise level varies by {inc:.2f}× its median across 32×32 blocks"
            + (" — uneven noise can betray pasted or synthesised regions (flat areas are naturally quieter)."
               if inc > 2.0 else "."))


def noise_view(image: Image.Image, *, max_side: int = MAX_SIDE, block: int = 32) -> NoiseView:
    """Noise residual of the whole image (luma minus its 3×3 median) and its standard deviation per block.

    Args:
        image: RGB image within the pixel limit.
        max_side: the longest side of the returned map (larger images: mean |residual| of each block).
        block: side of the blocks whose noise levels are compared.

    Raises:
        BadImage: above the pixel limit.
    """
    check_pixels(*image.size)
    w, h = image.size
    scale = display_scale(w, h, max_side)
    n, total, squares, parts, rows = 0, 0.0, 0.0, [], []
    bw = w // block
    for top, bottom in strips(h, w, _lcm(block, scale)):
        r = _noise_strip(image, top, bottom)
        n, total = n + r.size, total + float(r.sum(dtype=np.float64))
        squares += float(np.square(r, dtype=np.float64).sum())
        parts.append(r if scale == 1 else pool_mean(np.abs(r), scale))
        bh = r.shape[0] // block
        if bh and bw:
            rows.append(r[:bh * block, :bw * block].reshape(bh, block, bw, block).std(axis=(1, 3)))
    blocks = np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    med = float(np.median(blocks)) if blocks.size else 0.0
    inc = float((np.percentile(blocks, 95) - np.percentile(blocks, 5)) / med) if med > 0 else float("nan")
    std = math.sqrt(max(0.0, squares / n - (total / n) ** 2))
    return NoiseView(np.vstack(parts).astype(np.float32), blocks, std, inc, _noise_summary(std, inc), scale=scale,
                     coverage=coverage_sentence(w, h, scale, "mean |residual|"), region=(0, 0, w, h))


__all__ = ["NPRView", "ELAView", "NoiseView", "npr_residual", "npr_view", "ela_view", "noise_view"]
