"""Streamlit helpers for the Forensics page and for reasons to doubt on the other pages.

Cached computations (keyed by the file's bytes) and small render functions; the figures themselves are built by
ui/forensics_figures.py. Session keys used here: ``forensics.probe`` ({sha256: {detector keys: ProbeResult}}) and
``forensics.report`` ({sha256: CaseReport}).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image

from core import forensics as F
from core.errors import BadImage, DeepfakeLensError
from core.io import load_image
from core.models.registry import get_spec
from core.report import CaseReport, build_report
from core.results import DetectionResult
from core.verdict.abstention import (
    ForensicFacts,
    Reason,
    ensemble_reasons,
    facts_from_bytes,
    input_reasons,
    result_reasons,
)
from core.verdict.ensemble import EnsembleResult
from core.verdict.robustness import CONDITIONS, ProbeResult, run_probe
from ui.forensics_figures import probe_figure, radial_spectrum_figure
from ui.widgets import CurrentImage

# ----------------------------------------------------------------------------------------------- cached core calls


@st.cache_data(max_entries=8, show_spinner="Reading metadata…")
def metadata(data: bytes, name: str, include_gps: bool = False) -> F.Metadata:
    """Cached :func:`core.forensics.read_metadata`."""
    return F.read_metadata(data, name, include_gps=include_gps)


@st.cache_data(max_entries=8, show_spinner="Computing forensic views…")
def views(data: bytes) -> tuple[F.FrequencyView, F.NPRView, F.NoiseView]:
    """Cached frequency, NPR and noise views of an image file."""
    img = load_image(data)
    return F.frequency_view(img), F.npr_view(img), F.noise_view(img)


@st.cache_data(max_entries=16, show_spinner="Error level analysis…")
def ela(data: bytes, quality: int) -> F.ELAView:
    """Cached error level analysis at one JPEG quality."""
    return F.ela_view(load_image(data), quality, max_side=F.MAX_SIDE)


@st.cache_data(max_entries=32, show_spinner=False)
def facts(data: bytes) -> ForensicFacts:
    """Cached input facts (JPEG quality, double compression) for reasons to doubt."""
    return facts_from_bytes(data)


def stored_probe(sha: str, keys: Sequence[str] | None = None) -> ProbeResult | None:
    """A probe run on this image in this session: the one with exactly ``keys`` or, without keys, the latest."""
    runs = st.session_state.get("forensics.probe", {}).get(sha) or {}
    if keys is not None:
        return runs.get(tuple(keys))
    return list(runs.values())[-1] if runs else None


def _probe_for(sha: str, key: str) -> ProbeResult | None:
    """The latest probe of this image that included detector ``key`` (``ID:variant``)."""
    runs = st.session_state.get("forensics.probe", {}).get(sha) or {}
    return next((p for k, p in reversed(list(runs.items())) if key in k), None)


# ----------------------------------------------------------------------------------------------- reasons to doubt

def _spec(key: str):  # noqa: ANN202 - DetectorSpec or None
    try:
        return get_spec(key)
    except DeepfakeLensError:
        return None


def result_doubts(cur: CurrentImage, result: DetectionResult) -> tuple[Reason, ...]:
    """Reasons to doubt one detector's result on the current image (input facts + any probe already run)."""
    return result_reasons(result, facts(cur.data), _probe_for(cur.sha256, result.key), spec=_spec(result.key))


def ensemble_doubts(cur: CurrentImage, ens: EnsembleResult, results: Sequence[DetectionResult]) -> tuple[Reason, ...]:
    """Reasons to doubt the ensemble verdict (they include ``ens.reasons``: show these instead)."""
    return ensemble_reasons(ens, results, facts(cur.data), stored_probe(cur.sha256),
                            specs={r.key: _spec(r.key) for r in results})


def render_reasons(reasons: Sequence[Reason]) -> None:
    """One warning per reason ("Reason to doubt: …."), strong ones first."""
    for r in sorted(reasons, key=lambda r: r.severity != "strong"):
        st.warning(f"Reason to doubt: {r.text}.", icon=":material/report:" if r.severity == "strong"
                   else ":material/help:")


# ----------------------------------------------------------------------------------------------- page sections

