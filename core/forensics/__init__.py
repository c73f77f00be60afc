"""Forensic evidence that needs no learned weights: frequency, NPR, ELA and noise views, and file metadata.

Everything here works on a fresh machine with no detector installed. Views return frozen dataclasses holding
float arrays (for display) and a few statistics with a one-sentence summary; :func:`to_image` /
:func:`map_image` turn a map into a PIL image for the page or the report. Metadata is **supporting evidence,
never a verdict**: every field of it can be removed or forged in seconds. Every reader respects the pixel limit
(``core.settings.max_pixels()``) and bounds its own memory and time on hostile files.

Modules, by job:
    common       limits, text cleaning, strips and pooling, array → image
    frequency    Fourier spectra of the residual and periodic peaks (central crop, stated in ``coverage``)
    views        NPR residual, error level analysis, noise — whole image, map shrunk with ``scale`` stated
    jpeg         quantisation tables, quality estimate, double compression; the recompression thresholds
    metadata     file facts (type by magic bytes, hashes, frames) and EXIF
    sourcetypes  IPTC DigitalSourceType codes
    xmp          XMP (defusedxml, bounded), IPTC IIM, PNG/GIF text, generator traces
    provenance   C2PA manifests, validated offline with c2pa-python
    evidence     read_metadata (with findings) and analyse (everything at once)

Example:
    >>> ev = analyse(Path("photo.jpg").read_bytes(), "photo.jpg")
    >>> ev.metadata.jpeg.quality, ev.frequency.peaks
    (92, ())
"""
from core.forensics.common import MAX_SIDE, PEAK_MIN, display_range, map_image, to_image
from core.forensics.evidence import Evidence, Metadata, analyse, read_metadata
from core.forensics.frequency import JPEG_GRID_PERIODS, FrequencyView, SpectralPeak, frequency_view, highpass_residual
from core.forensics.jpeg import (
    DOUBLE_JPEG_MIN,
    DOUBLE_SCORE_MAX,
    RECOMPRESSED_QUALITY,
    JpegInfo,
    estimate_jpeg_quality,
    ijg_table,
    is_recompressed,
    jpeg_info,
)
from core.forensics.metadata import ExifInfo, FileFacts, GpsInfo, detect_type, perceptual_hashes, read_exif
from core.forensics.provenance import C2PAInfo, read_c2pa
from core.forensics.sourcetypes import DIGITAL_SOURCE_TYPES, SourceType, digital_source_types
from core.forensics.views import ELAView, NoiseView, NPRView, ela_view, noise_view, npr_residual, npr_view
from core.forensics.xmp import XMP_UNPARSED, ProvenanceInfo, read_provenance

__all__ = [
    "MAX_SIDE", "PEAK_MIN", "to_image", "map_image", "display_range",
    "SpectralPeak", "FrequencyView", "JPEG_GRID_PERIODS", "highpass_residual", "frequency_view",
    "NPRView", "ELAView", "NoiseView", "npr_residual", "npr_view", "ela_view", "noise_view",
    "RECOMPRESSED_QUALITY", "DOUBLE_JPEG_MIN", "DOUBLE_SCORE_MAX", "is_recompressed",
    "JpegInfo", "ijg_table", "estimate_jpeg_quality", "jpeg_info",
    "FileFacts", "GpsInfo", "ExifInfo", "detect_type", "perceptual_hashes", "read_exif",
    "DIGITAL_SOURCE_TYPES", "SourceType", "digital_source_types",
    "ProvenanceInfo", "XMP_UNPARSED", "read_provenance",
    "C2PAInfo", "read_c2pa",
    "Metadata", "Evidence", "read_metadata", "analyse",
]
