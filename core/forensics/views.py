"""Pixel views that need no learned weights: frequency spectra, NPR residual, error level analysis, noise."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from core.errors import BadImage
from core.forensics.common import MAX_SIDE, PEAK_MIN, _centre_crop, _grey, _round


@dataclass(frozen=True)
class SpectralPeak:
    """A periodic component found at a candidate period (2–8 px) of the spectrum."""

    fy: float                     # vertical frequency, cycles/pixel in [-0.5, 0.5]
    fx: float                     # horizontal frequency, cycles/pixel
    period_px: float              # 1 / |f| along the peak's direction
    strength: float               # natural-log magnitude above the local median
    direction: str                # horizontal | vertical | diagonal
    source: str                   # residual (linear high-pass) | energy (magnitude of pixel differences)

    def to_dict(self) -> dict[str, Any]:
        return {"fy": _round(self.fy), "fx": _round(self.fx), "period_px": _round(self.period_px, 3),
                "strength": _round(self.strength, 3), "direction": self.direction, "source": self.source}


@dataclass(frozen=True)
class FrequencyView:
    """Fourier views of the image's high-pass noise residual.

    ``spectrum`` is the log-magnitude spectrum of the linear residual (image minus its 3×3 mean): generator
    fingerprints show as bright dots on a grid. ``energy_spectrum`` is the spectrum of the residual's *magnitude*
    (|∂x| + |∂y|): re-sampling makes that energy periodic, so up-sampling by k shows as a peak at 1/k cycles/pixel
    (a linear spectrum cannot show plain nearest-neighbour up-sampling: the interpolation filter has a zero exactly
    there). Both are centred (zero frequency in the middle) and computed on at most the central 1024×1024 pixels.
    """

    spectrum: np.ndarray = field(compare=False, repr=False)          # HxW float32, log(1 + |FFT|), centred
    energy_spectrum: np.ndarray = field(compare=False, repr=False)   # HxW float32, same for the residual energy
    radial_freq: np.ndarray = field(compare=False, repr=False)       # ring centres, cycles/pixel (0 … 0.5)
    radial_power: np.ndarray = field(compare=False, repr=False)      # log RMS magnitude of ``spectrum`` per ring
    radial_energy: np.ndarray = field(compare=False, repr=False)     # same for ``energy_spectrum``
    peaks: tuple[SpectralPeak, ...]                                  # strongest first
    region: tuple[int, int, int, int]                                # (left, top, right, bottom) analysed
    summary: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the radial curves rounded; the 2-D spectra are left out)."""
        return {"region": list(self.region), "peaks": [p.to_dict() for p in self.peaks], "summary": self.summary,
                "radial_freq": [_round(v) for v in self.radial_freq],
                "radial_power": [_round(v) for v in self.radial_power],
                "radial_energy": [_round(v) for v in self.radial_energy]}


