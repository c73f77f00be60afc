"""Forensic evidence that needs no learned weights: frequency, NPR, ELA and noise views, and file metadata.

Everything here works on a fresh machine with no detector installed. Views return frozen dataclasses holding
float arrays (for display) and a few statistics with a one-sentence summary; :func:`to_image` turns an array into
a PIL image for the page or the report. Metadata is **supporting evidence, never a verdict**: every field of it
can be removed or forged in seconds.

Example:
    >>> ev = analyse(Path("photo.jpg").read_bytes(), "photo.jpg")
    >>> ev.metadata.jpeg.quality, ev.frequency.peaks
    (92, ())
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import ExifTags, Image, ImageFilter, IptcImagePlugin, JpegImagePlugin

from core.errors import BadImage
from core.io import load_image

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


# ----------------------------------------------------------------------------------------------- frequency view

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


# ----------------------------------------------------------------------------------------------- file facts

_MAGIC: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", "image/png"),
    (b"GIF87a", 0, "GIF", "image/gif"),
    (b"GIF89a", 0, "GIF", "image/gif"),
    (b"BM", 0, "BMP", "image/bmp"),
    (b"II*\x00", 0, "TIFF", "image/tiff"),
    (b"MM\x00*", 0, "TIFF", "image/tiff"),
    (b"%PDF", 0, "PDF", "application/pdf"),
)
_EXTENSIONS = {"JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"}, "PNG": {".png"}, "GIF": {".gif"}, "BMP": {".bmp"},
               "TIFF": {".tif", ".tiff", ".dng"}, "WEBP": {".webp"}, "HEIC": {".heic", ".heif"}, "AVIF": {".avif"},
               "PDF": {".pdf"}, "JPEG XL": {".jxl"}}


def detect_type(data: bytes) -> tuple[str, str | None]:
    """(format name, MIME type) from the file's magic bytes; ("unknown", None) when not recognised."""
    for magic, off, name, mime in _MAGIC:
        if data[off:off + len(magic)] == magic:
            return name, mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF", "image/avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
            return "HEIC", "image/heic"
    if data[:2] == b"\xff\x0a" or data[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return "JPEG XL", "image/jxl"
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "HTML", "text/html"
    return "unknown", None


def perceptual_hashes(image: Image.Image) -> tuple[str | None, str | None, str]:
    """(pHash hex, dHash hex, library) — 64-bit hashes from the ``imagehash`` package, or a built-in DCT pHash.

    The built-in fallback follows imagehash's pHash: greyscale 32×32 (Lanczos), 2-D DCT-II, top-left 8×8
    coefficients, bit = coefficient > their median.
    """
    try:
        import imagehash
        return str(imagehash.phash(image)), str(imagehash.dhash(image)), f"imagehash {_version('ImageHash')}"
    except ImportError:
        g = np.asarray(image.convert("L").resize((32, 32), Image.LANCZOS), dtype=np.float64)
        n = 32
        c = np.array([[math.cos((2 * x + 1) * k * math.pi / (2 * n)) for x in range(n)] for k in range(n)])
        low = (c @ g @ c.T)[:8, :8]
        bits = (low > np.median(low)).ravel()
        ph = "".join(f"{int(''.join('1' if b else '0' for b in bits[i:i + 4]), 2):x}" for i in range(0, 64, 4))
        return ph, None, "built-in DCT pHash"


@dataclass(frozen=True)
class FileFacts:
    """What the file itself is: name, size, hashes and true type."""

    name: str
    size_bytes: int
    sha256: str
    phash: str | None            # 64-bit perceptual hash (hex): near-duplicates have a small Hamming distance
    dhash: str | None            # 64-bit difference hash (hex)
    hash_library: str
    detected_type: str           # from magic bytes: JPEG, PNG, WEBP, ...
    mime: str | None
    extension: str               # lower-case, with the dot; "" when the name has none
    extension_matches: bool | None   # None when there is no extension
    width: int
    height: int
    mode: str                    # PIL mode of the decoded file (before conversion to RGB)
    frames: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ----------------------------------------------------------------------------------------------- EXIF

@dataclass(frozen=True)
class GpsInfo:
    """GPS position from EXIF (shown only on request: it can identify a person's home)."""

    latitude: float | None
    longitude: float | None
    altitude_m: float | None
    fields: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"latitude": self.latitude, "longitude": self.longitude, "altitude_m": self.altitude_m,
                "fields": [list(f) for f in self.fields]}