def render_overview(cur: CurrentImage, img: Image.Image, meta: F.Metadata) -> None:
    """Image, file facts and the metadata findings (flagged as supporting evidence)."""
    f = meta.file
    left, right = st.columns([2, 3])
    left.image(img, caption=f"{cur.name} · {img.width}×{img.height}" + (f" · {cur.note}" if cur.note else ""),
               width="stretch")
    with right:
        st.dataframe(pd.DataFrame([
            ("SHA-256", f.sha256), ("Perceptual hash (pHash)", f.phash or "—"), ("Difference hash (dHash)",
                                                                                f.dhash or "—"),
            ("Type (magic bytes)", f"{f.detected_type} ({f.mime or '?'})"),
            ("Extension", (f.extension or "(none)") + {True: " — matches", False: " — DOES NOT MATCH the content",
                                                       None: ""}[f.extension_matches]),
            ("Size", f"{f.size_bytes:,} bytes · {f.width}×{f.height} · {f.mode}"),
            ("JPEG", meta.jpeg.summary if meta.jpeg.is_jpeg else "not a JPEG"),
            ("C2PA", meta.c2pa.note)], columns=["fact", "value"]), hide_index=True, width="stretch",
            key="forensics.facts")
        flagged = [s for s in meta.c2pa.digital_source_types + meta.provenance.digital_source_types if s.generated]
        if flagged:
            st.error("**Declared as AI-generated** in the file's " + ", ".join(sorted({s.where for s in flagged}))
                     + ": " + "; ".join(f"`{s.code}` ({s.label})" for s in flagged)
                     + ". Declarations can be forged, but are rarely added by mistake.")
        if meta.findings:
            st.markdown("**What the file says about itself** — supporting evidence, never the verdict:\n"
                        + "\n".join(f"- {x}" for x in meta.findings))
        for r in input_reasons(ForensicFacts.from_metadata(meta)):
            st.warning(f"Reason to doubt any detector on this file: {r.text}.")


def render_frequency(fv: F.FrequencyView) -> None:
    """Spectra as images, the radial spectrum chart and the periodic peaks."""
    st.write(fv.summary)
    c1, c2 = st.columns(2)
    c1.image(F.to_image(fv.energy_spectrum), width="stretch",
             caption="Spectrum of the residual energy |∂x|+|∂y| (centre = zero frequency): up-sampling by k gives "
                     "bright points at 1/k of the way to the edge")
    c2.image(F.to_image(fv.spectrum), width="stretch",
             caption="Spectrum of the linear high-pass residual: generator fingerprints show as a grid of dots")
    st.plotly_chart(radial_spectrum_figure(fv), key="forensics.radial")
    if fv.peaks:
        st.dataframe(pd.DataFrame([{"period (px)": p.period_px, "direction": p.direction, "spectrum": p.source,
                                    "strength (log units)": round(p.strength, 2), "fy": p.fy, "fx": p.fx}
                                   for p in fv.peaks]), hide_index=True, key="forensics.peaks")
    l, t, r, b = fv.region
    st.caption(f"Analysed region: ({l}, {t})–({r}, {b}) (at most the central {F.MAX_SIDE}×{F.MAX_SIDE} pixels).")


def render_npr(nv: F.NPRView) -> None:
    """The NPR residual map and its statistics."""
    st.write(nv.summary)
    c1, c2 = st.columns([3, 2])
    c1.image(F.to_image(nv.residual, "signed"), width="stretch", caption="x − up(down(x)) (mid-grey = 0)")
    with c2:
        st.metric("mean |r| (0–255)", f"{nv.mean_abs:.2f}")
        st.metric("exact zeros", f"{nv.zero_fraction:.1%}")
        st.caption("mean |r| per 2×2 grid offset: " + ", ".join(f"{v:.2f}" for v in nv.phase_mean_abs) +
                   ". NPR (Tan et al., CVPR 2024) feeds this residual to its classifier: up-sampling layers leave "
                   "neighbouring pixels correlated in a way camera images are not.")


def render_ela(data: bytes) -> None:
    """Error level analysis with a quality slider."""
    q = st.slider("Re-save quality", 50, 100, 90, 1, key="forensics.ela_quality",
                  help="JPEG quality of the re-save; regions that were saved at a different quality stand out.")
    ev = ela(data, int(q))
    st.write(ev.summary)
    st.image(F.to_image(ev.error, "magnitude"), width="stretch",
             caption=f"|image − JPEG {q}(image)|, brightness scaled to the 99.5th percentile")


