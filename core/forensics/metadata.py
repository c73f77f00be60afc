"""What the file says about itself: file type and hashes, EXIF, XMP/IPTC (DigitalSourceType, generator traces)."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import ExifTags, Image, IptcImagePlugin

from core.versions import package_version


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


