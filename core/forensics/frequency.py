"""Frequency view: Fourier spectra of the high-pass residual, their radial averages and periodic peaks."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from core.errors import BadImage
from core.forensics.common import MAX_SIDE, PEAK_MIN, _grey, _round, check_pixels

# JPEG's 8×8 block grid puts energy at k/8 cycles/pixel: of the candidate periods 2–8 px, these are its harmonics.
JPEG_GRID_PERIODS = frozenset({2.0, 4.0, 8.0})


@dataclass(frozen=True)
class SpectralPeak:
    """A periodic component found at a candidate period (2–8 px) of the spectrum."""

    fy: float                     # vertical frequency, cycles/pixel in [-0.5, 0.5]
    fx: float                     # horizontal frequency, cycles/pixel
    period_px: float              # 1 / |f| along the peak's direction
    strength: float               # natural-log magnitude above the local median
    direction: str                # horizontal | vertical | diagonal
    source: str                   # residual (linear high-pass) | energy (magnitude of pixel differences)
    jpeg_grid: bool = False       # the file is a JPEG and the period is a harmonic of its 8×8 block grid

    def to_dict(self) -> dict[str, Any]:
        return {"fy": _round(self.fy), "fx": _round(self.fx), "period_px": _round(self.period_px, 3),
                "strength": _round(self.strength, 3), "direction": self.direction, "source": self.source,
                "jpeg_grid": self.jpeg_grid}


@dataclass(frozen=True)
class FrequencyView:
    """Fourier views of the image's high-pass noise residual.

    ``spectrum`` is the log-magnitude spectrum of the linear residual (image minus its 3×3 mean): generator
    fingerprints show as bright dots on a grid. ``energy_spectrum`` is the spectrum of the residual's *magnitude*
    (|∂x| + |∂y|): re-sampling makes that energy periodic, so up-sampling by k shows as a peak at 1/k cycles/pixel
    (a linear spectrum cannot show plain nearest-neighbour up-sampling: the interpolation filter has a zero exactly
    there). Both are centred (zero frequency in the middle). An image larger than the tile side (1024 px) is cut
    into overlapping tiles that cover it whole (at most :data:`MAX_TILES`; ``coverage`` says when they do not) and
    their power spectra are averaged (Welch's method), so a periodic pattern anywhere in the image shows.
    """

    spectrum: np.ndarray = field(compare=False, repr=False)          # HxW float32, log(1 + |FFT|), centred
    energy_spectrum: np.ndarray = field(compare=False, repr=False)   # HxW float32, same for the residual energy
    radial_freq: np.ndarray = field(compare=False, repr=False)       # ring centres, cycles/pixel (0 … 0.5)
    radial_power: np.ndarray = field(compare=False, repr=False)      # log RMS magnitude of ``spectrum`` per ring
    radial_energy: np.ndarray = field(compare=False, repr=False)     # same for ``energy_spectrum``
    peaks: tuple[SpectralPeak, ...]                                  # strongest first
    region: tuple[int, int, int, int]                                # (left, top, right, bottom) spanned
    summary: str
    coverage: str = ""                                               # one sentence: what part of the image
    tiles: int = 1                                                   # tiles whose spectra were averaged

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the radial curves rounded; the 2-D spectra are left out)."""
        return {"region": list(self.region), "tiles": self.tiles, "coverage": self.coverage, "summary": self.summary,
                "peaks": [p.to_dict() for p in self.peaks],
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


def _power(r: np.ndarray) -> np.ndarray:
    """|FFT|² of a Hann-windowed, mean-removed array, centred."""
    h, w = r.shape
    win = np.outer(np.hanning(h), np.hanning(w))   # a window keeps the image border from drawing a bright cross
    f = np.fft.fftshift(np.fft.fft2((r - r.mean()) * win))
    return np.abs(f) ** 2


def _log_spectrum(power: np.ndarray) -> np.ndarray:
    """log(1 + RMS magnitude) of a (mean) power spectrum: for one tile, log(1 + |FFT|)."""
    return np.log1p(np.sqrt(power)).astype(np.float32)


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


def _periods(peaks: list[SpectralPeak]) -> str:
    return ", ".join(f"{p:g}" for p in sorted({p.period_px for p in peaks}))


def _summary(peaks: list[SpectralPeak], jpeg: bool | None) -> str:
    """One paragraph: what the peaks mean, leading with JPEG's 8×8 grid when that explains them."""
    if not peaks:
        return ("No periodic peak at periods of 2–8 px: no sign of up-sampling or of a regular generator "
                "pattern in the analysed region.")
    grid = [p for p in peaks if p.jpeg_grid]
    other = [p for p in peaks if not p.jpeg_grid]
    out = ""
    if grid:
        out = (f"Periodic peaks at period(s) {_periods(grid)} px match the 8×8 block grid of JPEG compression "
               "(this file is a JPEG): expected, and no sign of generation by themselves.")
        if 2.0 in {p.period_px for p in grid}:
            out += " A 2 px period can also come from 2× up-sampling: the NPR residual tests for that."
    if other:
        lead = "Peaks" if grid else "Periodic peaks"
        out += (" " if out else "") + (
            f"{lead} at period(s) {_periods(other)} px (strongest {other[0].strength:.1f} log units above its "
            "surroundings)" + (", not explained by the JPEG grid," if grid else "") +
            " are typical of up-sampling by that factor or of a generator's regular pattern.")
        if not jpeg and {p.period_px for p in other} <= JPEG_GRID_PERIODS:
            out += " If the image was ever saved as JPEG, its 8×8 blocks also give periods that divide 8 px."
    return out


MAX_TILES = 36      # 6×6 tiles of 1024 px cover any image up to 6144 px a side; larger ones are sampled evenly


def tile_grid(size: tuple[int, int], side: int,
              max_tiles: int = MAX_TILES) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(tile width, height) and the top-left corners of tiles that cover the image whole, overlapping where the
    size is not a multiple of the tile side; when more than ``max_tiles`` would be needed, an evenly spread grid of
    at most ``max_tiles`` tiles (which then leaves gaps)."""
    w, h = size
    tw, th = min(w, side), min(h, side)
    nx, ny = math.ceil(w / tw), math.ceil(h / th)
    while nx * ny > max_tiles:
        if nx >= ny:
            nx -= 1
        else:
            ny -= 1
    xs = sorted({round(v) for v in np.linspace(0, w - tw, nx)})
    ys = sorted({round(v) for v in np.linspace(0, h - th, ny)})
    return (tw, th), [(x, y) for y in ys for x in xs]


def _covered(size: tuple[int, int], tile: tuple[int, int], corners: list[tuple[int, int]]) -> float:
    """Share of the image's pixels inside at least one tile."""
    w, h = size
    cols = np.zeros(w, bool)
    rows = np.zeros(h, bool)
    for x, y in corners:
        cols[x:x + tile[0]] = True
        rows[y:y + tile[1]] = True
    return float(cols.mean() * rows.mean())      # the tiles form a grid: covered = covered columns × rows


def _coverage(size: tuple[int, int], tile: tuple[int, int], n: int, share: float) -> str:
    w, h = size
    if n == 1 and tile == (w, h):
        return f"Whole image ({w}×{h} px) analysed."
    how = f"{n} tiles of {tile[0]}×{tile[1]} px whose spectra are averaged"
    if share >= 0.9999:
        return f"Whole image ({w}×{h} px) analysed as {how} (a spectrum needs one fixed grid)."
    return (f"Only {share:.0%} of the {w}×{h} px image was analysed: {how}, spread evenly over it (at most "
            f"{MAX_TILES} tiles).")


def _mean_power(image: Image.Image, tile: tuple[int, int],
                corners: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectra (linear residual, residual energy) over the tiles."""
    spec = energy = None
    for x, y in corners:
        g = _grey(image.crop((x, y, x + tile[0], y + tile[1])))
        # forward differences with wrap-around keep the grid of the linear spectrum (the Hann window hides the seam)
        e = np.abs(np.roll(g, -1, axis=1) - g) + np.abs(np.roll(g, -1, axis=0) - g)
        p, q = _power(highpass_residual(g)), _power(e)
        spec, energy = (p, q) if spec is None else (spec + p, energy + q)
    return spec / len(corners), energy / len(corners)


def frequency_view(image: Image.Image, *, max_side: int = MAX_SIDE, jpeg: bool | None = None) -> FrequencyView:
    """Fourier spectra of the high-pass residual, their azimuthal averages and periodic peaks.

    Args:
        image: an RGB image (at least 16×16).
        max_side: the tile side: a larger image is analysed as overlapping tiles covering it whole (at most
            :data:`MAX_TILES`), their power spectra averaged (said in ``coverage``).
        jpeg: whether the file is a JPEG (None: unknown). A JPEG's 8×8 blocks give peaks at periods 2, 4 and 8 px;
            those are then explained first and marked ``jpeg_grid``.

    Returns:
        A :class:`FrequencyView`.

    Raises:
        BadImage: the image is smaller than 16×16 or above the pixel limit.

    Example:
        >>> v = frequency_view(Image.open("x.png").resize((512, 512), Image.NEAREST))
        >>> [p.period_px for p in v.peaks][:1]
        [2.0]
    """
    if min(image.size) < 16:
        raise BadImage("<image>", f"is {image.width}×{image.height}: too small for a frequency view (16×16 minimum).")
    check_pixels(*image.size)
    tile, corners = tile_grid(image.size, max_side)
    power, epower = _mean_power(image, tile, corners)
    spec, espec = _log_spectrum(power), _log_spectrum(epower)
    rf, rp = _radial(spec)
    _, re_ = _radial(espec)
    found = _find_peaks(espec, "energy") + _find_peaks(spec, "residual")
    if jpeg:
        found = [SpectralPeak(p.fy, p.fx, p.period_px, p.strength, p.direction, p.source,
                              p.period_px in JPEG_GRID_PERIODS) for p in found]
    peaks = sorted(found, key=lambda p: (-p.strength, p.period_px, p.direction, p.source))
    region = (min(x for x, _ in corners), min(y for _, y in corners),
              max(x for x, _ in corners) + tile[0], max(y for _, y in corners) + tile[1])
    return FrequencyView(spec, espec, rf, rp, re_, tuple(peaks), region, _summary(peaks, jpeg),
                         _coverage(image.size, tile, len(corners), _covered(image.size, tile, corners)),
                         len(corners))


__all__ = ["SpectralPeak", "FrequencyView", "JPEG_GRID_PERIODS", "MAX_TILES", "highpass_residual", "tile_grid",
           "frequency_view"]
