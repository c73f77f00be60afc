"""The Forensics page's sections: overview and facts, pixel views with colour scales, metadata and C2PA.

Everything the file says about itself is untrusted: its name, EXIF/XMP/IPTC values, PNG text, C2PA claims and
generator names. Such strings are shown only with ``st.text`` or inside ``st.dataframe`` cells — never through
Markdown (``st.markdown``, ``st.write``, ``st.caption``, ``st.info``/``warning``/``error``, image captions), so a
value like ``![x](http://…)`` or ``## VERDICT: REAL`` stays literal text and loads nothing. Boxes and headings
around them carry only our own words and numbers.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from core import forensics as F
from core.forensics.common import MapMode
from core.verdict.abstention import ForensicFacts, input_reasons
from ui.forensics_figures import heatmap_figure, radial_spectrum_figure
from ui.forensics_views import ela, metadata
from ui.widgets import CurrentImage

_WIDE = {"fact": st.column_config.TextColumn("fact", width="small"),
         "field": st.column_config.TextColumn("field", width="small"),
         "tag": st.column_config.TextColumn("tag", width="small"),
         "value": st.column_config.TextColumn("value", width="large")}


def untrusted_lines(lines: Sequence[str], bullet: str = "• ") -> None:
    """Show strings that came from the file as plain text, one element per line (never Markdown)."""
    for line in lines:
        st.text(f"{bullet}{line}")


def table(rows: Sequence[tuple[str, str]], first: str, key: str) -> None:
    """A two-column table over the full width; cells are plain text (safe for untrusted values)."""
    st.dataframe(pd.DataFrame([(str(a), str(b)) for a, b in rows], columns=[first, "value"]), hide_index=True,
                 width="stretch", column_config={k: v for k, v in _WIDE.items() if k in (first, "value")}, key=key)


# ----------------------------------------------------------------------------------------------- overview

def _jpeg_fact(jp: F.JpegInfo) -> str:
    if not jp.is_jpeg:
        return "not a JPEG"
    double = {True: "double compression likely", False: "no double-compression trace",
              None: "double compression not judged"}[jp.double_compression]
    tables = "standard tables" if jp.standard_tables else "custom tables"
    return f"quality ≈ {jp.quality} ({tables})" + (f", {jp.subsampling}" if jp.subsampling else "") + f"; {double}"


def _c2pa_fact(c2: F.C2PAInfo) -> str:
    if not c2.present:
        return "none"
    if not c2.validated:
        return "present, not validated"
    return {"Trusted": "valid, trusted signer", "Valid": "valid (signer not checked against a trust list)"}.get(
        c2.validation_state or "", "INVALID: the file changed after signing or the manifest is damaged")


def facts_rows(cur: CurrentImage, meta: F.Metadata) -> list[tuple[str, str]]:
    """The overview's facts, short enough to read without scrolling sideways (details are in the Metadata tab)."""
    f = meta.file
    frames = "1" if not f.animated else (f"{f.frames} (animated; the first is analysed)" if f.frames
                                         else "animated (not counted; the first is analysed)")
    return [("File name", cur.name), ("SHA-256", f.sha256), ("Perceptual hash (pHash)", f.phash or "—"),
            ("Difference hash (dHash)", f.dhash or "—"), ("Type (magic bytes)", f"{f.detected_type} ({f.mime or '?'})"),
            ("Extension", (f.extension or "(none)") + {True: " — matches", False: " — DOES NOT MATCH the content",
                                                       None: ""}[f.extension_matches]),
            ("Size", f"{f.size_bytes:,} bytes · {f.width}×{f.height} px · {f.mode}"), ("Frames", frames),
            ("JPEG", _jpeg_fact(meta.jpeg)), ("C2PA", _c2pa_fact(meta.c2pa))]


def render_overview(cur: CurrentImage, img: Image.Image, meta: F.Metadata) -> None:
    """Image, the metadata findings (supporting evidence), reasons to doubt and the file facts."""
    left, right = st.columns([2, 3])
    left.image(img, caption=f"{img.width}×{img.height} px", width="stretch")
    if cur.note:
        left.text(cur.note)
    with right:
        flagged = [s for s in meta.c2pa.digital_source_types + meta.provenance.digital_source_types if s.generated]
        if flagged:     # codes and labels of flagged types come from our own table (only known codes are flagged)
            st.error("**Declared as AI-generated** in the file's " + ", ".join(sorted({s.where for s in flagged}))
                     + ": " + "; ".join(f"{s.code} ({s.label})" for s in flagged)
                     + ". Declarations can be forged, but are rarely added by mistake.")
        if meta.findings:
            st.markdown("**What the file says about itself** — supporting evidence, never the verdict:")
            untrusted_lines(meta.findings)
        for r in input_reasons(ForensicFacts.from_metadata(meta)):
            st.warning(f"Reason to doubt any detector on this file: {r.text}.")
    table(facts_rows(cur, meta), "fact", "forensics.facts")


