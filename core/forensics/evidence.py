"""Everything at once: the metadata of one file (with its plain-language findings) and all its forensic views."""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import Any

from PIL import Image

from core.errors import BadImage
from core.forensics.common import MAX_SIDE
from core.forensics.frequency import FrequencyView, frequency_view
from core.forensics.jpeg import JpegInfo, jpeg_info
from core.forensics.metadata import (
    ExifInfo,
    FileFacts,
    detect_type,
    extension_matches,
    frame_count,
    perceptual_hashes,
    read_exif,
)
from core.forensics.provenance import C2PAInfo, read_c2pa
from core.forensics.views import ELAView, NoiseView, NPRView, ela_view, noise_view, npr_view
from core.forensics.xmp import ProvenanceInfo, png_extras, read_provenance
from core.io import load_image


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


def _declared(c2: C2PAInfo, pv: ProvenanceInfo, generated: bool) -> list[str]:
    out = []
    for s in c2.digital_source_types + pv.digital_source_types:
        if s.generated and generated:
            out.append(f"{s.where} DigitalSourceType '{s.code}': {s.label}. Declared by whoever wrote the file — "
                       "strong but forgeable supporting evidence.")
        elif not s.generated and not generated:
            out.append(f"{s.where} DigitalSourceType '{s.code}': {s.label}.")
    return out


def _findings(f: FileFacts, ex: ExifInfo, pv: ProvenanceInfo, c2: C2PAInfo) -> tuple[str, ...]:
    """What the metadata says, most telling first. JPEG quality and double compression are not repeated here:
    they are reasons to doubt a detector (core.verdict.abstention), from the same thresholds in forensics.jpeg."""
    out = _declared(c2, pv, generated=True)
    if c2.present:
        out.append(c2.note)
    out += list(pv.generator_hints)
    if pv.xmp_error:
        out.append(pv.xmp_error)
    if f.extension_matches is False:
        out.append(f"The name ends in '{f.extension}' but the content is {f.detected_type}: the file was renamed "
                   "or converted.")
    if f.animated:
        out.append("The file is animated: only its first frame is analysed, and metadata is read from the header.")
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
    return tuple(dict.fromkeys(out + _declared(c2, pv, generated=False)))


def _open(data: bytes, name: str) -> Image.Image:
    """Open (never decode) the file for its header and metadata; core.io has already checked the pixel limit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - load_image accepted it, so this is a decoder corner case
        raise BadImage(name, f"is not a readable image ({type(exc).__name__}).") from None


def read_metadata(data: bytes, name: str = "<bytes>", *, include_gps: bool = False) -> Metadata:
    """File facts, EXIF, XMP/IPTC, C2PA and JPEG tables of an image file.

    Animated files are not walked frame by frame: the first frame is decoded (for the hashes) and the rest of
    the metadata comes from the header.

    Args:
        data: the file's bytes (never re-encoded: hashes and metadata describe exactly what was given).
        name: the file name (its extension is compared with the true type).
        include_gps: read the EXIF GPS position (by default only its presence is reported).

    Raises:
        BadImage: the bytes are not a readable image, or it is above the pixel limit.

    Example:
        >>> m = read_metadata(Path("x.jpg").read_bytes(), "x.jpg")
        >>> m.exif.camera, m.jpeg.quality, m.c2pa.present
        ('Canon EOS 5D', 92, False)
    """
    data = bytes(data)
    return _metadata(data, name, load_image(data, name=name), include_gps)   # load_image: BadImage with one sentence


def _metadata(data: bytes, name: str, rgb: Image.Image, include_gps: bool) -> Metadata:
    """:func:`read_metadata` for bytes already decoded (by :func:`core.io.load_image`) into ``rgb``."""
    im = _open(data, name)
    dtype, mime = detect_type(data)
    ext, matches = extension_matches(name, dtype)
    frames, animated = frame_count(im)
    ph, dh, lib = perceptual_hashes(rgb)
    facts = FileFacts(name, len(data), hashlib.sha256(data).hexdigest(), ph, dh, lib, dtype, mime, ext, matches,
                      im.width, im.height, im.mode, frames, animated)
    if im.format == "PNG" and "exif" not in im.info:
        # Pillow would decode the whole image to look for an eXIf chunk after the pixels; the chunk walk does not
        im.info["exif"] = png_extras(data).exif or b""
    ex = read_exif(im, include_gps=include_gps)
    pv = read_provenance(im, data, ex)
    c2 = read_c2pa(data, mime)
    jp = jpeg_info(data) if dtype == "JPEG" else JpegInfo(False, summary=f"{dtype} file: no JPEG quantisation tables.")
    return Metadata(facts, ex, pv, c2, jp, _findings(facts, ex, pv, c2))


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
        BadImage: unreadable image, above the pixel limit, or smaller than 16×16.
    """
    data = bytes(data)
    img = load_image(data, name=name)               # decoded once for the metadata's hashes and every view
    meta = _metadata(data, name, img, include_gps)
    return Evidence(meta, frequency_view(img, jpeg=meta.jpeg.is_jpeg), npr_view(img),
                    ela_view(img, ela_quality, max_side=MAX_SIDE), noise_view(img))


__all__ = ["Metadata", "Evidence", "read_metadata", "analyse"]