def render_noise(nv: F.NoiseView) -> None:
    """Noise residual and noise level per block."""
    st.write(nv.summary)
    c1, c2 = st.columns([3, 2])
    c1.image(F.to_image(nv.residual, "signed"), width="stretch", caption="luma − median 3×3 (mid-grey = 0)")
    if nv.block_std.size:
        c2.image(F.to_image(nv.block_std, "magnitude").resize(
            (nv.block_std.shape[1] * 16, nv.block_std.shape[0] * 16), Image.NEAREST), width="stretch",
            caption="noise level per 32×32 block (brighter = noisier)")


def render_metadata(cur: CurrentImage) -> F.Metadata:
    """EXIF (GPS behind a checkbox), XMP/IPTC/text chunks, C2PA and JPEG tables."""
    show_gps = st.checkbox("Show GPS position", False, key="forensics.show_gps",
                           help="Off by default: a GPS position can reveal where a person lives.")
    meta = metadata(cur.data, cur.name, bool(show_gps))
    st.caption("Metadata is supporting evidence only: every field can be removed or forged in seconds.")
    ex = meta.exif
    st.markdown("#### EXIF")
    if not ex.present:
        st.write("No EXIF in this file.")
    else:
        st.dataframe(pd.DataFrame([("Camera", ex.camera or "—"), ("Software", ex.software or "—"),
                                   ("Lens", ex.lens or "—"), ("Taken", ex.datetime_original or "—"),
                                   ("Digitised", ex.datetime_digitized or "—"), ("Modified", ex.datetime_modified
                                                                                 or "—"),
                                   ("GPS", ("present" if ex.has_gps else "none"))], columns=["field", "value"]),
                     hide_index=True, key="forensics.exif")
        if ex.gps is not None:
            st.write(f"GPS: latitude {ex.gps.latitude}, longitude {ex.gps.longitude}"
                     + (f", altitude {ex.gps.altitude_m:.0f} m" if ex.gps.altitude_m is not None else ""))
        elif ex.has_gps:
            st.caption("The file contains a GPS position (hidden).")
        with st.expander("All EXIF fields"):
            st.dataframe(pd.DataFrame(list(ex.fields), columns=["tag", "value"]), hide_index=True,
                         key="forensics.exif_all")
    pv = meta.provenance
    st.markdown("#### XMP / IPTC / text chunks")
    rows = [("XMP packet", "present" if pv.xmp_present else "none"), ("CreatorTool", pv.creator_tool or "—")]
    rows += [(f"DigitalSourceType ({s.where})", f"{s.code}: {s.label}" + (" — FLAGGED" if s.generated else ""))
             for s in pv.digital_source_types]
    rows += [(f"IPTC {k}", v) for k, v in pv.iptc] + [(f"text '{k}'", v) for k, v in pv.text_chunks]
    st.dataframe(pd.DataFrame(rows, columns=["field", "value"]), hide_index=True, key="forensics.xmp")
    for h in pv.generator_hints:
        st.warning(h)
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
    """C2PA presence, validation state and claims."""
    st.markdown("#### C2PA (Content Credentials)")
    if not c2.present:
        st.write(c2.note)
        return
    (st.success if c2.validation_state in ("Valid", "Trusted") else st.error)(c2.note)
    st.dataframe(pd.DataFrame([
        ("Validation", c2.validation_state if c2.validated else "unavailable (c2pa-python not installed)"),
        ("Claim generator", c2.claim_generator or "—"), ("Signer", c2.signer or "—"), ("Title", c2.title or "—"),
        ("Actions", ", ".join(c2.actions) or "—"),
        ("DigitalSourceType", ", ".join(s.code for s in c2.digital_source_types) or "—"),
        ("Failed checks", "; ".join(c2.failures) or "none")], columns=["field", "value"]), hide_index=True,
        key="forensics.c2pa")