@dataclass(frozen=True)
class ExifInfo:
    """Camera, software and dates from EXIF (trivial to forge or strip)."""

    present: bool
    make: str | None = None
    model: str | None = None
    software: str | None = None
    lens: str | None = None
    datetime_original: str | None = None
    datetime_digitized: str | None = None
    datetime_modified: str | None = None
    fields: tuple[tuple[str, str], ...] = ()   # every readable tag (name, value), GPS excluded
    has_gps: bool = False
    gps: GpsInfo | None = None                 # None unless requested

    @property
    def camera(self) -> str | None:
        parts = [p for p in (self.make, self.model) if p]
        if len(parts) == 2 and parts[1].lower().startswith(parts[0].lower()):
            parts = parts[1:]
        return " ".join(parts) or None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("fields", "gps")}
        d["camera"] = self.camera
        d["fields"] = [list(f) for f in self.fields]
        d["gps"] = self.gps.to_dict() if self.gps else None
        return d


def _text(v: Any, limit: int = 200) -> str:
    if isinstance(v, bytes):
        if v.startswith((b"ASCII\x00\x00\x00", b"UNICODE\x00")):      # EXIF UserComment
            v = v[8:].decode("utf-16" if v.startswith(b"UNICODE") else "ascii", "replace")
        elif len(v) > 64 or sum(c < 9 for c in v) > 2:
            return f"<{len(v)} bytes>"
        else:
            v = v.decode("latin-1")
    s = str(v).replace("\x00", "").strip()
    return s if len(s) <= limit else s[:limit] + "…"


