"""Streamlit helpers shared by the Forensics page and the other pages: cached forensic computations, reasons to
doubt, the robustness probe and the case report.

The Forensics page's own sections (overview, pixel views, metadata) are in ui/forensics_sections.py; figures are
built by ui/forensics_figures.py. Session keys used here: ``forensics.probe`` ({sha256: {detector keys:
ProbeResult}}) and ``forensics.report`` ({sha256: CaseReport}).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from PIL import Image

from core import forensics as F
from core.errors import BadImage, DeepfakeLensError
from core.io import load_image, sniff_type
from core.models.registry import get_spec
from core.report import CaseReport, build_report
from core.results import DetectionResult
from core.verdict.abstention import ForensicFacts, Reason, ensemble_reasons, facts_from_bytes, result_reasons
from core.verdict.ensemble import EnsembleResult
from core.verdict.robustness import CONDITIONS, ProbeResult, run_probe
from ui.analysis import ensemble_config, ensemble_keys, run_detectors, stored
from ui.forensics_figures import probe_figure
from ui.models import apply_threads, get_detector
from ui.widgets import CurrentImage

# ----------------------------------------------------------------------------------------------- cached core calls


@st.cache_data(max_entries=8, show_spinner="Reading metadata…")
def metadata(data: bytes, name: str, include_gps: bool = False) -> F.Metadata:
    """Cached :func:`core.forensics.read_metadata`."""
    return F.read_metadata(data, name, include_gps=include_gps)


@st.cache_data(max_entries=8, show_spinner="Computing the frequency, NPR residual and noise views of the whole "
                                           "image (a few seconds per 10 megapixels)…")
def views(data: bytes) -> tuple[F.FrequencyView, F.NPRView, F.NoiseView]:
    """Cached frequency, NPR and noise views of an image file."""
    img = load_image(data)
    return F.frequency_view(img, jpeg=sniff_type(data) == "JPEG"), F.npr_view(img), F.noise_view(img)


@st.cache_data(max_entries=16, show_spinner="Error level analysis: re-saving the whole image as JPEG and "
                                            "comparing every pixel…")
def ela(data: bytes, quality: int) -> F.ELAView:
    """Cached error level analysis at one JPEG quality."""
    return F.ela_view(load_image(data), quality)


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


# ----------------------------------------------------------------------------------------------- probe and report

def eta_text(done: int, total: int, elapsed: float, unit: str = "steps") -> str:
    """"3 of 12 scorings · 41 s so far · about 2 min 3 s left" (no estimate before the first step is done)."""
    head = f"{done} of {total} {unit} · {elapsed:.0f} s so far"
    if done <= 0 or done >= total:
        return head
    m, s = divmod(int(round(elapsed / done * (total - done))), 60)
    return head + f" · about {f'{m} min ' if m else ''}{s} s left"


def eta_progress(bar: Any, unit: str) -> Callable[[int, int, str], None]:
    """A ``fn(done, total, message)`` progress callback that updates ``bar`` with the message, counts and an ETA."""
    t0 = time.perf_counter()

    def update(done: int, total: int, message: str) -> None:
        text = f"{message} — {eta_text(done, total, time.perf_counter() - t0, unit)}"
        bar.progress(min(1.0, done / max(total, 1)), text=text)
    return update


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
        probe = run_probe(img, dets, progress=eta_progress(bar, "scorings"))
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
                probe = stored_probe(cur.sha256, keys) or stored_probe(cur.sha256) or False
                rep = build_report(cur.data, dets, name=cur.name, results=results, missing=missing,
                                   ensemble_config=ensemble_config(), probe=probe,
                                   ela_quality=int(st.session_state.get("forensics.ela_quality", 90)),
                                   include_gps=bool(st.session_state.get("forensics.show_gps", False)))
        except BadImage as exc:
            st.error("The case report could not be built:")
            st.text(str(exc))                      # names the file: untrusted text, never Markdown
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
           "render_reasons", "render_probe", "render_report"]