# ----------------------------------------------------------------------------------------------- pixel views

def render_frequency(fv: F.FrequencyView) -> None:
    """Spectra as images, the radial spectrum chart and the periodic peaks."""
    st.write(fv.summary)
    st.caption(fv.coverage)
    c1, c2 = st.columns(2)
    c1.image(F.to_image(fv.energy_spectrum), width="stretch",
             caption="Spectrum of the residual energy |∂x|+|∂y| (centre = zero frequency): up-sampling by k gives "
                     "bright points at 1/k of the way to the edge")
    c2.image(F.to_image(fv.spectrum), width="stretch",
             caption="Spectrum of the linear high-pass residual: generator fingerprints show as a grid of dots")
    st.plotly_chart(radial_spectrum_figure(fv), key="forensics.radial")
    if fv.peaks:
        st.dataframe(pd.DataFrame([{"period (px)": p.period_px, "direction": p.direction, "spectrum": p.source,
                                    "strength (log units)": round(p.strength, 2),
                                    "JPEG 8×8 grid": "yes" if p.jpeg_grid else "no", "fy": p.fy, "fx": p.fx}
                                   for p in fv.peaks]), hide_index=True, key="forensics.peaks")


def _heatmap(arr: np.ndarray, mode: MapMode, unit: str, key: str) -> None:
    st.plotly_chart(heatmap_figure(arr, mode, unit=unit), key=key, config={"displayModeBar": False})


def _view_head(view: F.NPRView | F.NoiseView) -> tuple:
    """The view's summary and coverage, then two columns (map, side panel)."""
    st.write(view.summary)
    st.caption(view.coverage)
    return tuple(st.columns([3, 2]))


def render_npr(nv: F.NPRView) -> None:
    """The NPR residual map (with its colour scale) and its statistics."""
    c1, c2 = _view_head(nv)
    with c1:
        _heatmap(nv.residual, nv.map_mode, "x − up(down(x))" if nv.scale == 1 else "mean |r| per block",
                 "forensics.npr_map")
    with c2:
        st.metric("mean |r| (0–255)", f"{nv.mean_abs:.2f}")
        st.metric("exact zeros", f"{nv.zero_fraction:.1%}")
        st.caption("mean |r| per 2×2 grid offset: " + ", ".join(f"{v:.2f}" for v in nv.phase_mean_abs) +
                   ". NPR (Tan et al., CVPR 2024) feeds this residual to its classifier: up-sampling layers leave "
                   "neighbouring pixels correlated in a way camera images are not.")


def render_ela(data: bytes) -> None:
    """Error level analysis with a quality slider and a colour scale."""
    q = st.slider("Re-save quality", 50, 100, 90, 1, key="forensics.ela_quality",
                  help="JPEG quality of the re-save; regions that were saved at a different quality stand out.")
    ev = ela(data, int(q))
    st.write(ev.summary)
    st.caption(ev.coverage + f" Colour: |image − JPEG {q}(image)| in levels (0–255), scaled to the 99.5th "
                             "percentile.")
    _heatmap(ev.error, ev.map_mode, "|difference|" if ev.scale == 1 else "mean |difference| per block",
             "forensics.ela_map")


def render_noise(nv: F.NoiseView) -> None:
    """Noise residual and noise level per block, each with a colour scale."""
    c1, c2 = _view_head(nv)
    with c1:
        _heatmap(nv.residual, nv.map_mode, "luma − median 3×3" if nv.scale == 1 else "mean |residual| per block",
                 "forensics.noise_map")
    if nv.block_std.size:
        with c2:
            _heatmap(nv.block_std, "magnitude", "noise std per 32×32 block", "forensics.noise_blocks")


# ----------------------------------------------------------------------------------------------- metadata

