"""Everything at once: the metadata summary (with its findings) and the forensic evidence of one file."""
from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from core.io import load_image
from core.forensics.common import MAX_SIDE, RECOMPRESSED_QUALITY
from core.forensics.jpeg import JpegInfo, jpeg_info
from core.forensics.metadata import ExifInfo, FileFacts, ProvenanceInfo, _EXTENSIONS, detect_type, perceptual_hashes, read_exif, read_provenance
from core.forensics.provenance import C2PAInfo, read_c2pa
from core.forensics.views import ELAView, FrequencyView, NPRView, NoiseView, ela_view, frequency_view, noise_view, npr_view


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
