# NOTE FOR HELPERS (from the lead, 10:15 UTC): while you were stalled the lead split this package itself
# (evaluation: cache.py, records.py, predictions.py, reports.py, runner.py with a refactored evaluate();
# forensics: common/views/metadata/provenance/jpeg/evidence; report: build/html/svg/template.html; core/versions.py).
# Build on this structure; do not re-split or revert it. Remove this banner when you next edit the file.
"""Forensic evidence that needs no learned weights: frequency, NPR, ELA and noise views, and file metadata.

Everything here works on a fresh machine with no detector installed. Views return frozen dataclasses holding
float arrays (for display) and a few statistics with a one-sentence summary; :func:`to_image` turns an array into
a PIL image for the page or the report. Metadata is **supporting evidence, never a verdict**: every field of it
can be removed or forged in seconds.

Modules: common (limits, array → image), views (pixel views), metadata (file facts, EXIF, XMP/IPTC), provenance
(C2PA), jpeg (quantisation, quality, double compression), evidence (everything at once).

Example:
    >>> ev = analyse(Path("photo.jpg").read_bytes(), "photo.jpg")
    >>> ev.metadata.jpeg.quality, ev.frequency.peaks
    (92, ())
"""
from core.forensics.common import DOUBLE_JPEG_MIN, MAX_SIDE, PEAK_MIN, RECOMPRESSED_QUALITY, to_image
from core.forensics.evidence import Evidence, Metadata, analyse, read_metadata
from core.forensics.jpeg import JpegInfo, estimate_jpeg_quality, ijg_table, jpeg_info
from core.forensics.metadata import DIGITAL_SOURCE_TYPES, ExifInfo, FileFacts, GpsInfo, ProvenanceInfo, SourceType, detect_type, digital_source_types, perceptual_hashes, read_exif, read_provenance
from core.forensics.provenance import C2PAInfo, read_c2pa
from core.forensics.views import ELAView, FrequencyView, NPRView, NoiseView, SpectralPeak, ela_view, frequency_view, highpass_residual, noise_view, npr_residual, npr_view

__all__ = [
    "MAX_SIDE",
    "SpectralPeak",
    "FrequencyView",
    "NPRView",
    "ELAView",
    "NoiseView",
    "FileFacts",
    "GpsInfo",
    "ExifInfo",
    "SourceType",
    "ProvenanceInfo",
    "C2PAInfo",
    "JpegInfo",
    "Metadata",
    "Evidence",
    "DIGITAL_SOURCE_TYPES",
    "to_image",
    "highpass_residual",
    "frequency_view",
    "npr_residual",
    "npr_view",
    "ela_view",
    "noise_view",
    "detect_type",
    "perceptual_hashes",
    "read_exif",
    "digital_source_types",
    "read_provenance",
    "read_c2pa",
    "ijg_table",
    "estimate_jpeg_quality",
    "jpeg_info",
    "read_metadata",
    "analyse",
    "RECOMPRESSED_QUALITY",
    "DOUBLE_JPEG_MIN",
    "PEAK_MIN",
]