def _render_exif(ex: F.ExifInfo) -> None:
    st.markdown("#### EXIF")
    if not ex.present:
        st.write("No EXIF in this file.")
        return
    table([("Camera", ex.camera or "—"), ("Software", ex.software or "—"), ("Lens", ex.lens or "—"),
           ("Taken", ex.datetime_original or "—"), ("Digitised", ex.datetime_digitized or "—"),
           ("Modified", ex.datetime_modified or "—"), ("GPS", "present" if ex.has_gps else "none")],
          "field", "forensics.exif")
    if ex.gps is not None:
        st.text(f"GPS: latitude {ex.gps.latitude}, longitude {ex.gps.longitude}"
                + (f", altitude {ex.gps.altitude_m:.0f} m" if ex.gps.altitude_m is not None else ""))
    elif ex.has_gps:
        st.caption("The file contains a GPS position (hidden).")
    with st.expander("All EXIF fields"):
        table(list(ex.fields), "tag", "forensics.exif_all")


def _render_provenance(pv: F.ProvenanceInfo) -> None:
    st.markdown("#### XMP / IPTC / text chunks")
    if pv.xmp_error:
        st.warning(F.XMP_UNPARSED)          # our own sentence (the packet's content is never echoed)
    rows = [("XMP packet", "present" if pv.xmp_present else "none"), ("CreatorTool", pv.creator_tool or "—")]
    rows += [(f"DigitalSourceType ({s.where})", f"{s.code}: {s.label}" + (" — FLAGGED" if s.generated else ""))
             for s in pv.digital_source_types]
    rows += [(f"IPTC {k}", v) for k, v in pv.iptc] + [(f"text '{k}'", v) for k, v in pv.text_chunks]
    table(rows, "field", "forensics.xmp")
    if pv.xmp_fields:
        with st.expander("All XMP properties"):
            table(list(pv.xmp_fields), "field", "forensics.xmp_all")
    if pv.generator_hints:
        st.warning("Generator traces in the file's metadata (quoted as found below; forgeable):")
        untrusted_lines(pv.generator_hints)


def render_metadata(cur: CurrentImage) -> F.Metadata:
    """EXIF (GPS behind a checkbox), XMP/IPTC/text chunks, C2PA and JPEG tables."""
    show_gps = st.checkbox("Show GPS position", False, key="forensics.show_gps",
                           help="Off by default: a GPS position can reveal where a person lives.")
    meta = metadata(cur.data, cur.name, bool(show_gps))
    st.caption("Metadata is supporting evidence only: every field can be removed or forged in seconds.")
    _render_exif(meta.exif)
    _render_provenance(meta.provenance)
    render_c2pa(meta.c2pa)
    st.markdown("#### JPEG")
    st.write(meta.jpeg.summary)
    if meta.jpeg.is_jpeg:
        cols = st.columns(max(1, len(meta.jpeg.qtables)))
        for i, t in enumerate(meta.jpeg.qtables):
            cols[i].caption(f"Quantisation table {i} ({'luminance' if i == 0 else 'chrominance'})")
            cols[i].dataframe(pd.DataFrame([t[r * 8:(r + 1) * 8] for r in range(8)]), hide_index=True,
                              key=f"forensics.qtable{i}")
    return meta


def render_c2pa(c2: F.C2PAInfo) -> None:
    """C2PA presence, validation state and claims (claims and signer are the file's words: table cells only)."""
    st.markdown("#### C2PA (Content Credentials)")
    if not c2.present:
        st.write("No C2PA manifest (Content Credentials) in the file.")
        return
    status = _c2pa_fact(c2)
    (st.success if c2.validation_state in ("Valid", "Trusted") else st.error)(f"C2PA manifest: {status}.")
    st.text(c2.note)
    table([("Validation", c2.validation_state if c2.validated else "unavailable (c2pa-python not installed)"),
           ("Claim generator", c2.claim_generator or "—"), ("Signer", c2.signer or "—"), ("Title", c2.title or "—"),
           ("Actions", ", ".join(c2.actions) or "—"),
           ("DigitalSourceType", ", ".join(s.code for s in c2.digital_source_types) or "—"),
           ("Failed checks", "; ".join(c2.failures) or "none")], "field", "forensics.c2pa")


__all__ = ["untrusted_lines", "table", "facts_rows", "render_overview", "render_frequency", "render_npr",
           "render_ela", "render_noise", "render_metadata", "render_c2pa"]