def _ratio(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def _dms(v: Any, ref: Any) -> float | None:
    try:
        d, m, s = (float(x) for x in v)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    val = d + m / 60 + s / 3600
    return round(-val if str(ref).upper().startswith(("S", "W")) else val, 7)


def read_exif(image: Image.Image, *, include_gps: bool = False) -> ExifInfo:
    """EXIF of an opened (not converted) PIL image.

    Args:
        image: the image as opened by PIL (its EXIF block is read from ``getexif()``).
        include_gps: read the GPS position; by default only its presence is reported.
    """
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - corrupt EXIF is "no usable EXIF", not a crash
        return ExifInfo(present=False)
    if not exif:
        return ExifInfo(present=False)
    fields: dict[str, str] = {}
    ifds: list[Mapping[int, Any]] = [exif]
    for ifd_tag in (0x8769, 0xA005):                  # Exif IFD, Interop IFD
        try:
            ifds.append(exif.get_ifd(ifd_tag))
        except Exception:  # noqa: BLE001
            pass
    for ifd in ifds:
        for tag, value in ifd.items():
            if tag in (0x8769, 0x8825, 0xA005, 0x927C):     # sub-IFD pointers; maker notes are opaque blobs
                if tag == 0x927C:
                    fields["MakerNote"] = f"<{len(value) if hasattr(value, '__len__') else '?'} bytes>"
                continue
            fields[ExifTags.TAGS.get(tag, f"Tag 0x{tag:04X}")] = _text(value)
    gps_ifd: Mapping[int, Any] = {}
    try:
        gps_ifd = exif.get_ifd(0x8825)
    except Exception:  # noqa: BLE001
        pass
    gps = None
    if include_gps and gps_ifd:
        names = {k: ExifTags.GPSTAGS.get(k, f"GPS 0x{k:02X}") for k in gps_ifd}
        alt = _ratio(gps_ifd.get(6))
        if alt is not None and gps_ifd.get(5) in (1, b"\x01"):
            alt = -alt
        gps = GpsInfo(_dms(gps_ifd.get(2), gps_ifd.get(1)), _dms(gps_ifd.get(4), gps_ifd.get(3)), alt,
                      tuple((names[k], _text(v)) for k, v in sorted(gps_ifd.items())))
    return ExifInfo(
        present=True, make=fields.get("Make") or None, model=fields.get("Model") or None,
        software=fields.get("Software") or None, lens=fields.get("LensModel") or None,
        datetime_original=fields.get("DateTimeOriginal") or None,
        datetime_digitized=fields.get("DateTimeDigitized") or None,
        datetime_modified=fields.get("DateTime") or None,
        fields=tuple(sorted(fields.items())), has_gps=bool(gps_ifd), gps=gps)


# ----------------------------------------------------------------------------------------------- XMP / IPTC

# IPTC NewsCodes "digitalsourcetype" (https://cv.iptc.org/newscodes/digitalsourcetype/): code → (label, AI?)
DIGITAL_SOURCE_TYPES: dict[str, tuple[str, bool]] = {
    "trainedAlgorithmicMedia": ("created by a trained AI model (generative AI)", True),
    "compositeWithTrainedAlgorithmicMedia": ("composite that includes generative-AI elements", True),
    "algorithmicMedia": ("created purely by an algorithm, without sampled training data", True),
    "compositeSynthetic": ("composite that includes synthetic elements", True),
    "algorithmicallyEnhanced": ("camera image enhanced by an algorithm", False),
    "digitalCapture": ("original digital capture (camera)", False),
    "computationalCapture": ("computational capture (e.g. phone multi-frame processing)", False),
    "negativeFilm": ("scan of a negative film", False),
    "positiveFilm": ("scan of a positive film", False),
    "print": ("scan of a print", False),
    "humanEdits": ("edited by a person", False),
    "minorHumanEdits": ("minor edits by a person", False),
    "compositeCapture": ("composite of captured elements", False),
    "dataDrivenMedia": ("rendered from data (e.g. a chart)", False),
    "digitalArt": ("drawn or painted digitally by a person", False),
    "virtualRecording": ("recording of a virtual scene", False),
    "screenCapture": ("screen capture", False),
    "digitalCreation": ("digital creation (deprecated code)", False),
    "softwareImage": ("created by software (deprecated code)", False),
}
_DST_RE = re.compile(r"digitalsourcetype/([A-Za-z]+)")


@dataclass(frozen=True)
class SourceType:
    """A DigitalSourceType value found in the file (XMP, or a C2PA action)."""

    code: str            # e.g. trainedAlgorithmicMedia
    label: str           # human meaning
    generated: bool      # True for the generative / synthetic codes (flagged)
    where: str           # XMP | C2PA

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def digital_source_types(text: str, where: str = "XMP") -> tuple[SourceType, ...]:
    """Every IPTC DigitalSourceType URI in ``text`` (each code once, in order of appearance)."""
    seen: list[str] = []
    for m in _DST_RE.finditer(text or ""):
        if m.group(1) not in seen:
            seen.append(m.group(1))
    out = []
    for code in seen:
        label, gen = DIGITAL_SOURCE_TYPES.get(code, (f"unrecognised code {code!r}", False))
        out.append(SourceType(code, label, gen, where))
    return tuple(out)


# Tool names that only generators write (matched case-insensitively in Software / CreatorTool / PNG text).
_GENERATOR_NAMES = ("midjourney", "dall-e", "dall·e", "dalle", "stable diffusion", "stablediffusion", "comfyui",
                    "automatic1111", "invokeai", "novelai", "adobe firefly", "firefly", "imagen", "leonardo.ai",
                    "ideogram", "flux", "gpt-4o", "chatgpt", "bing image creator", "nightcafe", "craiyon",
                    "dreamstudio", "fooocus")
_PNG_GENERATOR_KEYS = {"parameters": "Stable Diffusion web UI (AUTOMATIC1111/Forge) generation parameters",
                       "prompt": "ComfyUI prompt graph", "workflow": "ComfyUI workflow",
                       "invokeai_metadata": "InvokeAI metadata", "sd-metadata": "InvokeAI metadata",
                       "dream": "InvokeAI (Dream) prompt", "fooocus_scheme": "Fooocus metadata"}


@dataclass(frozen=True)
class ProvenanceInfo:
    """XMP, IPTC and text-chunk provenance hints."""

    xmp_present: bool
    creator_tool: str | None
    digital_source_types: tuple[SourceType, ...]
    iptc: tuple[tuple[str, str], ...]                # IPTC IIM (APP13) fields present
    text_chunks: tuple[tuple[str, str], ...]         # PNG/GIF text entries (value shortened)
    generator_hints: tuple[str, ...]                 # sentences: traces that name a generator

    @property
    def flagged(self) -> tuple[SourceType, ...]:
        """Source types that declare generative-AI or synthetic content."""
        return tuple(s for s in self.digital_source_types if s.generated)

    def to_dict(self) -> dict[str, Any]:
        return {"xmp_present": self.xmp_present, "creator_tool": self.creator_tool,
                "digital_source_types": [s.to_dict() for s in self.digital_source_types],
                "iptc": [list(f) for f in self.iptc], "text_chunks": [list(f) for f in self.text_chunks],
                "generator_hints": list(self.generator_hints)}


_IPTC_NAMES = {(2, 5): "Object name", (2, 25): "Keywords", (2, 55): "Date created", (2, 60): "Time created",
               (2, 65): "Originating program", (2, 70): "Program version", (2, 80): "By-line",
               (2, 85): "By-line title", (2, 90): "City", (2, 101): "Country", (2, 105): "Headline",
               (2, 110): "Credit", (2, 115): "Source", (2, 116): "Copyright notice", (2, 120): "Caption",
               (2, 122): "Caption writer"}


def _xmp_packets(image: Image.Image, data: bytes) -> list[str]:
    packets = []
    for key in ("xmp", "XML:com.adobe.xmp"):
        v = image.info.get(key)
        if v:
            packets.append(v.decode("utf-8", "replace") if isinstance(v, (bytes, bytearray)) else str(v))
    tiff_xmp = getattr(image, "tag_v2", {}).get(700) if hasattr(image, "tag_v2") else None
    if tiff_xmp:
        packets.append(tiff_xmp.decode("utf-8", "replace") if isinstance(tiff_xmp, bytes) else str(tiff_xmp))
    # raw scan: formats PIL does not surface (and extended XMP); packets are plain UTF-8 in the file
    for m in re.finditer(rb"<x:xmpmeta[\s\S]{0,2000000}?</x:xmpmeta>", data):
        packets.append(m.group(0).decode("utf-8", "replace"))
    return packets


def _iptc(image: Image.Image) -> tuple[tuple[str, str], ...]:
    try:
        info = IptcImagePlugin.getiptcinfo(image) or {}
    except Exception:  # noqa: BLE001 - malformed IPTC is ignored
        return ()
    out = []
    for key, value in sorted(info.items()):
        values = value if isinstance(value, list) else [value]
        text = "; ".join(_text(v) for v in values)
        out.append((_IPTC_NAMES.get(key, f"IPTC {key[0]}:{key[1]}"), text))
    return tuple(out)


def read_provenance(image: Image.Image, data: bytes, exif: ExifInfo | None = None) -> ProvenanceInfo:
    """XMP (DigitalSourceType, CreatorTool), IPTC IIM, PNG text chunks and generator name hints."""
    packets = _xmp_packets(image, data)
    xmp = "\n".join(packets)
    dst = digital_source_types(xmp, "XMP")
    m = re.search(r"CreatorTool(?:=\"([^\"]*)\"|>([^<]*)<)", xmp)
    creator = (m.group(1) or m.group(2)).strip() if m else None
    iptc = _iptc(image)
    texts = []
    text_info = getattr(image, "text", None) if image.format == "PNG" else None
    items = dict(text_info or {})
    if image.format == "GIF" and image.info.get("comment"):
        items["comment"] = image.info["comment"]
    for k, v in items.items():
        if k in ("XML:com.adobe.xmp",):
            continue
        texts.append((str(k), _text(v, 300)))
    hints = []
    for k, _ in texts:
        if k.lower() in _PNG_GENERATOR_KEYS:
            hints.append(f"PNG text chunk '{k}': looks like {_PNG_GENERATOR_KEYS[k.lower()]}.")
    named = [("EXIF Software", exif.software if exif else None), ("XMP CreatorTool", creator)]
    named += [(f"PNG text '{k}'", v) for k, v in texts if k.lower() in ("software", "source", "comment", "title",
                                                                        "description", "generator")]
    named += [(f"IPTC {k}", v) for k, v in iptc if k in ("Originating program", "Credit", "Source")]
    for where, value in named:
        if value:
            low = value.lower()
            hit = next((g for g in _GENERATOR_NAMES if g in low), None)
            if hit:
                hints.append(f"{where} names a generator: '{_text(value, 80)}'.")
    return ProvenanceInfo(bool(packets), creator, dst, iptc, tuple(texts), tuple(dict.fromkeys(hints)))


# ----------------------------------------------------------------------------------------------- C2PA

_C2PA_BYTES = re.compile(rb"jumd[\s\S]{0,24}?c2pa")


@dataclass(frozen=True)
class C2PAInfo:
    """Content Credentials (C2PA) manifest: presence, validation and what it claims."""

    present: bool                        # a C2PA manifest store (JUMBF box labelled c2pa) is in the file
    library: str | None                  # e.g. "c2pa-python 0.38.1"; None when validation is unavailable
    validated: bool                      # the library read and validated the manifest
    validation_state: str | None         # Valid | Invalid | Trusted (library's words) or None
    failures: tuple[str, ...] = ()       # "code: explanation" of each failed check (untrusted signer included)
    claim_generator: str | None = None   # software that made the manifest
    signer: str | None = None            # certificate issuer / common name
    title: str | None = None
    actions: tuple[str, ...] = ()        # c2pa.actions, e.g. "c2pa.created"
    digital_source_types: tuple[SourceType, ...] = ()
    note: str = ""                       # one sentence for the analyst

    def to_dict(self) -> dict[str, Any]:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        d["digital_source_types"] = [s.to_dict() for s in self.digital_source_types]
        return d


def _c2pa_library() -> tuple[Any, str] | None:
    try:
        import c2pa
        return c2pa, f"c2pa-python {getattr(c2pa, '__version__', '?')}"
    except Exception:  # noqa: BLE001 - a broken native library means "unavailable", never a crash
        return None


def read_c2pa(data: bytes, mime: str | None) -> C2PAInfo:
    """Find and (when ``c2pa-python`` is installed) validate a C2PA manifest, offline.

    Network is never used: OCSP and remote-manifest fetching are switched off, so a manifest stored only at a
    remote URL is reported as not found and the signer is not checked against an online trust list.
    """
    present = bool(_C2PA_BYTES.search(data))
    lib = _c2pa_library()
    if lib is None:
        note = ("A C2PA manifest is present, but validation is unavailable (c2pa-python is not installed)."
                if present else "No C2PA manifest (Content Credentials) in the file.")
        return C2PAInfo(present, None, False, None, note=note)
    c2pa, libname = lib
    if not present and mime not in ("image/jpeg", "image/png", "image/webp", "image/tiff", "image/avif",
                                    "image/heic", "image/gif"):
        return C2PAInfo(False, libname, False, None, note="No C2PA manifest (Content Credentials) in the file.")
    try:
        ctx = c2pa.Context.from_dict({"verify": {"ocsp_fetch": False, "remote_manifest_fetch": False}})
        reader = c2pa.Reader.try_create(mime or "image/jpeg", io.BytesIO(data), context=ctx)
    except Exception as exc:  # noqa: BLE001 - a malformed manifest is evidence too, reported as such
        if not present:
            return C2PAInfo(False, libname, False, None, note="No C2PA manifest (Content Credentials) in the file.")
        return C2PAInfo(True, libname, False, "Invalid", failures=(_text(str(exc), 300),),
                        note=f"A C2PA manifest is present but could not be read: {_text(str(exc), 200)}")
    if reader is None:
        note = ("C2PA-like bytes are present but no readable manifest store was found."
                if present else "No C2PA manifest (Content Credentials) in the file.")
        return C2PAInfo(present, libname, False, None, note=note)
    with reader:
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
        manifest = reader.get_active_manifest() or {}
        store = json.loads(reader.json())
    fails = []
    for section in ("activeManifest", "ingredientDeltas"):
        sec = results.get(section) or {}
        items = sec.get("failure", []) if isinstance(sec, dict) else []
        fails += [f"{f.get('code')}: {f.get('explanation', '')}".strip() for f in items]
    fails += [f"{s.get('code')}: {s.get('explanation', '')}" for s in store.get("validation_status", []) or []
              if f"{s.get('code')}: {s.get('explanation', '')}" not in fails]
    gen_info = manifest.get("claim_generator_info") or []
    gen = manifest.get("claim_generator") or ", ".join(
        f"{g.get('name', '')} {g.get('version', '')}".strip() for g in gen_info if isinstance(g, dict)) or None
    sig = manifest.get("signature_info") or {}
    signer = " / ".join(x for x in (sig.get("issuer"), sig.get("common_name")) if x) or None
    actions, dst_text = [], []
    for a in manifest.get("assertions", []) or []:
        if str(a.get("label", "")).startswith("c2pa.actions"):
            for act in (a.get("data") or {}).get("actions", []) or []:
                actions.append(str(act.get("action")))
                if act.get("digitalSourceType"):
                    dst_text.append(str(act["digitalSourceType"]))
    dst = digital_source_types(" ".join(dst_text), "C2PA")
    only_untrusted = fails and all(f.startswith("signingCredential.untrusted") for f in fails)
    if state == "Trusted":
        note = f"C2PA manifest valid and signed by a trusted signer ({signer})."
    elif state == "Valid" or (state != "Invalid" and only_untrusted):
        note = (f"C2PA manifest present and cryptographically valid (signed by {signer or 'an unknown signer'}); "
                "the signer was not checked against a trust list here.")
    else:
        bad = [f for f in fails if not f.startswith("signingCredential.untrusted")]
        note = (f"C2PA manifest present but INVALID ({'; '.join(bad[:3]) or state}): the file changed after "
                "signing or the manifest is damaged.")
    return C2PAInfo(True, libname, True, state, tuple(fails), gen, signer, manifest.get("title"), tuple(actions),
                    dst, note)


# ----------------------------------------------------------------------------------------------- JPEG

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


def _dq_score(jpeg: Image.Image, qtable: np.ndarray, *, positions: int = 12, max_bin: int = 30) -> float | None:
    """Double-quantisation score of a decoded JPEG (Lukáš & Fridrich 2003; Popescu & Farid 2004).

    The luma plane is re-transformed with the 8×8 DCT on the file's own grid and divided by the file's quantiser.
    A singly compressed image gives smooth (Laplacian-like) histograms of those integer coefficients; a second
    compression at a different quality leaves periodic gaps and peaks. The score is, for the strongest of the
    first ``positions`` AC frequencies, the L1 distance between the histogram of |coefficient| (1..max_bin) and
    its 5-bin moving average, relative to the histogram's mass. Measured on skimage photos: single 0.2–0.8,
    double (lower then higher quality) 1.0–1.6. None when there are too few non-zero coefficients to judge.
    """
    y = None
    try:
        im = jpeg
        im.draft("YCbCr", im.size)        # the decoder's own Y plane, before colour conversion
        if im.mode == "YCbCr":
            y = np.asarray(im, dtype=np.float64)[..., 0]
        elif im.mode == "L":
            y = np.asarray(im, dtype=np.float64)
    except Exception:  # noqa: BLE001
        y = None
    if y is None:
        return None
    h, w = y.shape
    # a centre crop aligned to the 8×8 grid keeps huge photos fast
    ch, cw = min(h // 8 * 8, MAX_SIDE), min(w // 8 * 8, MAX_SIDE)
    top, left = ((h - ch) // 2) // 8 * 8, ((w - cw) // 2) // 8 * 8
    if ch < 8 or cw < 8:
        return None
    b = y[top:top + ch, left:left + cw].reshape(ch // 8, 8, cw // 8, 8).transpose(0, 2, 1, 3) - 128.0
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
        score = float(np.abs(hist - smooth).sum())
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
    double_score: float | None = None
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["qtables"] = [list(t) for t in self.qtables]
        d["double_score"] = _round(self.double_score, 3) if self.double_score is not None else None
        return d


def jpeg_info(source: bytes | Image.Image) -> JpegInfo:
    """Quantisation tables, quality estimate and double-compression hint of a JPEG (``is_jpeg=False`` otherwise).

    Example:
        >>> jpeg_info(open("q60.jpg", "rb").read()).quality
        60
    """
    try:
        im = Image.open(io.BytesIO(source)) if isinstance(source, (bytes, bytearray)) else source
    except Exception:  # noqa: BLE001
        return JpegInfo(False, summary="Not a readable image.")
    if im.format != "JPEG" or not getattr(im, "quantization", None):
        return JpegInfo(False, summary="Not a JPEG file: no quantisation tables.")
    tables = {k: list(v) for k, v in sorted(im.quantization.items())}
    quality, exact = estimate_jpeg_quality(tables)
    sampling = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JpegImagePlugin.get_sampling(im))
    progressive = bool(im.info.get("progressive") or im.info.get("progression"))
    score = None
    if isinstance(source, (bytes, bytearray)):
        try:
            score = _dq_score(Image.open(io.BytesIO(source)), np.asarray(tables[min(tables)]))
        except Exception:  # noqa: BLE001 - the hint is optional; decoding problems are reported elsewhere
            score = None
    double = None if score is None else score > DOUBLE_JPEG_MIN
    how = "libjpeg's standard tables" if exact else "custom tables (camera or editor); nearest libjpeg quality"
    summary = f"JPEG, estimated quality {quality} ({how})" + (f", {sampling} chroma" if sampling else "") + "."
    if double:
        summary += (f" Coefficient histograms show double-quantisation traces (score {score:.2f} > "
                    f"{DOUBLE_JPEG_MIN}): the image was probably JPEG-compressed at least twice.")
    elif double is False:
        summary += f" No double-compression trace (score {score:.2f})."
    return JpegInfo(True, tuple(tuple(int(x) for x in t) for t in tables.values()), quality, exact, sampling,
                    progressive, double, score, summary)


# ----------------------------------------------------------------------------------------------- metadata

@dataclass(frozen=True)
class Metadata:
    """Everything the file says about itself. Supporting evidence only: it is trivial to strip or forge."""

    file: FileFacts
    exif: ExifInfo
    provenance: ProvenanceInfo
    c2pa: C2PAInfo
    jpeg: JpegInfo
    findings: tuple[str, ...]     # plain sentences, most telling first

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file.to_dict(), "exif": self.exif.to_dict(), "provenance": self.provenance.to_dict(),
                "c2pa": self.c2pa.to_dict(), "jpeg": self.jpeg.to_dict(), "findings": list(self.findings)}


def _findings(f: FileFacts, ex: ExifInfo, pv: ProvenanceInfo, c2: C2PAInfo, jp: JpegInfo) -> tuple[str, ...]:
    out = []
    for s in c2.digital_source_types + pv.digital_source_types:
        if s.generated:
            out.append(f"{s.where} DigitalSourceType '{s.code}': {s.label}. Declared by whoever wrote the file — "
                       "strong but forgeable supporting evidence.")
    if c2.present:
        out.append(c2.note)
    out += list(pv.generator_hints)
    if f.extension_matches is False:
        out.append(f"The name ends in '{f.extension}' but the content is {f.detected_type}: the file was renamed "
                   "or converted.")
    if ex.present and ex.camera:
        out.append(f"EXIF names a camera ({ex.camera}"
                   + (f", taken {ex.datetime_original}" if ex.datetime_original else "") + "); camera metadata is "
                   "easy to copy onto any image.")
    elif not ex.present and f.detected_type in ("JPEG", "TIFF", "HEIC", "WEBP", "PNG"):
        out.append("No EXIF metadata: usual for generated images, but also for screenshots and for images "
                   "re-saved by social networks — not evidence by itself.")
    if ex.software and not any(ex.software in h for h in pv.generator_hints):
        out.append(f"EXIF Software: '{ex.software}' (the file was written or edited by this program).")
    if ex.has_gps:
        out.append("EXIF contains a GPS position" + (" (included on request)." if ex.gps else
                                                     " (hidden unless requested: it can locate a person)."))
    for s in c2.digital_source_types + pv.digital_source_types:
        if not s.generated:
            out.append(f"{s.where} DigitalSourceType '{s.code}': {s.label}.")
    if jp.is_jpeg:
        if jp.quality is not None and jp.quality < RECOMPRESSED_QUALITY:
            out.append(f"JPEG quality ≈ {jp.quality}: strong compression erases the fine traces detectors rely "
                       "on; treat their verdicts with caution.")
        if jp.double_compression:
            out.append("The JPEG was probably compressed at least twice (re-saved or shared).")
    return tuple(dict.fromkeys(out))


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:  # noqa: BLE001
        return "?"


def read_metadata(data: bytes, name: str = "<bytes>", *, include_gps: bool = False) -> Metadata:
    """File facts, EXIF, XMP/IPTC, C2PA and JPEG tables of an image file.

    Args:
        data: the file's bytes (never re-encoded: hashes and metadata describe exactly what was given).
        name: the file name (its extension is compared with the true type).
        include_gps: read the EXIF GPS position (by default only its presence is reported).

    Raises:
        BadImage: the bytes are not a readable image.

    Example:
        >>> m = read_metadata(Path("x.jpg").read_bytes(), "x.jpg")
        >>> m.exif.camera, m.jpeg.quality, m.c2pa.present
        ('Canon EOS 5D', 92, False)
    """
    data = bytes(data)
    rgb = load_image(data)                          # validates the bytes (BadImage with one sentence otherwise)
    im = Image.open(io.BytesIO(data))
    dtype, mime = detect_type(data)
    ext = Path(name).suffix.lower() if name and not name.startswith("<") else ""
    if ext and not re.fullmatch(r"\.[a-z0-9]{1,5}", ext):
        ext = ""
    matches = None if not ext else ext in _EXTENSIONS.get(dtype, set())
    ph, dh, lib = perceptual_hashes(rgb)
    facts = FileFacts(name, len(data), hashlib.sha256(data).hexdigest(), ph, dh, lib, dtype, mime, ext, matches,
                      im.width, im.height, im.mode, int(getattr(im, "n_frames", 1)))
    ex = read_exif(im, include_gps=include_gps)
    pv = read_provenance(im, data, ex)
    c2 = read_c2pa(data, mime)
    jp = jpeg_info(data) if dtype == "JPEG" else JpegInfo(False, summary=f"{dtype} file: no JPEG quantisation tables.")
    return Metadata(facts, ex, pv, c2, jp, _findings(facts, ex, pv, c2, jp))


# ----------------------------------------------------------------------------------------------- everything

@dataclass(frozen=True)
class Evidence:
    """All weight-free evidence about one image file."""

    metadata: Metadata
    frequency: FrequencyView
    npr: NPRView
    ela: ELAView
    noise: NoiseView

    def to_dict(self) -> dict[str, Any]:
        return {"metadata": self.metadata.to_dict(), "frequency": self.frequency.to_dict(),
                "npr": self.npr.to_dict(), "ela": self.ela.to_dict(), "noise": self.noise.to_dict()}


def analyse(data: bytes, name: str = "<bytes>", *, ela_quality: int = 90, include_gps: bool = False) -> Evidence:
    """Every forensic view and the metadata of one image file.

    Args:
        data: the file's bytes.
        name: file name (for the extension check).
        ela_quality: JPEG quality of the error-level re-save.
        include_gps: read the GPS position.

    Raises:
        BadImage: unreadable image, or smaller than 16×16.
    """
    meta = read_metadata(data, name, include_gps=include_gps)
    img = load_image(data)
    return Evidence(meta, frequency_view(img), npr_view(img), ela_view(img, ela_quality, max_side=MAX_SIDE),
                    noise_view(img))


__all__ = [
    "MAX_SIDE", "SpectralPeak", "FrequencyView", "NPRView", "ELAView", "NoiseView", "FileFacts", "GpsInfo",
    "ExifInfo", "SourceType", "ProvenanceInfo", "C2PAInfo", "JpegInfo", "Metadata", "Evidence",
    "DIGITAL_SOURCE_TYPES", "to_image", "highpass_residual", "frequency_view", "npr_residual", "npr_view",
    "ela_view", "noise_view", "detect_type", "perceptual_hashes", "read_exif", "digital_source_types",
    "read_provenance", "read_c2pa", "ijg_table", "estimate_jpeg_quality", "jpeg_info", "read_metadata", "analyse",
]