def render_probe(cur: CurrentImage, img: Image.Image, keys: Sequence[str] | None = None,
                 key_prefix: str = "forensics") -> ProbeResult | None:
    """Button that re-scores the image under each degradation; then the chart, one sentence per detector, a table.

    Args:
        cur, img: the current image.
        keys: ``ID:variant`` keys to probe (default: every installed detector, the chosen variants).
        key_prefix: widget-key namespace, so other pages can embed the probe (e.g. ``"single"``, ``"ensemble"``).

    Returns:
        The stored probe for these detectors (None until run).
    """
    from ui.analysis import ensemble_keys
    from ui.models import apply_threads, get_detector
    if keys is None:
        keys, _ = ensemble_keys()
    keys = list(keys)
    st.caption("Conditions: " + "; ".join(f"**{c.label}**: {c.description}" for c in CONDITIONS[1:]))
    if not keys:
        st.info("No detector weights are installed, so there is nothing to probe. Install weights on the Models "
                "page; the forensic views need none.")
        return None
    label = (f"Run the robustness probe with {len(keys)} installed detector(s) ({len(keys) * len(CONDITIONS)} "
             "scorings)" if len(keys) > 1 else f"Run the robustness probe ({len(CONDITIONS)} scorings)")
    if st.button(label, key=f"{key_prefix}.probe_run", type="primary" if key_prefix == "forensics" else "secondary"):
        apply_threads()
        dets, names = [], []
        for k in keys:
            det, why = get_detector(k)
            if det is None:
                st.warning(why)
            else:
                dets.append(det)
                names.append(k)
        bar = st.progress(0.0, text="Starting…")
        probe = run_probe(img, dets, progress=lambda d, t, m: bar.progress(d / max(t, 1), text=m))
        bar.empty()
        st.session_state.setdefault("forensics.probe", {}).setdefault(cur.sha256, {})[tuple(names)] = probe
        keys = names
    probe = stored_probe(cur.sha256, keys)
    if probe is None:
        return None
    st.plotly_chart(probe_figure(probe), key=f"{key_prefix}.probe_chart")
    for s in probe.stability:
        (st.warning if s.flips else st.info if not s.stable else st.success)(s.sentence)
    st.dataframe(pd.DataFrame([{"detector": r.detector, "condition": r.condition,
                                "p_fake": None if r.p_fake != r.p_fake else round(r.p_fake, 4), "verdict": r.label,
                                "note": r.error} for r in probe.rows]), hide_index=True,
                 key=f"{key_prefix}.probe_table")
    return probe


def render_report(cur: CurrentImage, img: Image.Image) -> None:
    """"Prepare case report" (runs installed detectors not run yet) then HTML and JSON download buttons."""
    from ui.analysis import ensemble_config, ensemble_keys, run_detectors, stored
    from ui.models import get_detector
    keys, missing = ensemble_keys()
    st.caption("A self-contained HTML page (opens offline; images embedded) and the same numbers as JSON: hashes, "
               "metadata, forensic views, each installed detector's result with its weights sha256, the ensemble, "
               "the robustness probe if run above, reasons to doubt, library versions and a timestamp.")
    if st.button("Prepare case report", key="forensics.report_build"):
        if keys:
            run_detectors(cur, img, keys)
        dets = [d for d in (get_detector(k)[0] for k in keys) if d is not None]
        results = {k: v for k, v in stored(cur.sha256).items() if k in keys}
        try:
            with st.spinner("Building the report…"):
                rep = build_report(cur.data, dets, name=cur.name, results=results, missing=missing,
                                   ensemble_config=ensemble_config(), probe=stored_probe(cur.sha256, keys) or stored_probe(cur.sha256) or False,
                                   ela_quality=int(st.session_state.get("forensics.ela_quality", 90)),
                                   include_gps=bool(st.session_state.get("forensics.show_gps", False)))
        except BadImage as exc:
            st.error(str(exc))
            return
        st.session_state.setdefault("forensics.report", {})[cur.sha256] = rep
    rep: CaseReport | None = st.session_state.get("forensics.report", {}).get(cur.sha256)
    if rep is None:
        return
    stem = Path(cur.name).stem.replace(" ", "_")[:60] or "image"
    st.caption(f"Report prepared {rep.data['generated_at']}.")
    c1, c2 = st.columns(2)
    c1.download_button("Download case report (HTML)", rep.html, f"{stem}_report.html", "text/html",
                       key="forensics.report_html", type="primary")
    c2.download_button("Download case report (JSON)", rep.json_text(), f"{stem}_report.json", "application/json",
                       key="forensics.report_json")


__all__ = ["metadata", "views", "ela", "facts", "stored_probe", "result_doubts", "ensemble_doubts",
           "render_reasons", "render_overview", "render_frequency", "render_npr", "render_ela", "render_noise",
           "render_metadata", "render_c2pa", "render_probe", "render_report"]
