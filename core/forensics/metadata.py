"""What the file is and what its EXIF says: true type (magic bytes), hashes, frames, camera, dates and GPS."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from core.forensics.common import _text
from core.io import sniff_type
from core.versions import package_version

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "BMP": "image/bmp", "TIFF": "image/tiff",
         "PDF": "application/pdf", "WEBP": "image/webp", "AVIF": "image/avif", "HEIC": "image/heic",
         "JPEG XL": "image/jxl", "HTML": "text/html"}
_EXTENSIONS = {"JPEG": {".jpg", ".jpeg", ".jpe", ".jfif"}, "PNG": {".png"}, "GIF": {".gif"}, "BMP": {".bmp"},
               "TIFF": {".tif", ".tiff", ".dng"}, "WEBP": {".webp"}, "HEIC": {".heic", ".heif"}, "AVIF": {".avif"},
               "PDF": {".pdf"}, "JPEG XL": {".jxl"}}


def detect_type(data: bytes) -> tuple[str, str | None]:
    """(format name, MIME type) from the file's magic bytes (:func:`core.io.sniff_type`); ("unknown", None)."""
    kind = sniff_type(data)
    return (kind, _MIME.get(kind)) if kind else ("unknown", None)


def extension_matches(name: str, detected_type: str) -> tuple[str, bool | None]:
    """(lower-case extension or "", whether it names the detected type; None without an extension)."""
    ext = PurePath(name).suffix.lower() if name and not name.startswith("<") else ""
    ext = ext if 2 <= len(ext) <= 6 and ext[1:].isascii() and ext[1:].isalnum() else ""
    return ext, (None if not ext else ext in _EXTENSIONS.get(detected_type, set()))


def frame_count(image: Image.Image) -> tuple[int | None, bool]:
    """(number of frames or None when counting would walk the file, animated?) without decoding any frame.

    APNG and WebP store their frame count in a header; a GIF (or multi-page TIFF) only reveals it by walking
    every frame, which for a 20 MB GIF takes tens of seconds, so those are reported as animated, uncounted.
    """
    try:
        animated = bool(getattr(image, "is_animated", False))   # looks for a second frame only
        if not animated:
            return 1, False
        if image.format in ("PNG", "WEBP"):
            return int(getattr(image, "n_frames", 1)), True
    except Exception:  # noqa: BLE001 - a damaged animation is still an image; the count is optional
        return None, False
    return None, True


def perceptual_hashes(image: Image.Image) -> tuple[str | None, str | None, str]:
    """(pHash hex, dHash hex, library) — 64-bit hashes from the ``imagehash`` package, or a built-in DCT pHash.

    The built-in fallback follows imagehash's pHash: greyscale 32×32 (Lanczos), 2-D DCT-II, top-left 8×8
    coefficients, bit = coefficient > their median.
    """
    try:
        import imagehash
        return str(imagehash.phash(image)), str(imagehash.dhash(image)), f"imagehash {package_version('ImageHash')}"
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
    frames: int | None           # None: an animation whose frames were not counted (see frame_count)
    animated: bool = False       # more than one frame (only the first is analysed)

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


__all__ = ["FileFacts", "GpsInfo", "ExifInfo", "detect_type", "extension_matches", "frame_count",
           "perceptual_hashes", "read_exif"]