def _box3(x: np.ndarray) -> np.ndarray:
    p = np.pad(x, 1, mode="reflect")
    h, w = x.shape
    return sum(p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0


def highpass_residual(grey: np.ndarray) -> np.ndarray:
    """Linear high-pass noise residual: the image minus its 3×3 mean (reflect padding)."""
    return grey - _box3(grey)


def _log_spectrum(r: np.ndarray) -> np.ndarray:
    h, w = r.shape
    win = np.outer(np.hanning(h), np.hanning(w))   # a window keeps the image border from drawing a bright cross
    f = np.fft.fftshift(np.fft.fft2((r - r.mean()) * win))
    return np.log1p(np.abs(f)).astype(np.float32)


def _radial(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = p.shape
    fy = (np.arange(h) - h // 2) / h
    fx = (np.arange(w) - w // 2) / w
    rad = np.hypot(fy[:, None], fx[None, :])
    n = max(4, min(h, w) // 2)
    edges = np.linspace(0, 0.5, n + 1)
    idx = np.digitize(rad.ravel(), edges) - 1
    keep = (idx >= 0) & (idx < n)
    # average the *power* of each ring, then take the log of its root: an isolated periodic peak dominates its
    # ring's power (averaging log values would dilute it among the ring's other bins)
    power = np.expm1(p.astype(np.float64)) ** 2
    sums = np.bincount(idx[keep], weights=power.ravel()[keep], minlength=n)
    counts = np.bincount(idx[keep], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, np.log1p(np.sqrt(sums / np.maximum(counts, 1))), np.nan)
    return ((edges[:-1] + edges[1:]) / 2).astype(np.float32), mean.astype(np.float32)


def _peak_strength(p: np.ndarray, fy: float, fx: float) -> float:
    h, w = p.shape
    cy, cx = h // 2, w // 2
    y, x = int(round(cy + fy * h)) % h, int(round(cx + fx * w)) % w
    # the spectrum is periodic, so windows wrap around its border (peaks at ±0.5 sit on the border)
    ys = np.arange(y - 7, y + 8) % h
    xs = np.arange(x - 7, x + 8) % w
    win = p[np.ix_(ys, xs)].astype(np.float64)
    core = win[6:9, 6:9].max()
    ring = np.ones_like(win, dtype=bool)
    ring[5:10, 5:10] = False
    # also compare with the same line of the spectrum (axis or diagonal) a few bins away: an image with strong
    # horizontal or vertical structure has a bright line along an axis, which is not a periodic peak
    dy, dx = (0, 1) if fy == 0 else (1, 0) if fx == 0 else (1, 1)
    line = [p[(y + s * d * dy) % h, (x + s * d * dx) % w] for d in range(3, 8) for s in (-1, 1)]
    return float(min(core - np.median(win[ring]), core - np.median(line)))


def _find_peaks(p: np.ndarray, source: str) -> list[SpectralPeak]:
    h, w = p.shape
    if min(h, w) < 32:
        return []
    out = []
    for k in range(2, 9):
        f = 1.0 / k
        for fy, fx, direction in ((0.0, f, "horizontal"), (f, 0.0, "vertical"), (f, f, "diagonal")):
            s = _peak_strength(p, fy, fx)
            if s >= PEAK_MIN:
                out.append(SpectralPeak(fy, fx, float(k), s, direction, source))
    return out


def frequency_view(image: Image.Image, *, max_side: int = MAX_SIDE) -> FrequencyView:
    """Fourier spectra of the high-pass residual, their azimuthal averages and periodic peaks.

    Args:
        image: an RGB image (at least 16×16).
        max_side: larger images are analysed on their central ``max_side``×``max_side`` pixels.

    Returns:
        A :class:`FrequencyView`.

    Raises:
        BadImage: the image is smaller than 16×16.

    Example:
        >>> v = frequency_view(Image.open("x.png").resize((512, 512), Image.NEAREST))
        >>> [p.period_px for p in v.peaks][:1]
        [2.0]
    """
    if min(image.size) < 16:
        raise BadImage("<image>", f"is {image.width}×{image.height}: too small for a frequency view (16×16 minimum).")
    crop, box = _centre_crop(image, max_side)
    g = _grey(crop)
    spec = _log_spectrum(highpass_residual(g))
    # forward differences with wrap-around keep the grid of the linear spectrum (the Hann window hides the seam)
    energy = np.abs(np.roll(g, -1, axis=1) - g) + np.abs(np.roll(g, -1, axis=0) - g)
    espec = _log_spectrum(energy)
    rf, rp = _radial(spec)
    _, re_ = _radial(espec)
    peaks = sorted(_find_peaks(espec, "energy") + _find_peaks(spec, "residual"),
                   key=lambda p: (-p.strength, p.period_px, p.direction, p.source))
    if not peaks:
        summary = ("No periodic peak at periods of 2–8 px: no sign of up-sampling or of a regular generator "
                   "pattern in the analysed region.")
    else:
        periods = sorted({p.period_px for p in peaks})
        txt = ", ".join(f"{p:g}" for p in periods)
        summary = (f"Periodic peaks at period(s) {txt} px (strongest {peaks[0].strength:.1f} log units above its "
                   "surroundings): typical of up-sampling by that factor or of a generator's regular pattern.")
        if set(periods) <= {2.0, 4.0, 8.0}:
            summary += " If the image was ever saved as JPEG, its 8×8 blocks also give periods that divide 8 px."
    return FrequencyView(spec, espec, rf, rp, re_, tuple(peaks), box, summary)


# ----------------------------------------------------------------------------------------------- NPR residual

@dataclass(frozen=True)
class NPRView:
    """NPR residual x − up(down(x)) (nearest neighbour, factor 2; Tan et al. CVPR 2024), in pixel units 0–255."""

    residual: np.ndarray = field(compare=False, repr=False)   # HxW float32, signed, mean over RGB
    mean_abs: float                  # mean |r| over the pixels that are not copied (3 of each 2×2 block)
    std: float
    max_abs: float
    zero_fraction: float             # share of those pixels whose residual is exactly 0 in every channel
    phase_mean_abs: tuple[float, float, float, float]   # mean |r| for the grid offsets (0,0), (0,1), (1,0), (1,1)
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"mean_abs": _round(self.mean_abs), "std": _round(self.std), "max_abs": _round(self.max_abs),
                "zero_fraction": _round(self.zero_fraction), "phase_mean_abs": [_round(v) for v in self.phase_mean_abs],
                "summary": self.summary}


def npr_residual(x: np.ndarray) -> np.ndarray:
    """x − up2(down2(x)) with nearest interpolation on an H×W(×C) array with even H and W.

    ``down2`` keeps the top-left pixel of each 2×2 block (nearest, scale 0.5) and ``up2`` repeats it, so the
    residual is 0 at those pixels and the difference to that pixel elsewhere.
    """
    d = x[::2, ::2]
    return x - np.repeat(np.repeat(d, 2, axis=0), 2, axis=1)


def npr_view(image: Image.Image, *, max_side: int = MAX_SIDE) -> NPRView:
    """The NPR residual map and its statistics (central ``max_side`` crop, cropped to even size)."""
    crop, _ = _centre_crop(image, max_side)
    a = np.asarray(crop.convert("RGB"), dtype=np.float64)
    h, w = a.shape[0] - a.shape[0] % 2, a.shape[1] - a.shape[1] % 2
    if h < 2 or w < 2:
        raise BadImage("<image>", "is too small for the NPR residual (2×2 minimum).")
    phases = []
    res0 = None
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        sub = a[dy:, dx:]
        sh, sw = (sub.shape[0] // 2) * 2, (sub.shape[1] // 2) * 2
        if sh < 2 or sw < 2:
            phases.append(float("nan"))
            continue
        r = npr_residual(sub[:sh, :sw])
        mask = np.ones((sh, sw), dtype=bool)
        mask[::2, ::2] = False            # the copied pixels are 0 by construction
        phases.append(float(np.abs(r)[mask].mean()))
        if (dy, dx) == (0, 0):
            res0, mask0 = r, mask
    r = res0
    absr = np.abs(r)[mask0]
    zero = float((np.abs(r).max(axis=2)[mask0] == 0).mean())
    mean_abs = float(absr.mean())
    if mean_abs < 0.5 or zero > 0.9:
        summary = (f"The NPR residual is almost zero (mean |r| {mean_abs:.2f}, {zero:.0%} exact zeros): neighbouring "
                   "pixels repeat in 2×2 blocks, as after 2× nearest-neighbour up-sampling.")
    else:
        finite = [p for p in phases if math.isfinite(p)]
        ratio = (max(finite) / min(finite)) if finite and min(finite) > 0 else float("inf")
        summary = (f"NPR residual mean |r| {mean_abs:.2f} (0–255 scale), {zero:.0%} exact zeros; "
                   + ("similar across the four 2×2 grid offsets: no 2×2 block structure."
                      if ratio < 1.5 else "it differs across 2×2 grid offsets: a shifted block structure may "
                                          "be present."))
    return NPRView(r.mean(axis=2).astype(np.float32), mean_abs, float(absr.std()), float(absr.max()), zero,
                   tuple(phases), summary)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- ELA and noise

@dataclass(frozen=True)
class ELAView:
    """Error level analysis: how much each pixel changes when the image is re-saved as JPEG at ``quality``."""

    quality: int
    error: np.ndarray = field(compare=False, repr=False)   # HxW float32, max |difference| over RGB (0–255)
    mean: float
    p99: float
    max: float
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"quality": self.quality, "mean": _round(self.mean), "p99": _round(self.p99),
                "max": _round(self.max), "summary": self.summary}


def ela_view(image: Image.Image, quality: int = 90, *, max_side: int | None = None) -> ELAView:
    """Re-save as JPEG at ``quality`` (4:4:4, so chroma subsampling does not dominate) and measure the change.

    Regions pasted from another source or retouched often re-compress differently from the rest. Uniform error
    levels prove nothing; strong edges and textures always show higher error.

    Args:
        image: RGB image.
        quality: JPEG quality 1–100 of the re-save.
        max_side: optionally analyse only the central crop of this size.
    """
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be 1–100, got {quality}")
    img = image.convert("RGB")
    if max_side:
        img, _ = _centre_crop(img, max_side)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(quality), subsampling=0)
    re = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    err = np.abs(np.asarray(img, dtype=np.int16) - np.asarray(re, dtype=np.int16)).max(axis=2).astype(np.float32)
    mean, p99, mx = float(err.mean()), float(np.percentile(err, 99)), float(err.max())
    summary = (f"Re-saving at JPEG quality {quality} changes pixels by {mean:.2f} on average (99th percentile "
               f"{p99:.0f}, max {mx:.0f}). Look for regions whose error level differs from similar texture "
               "elsewhere; edges are always brighter.")
    return ELAView(int(quality), err, mean, p99, mx, summary)


@dataclass(frozen=True)
class NoiseView:
    """Noise residual (image minus its 3×3 median) and how evenly the noise level is spread."""

    residual: np.ndarray = field(compare=False, repr=False)    # HxW float32, signed, luma
    block_std: np.ndarray = field(compare=False, repr=False)   # grid of residual std per 32×32 block
    std: float
    inconsistency: float       # (95th − 5th percentile of block std) / median block std
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {"std": _round(self.std), "inconsistency": _round(self.inconsistency), "summary": self.summary,
                "block": 32}


def noise_view(image: Image.Image, *, max_side: int = MAX_SIDE, block: int = 32) -> NoiseView:
    """Noise residual (luma minus its 3×3 median filter) and its local standard deviation per block."""
    crop, _ = _centre_crop(image, max_side)
    grey = crop.convert("L")
    r = np.asarray(grey, dtype=np.float32) - np.asarray(grey.filter(ImageFilter.MedianFilter(3)), dtype=np.float32)
    h, w = r.shape
    bh, bw = h // block, w // block
    if bh and bw:
        blocks = r[:bh * block, :bw * block].reshape(bh, block, bw, block).std(axis=(1, 3))
        med = float(np.median(blocks))
        inc = float((np.percentile(blocks, 95) - np.percentile(blocks, 5)) / med) if med > 0 else float("nan")
    else:
        blocks, inc = np.zeros((0, 0), np.float32), float("nan")
    std = float(r.std())
    if not math.isfinite(inc):
        summary = f"Noise residual std {std:.2f}; too small or too flat to compare noise levels across blocks."
    else:
        summary = (f"Noise residual std {std:.2f}; noise level varies by {inc:.2f}× its median across 32×32 blocks"
                   + (" — uneven noise can betray pasted or synthesised regions (flat areas are naturally quieter)."
                      if inc > 2.0 else "."))
    return NoiseView(r, blocks.astype(np.float32), std, inc, summary)


