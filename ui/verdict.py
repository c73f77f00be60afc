"""The headline of the Home and Ensemble pages: the graded assessment, then the original app's weighted vote.

Also the calibration profile's use on the Evaluation page (the profile itself is chosen in the sidebar:
:func:`ui.widgets.profile_sidebar`). Session keys: ``ensemble.rule``, ``eval.profiled`` (the run a profile was
applied to).
"""
from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from core.evaluation.profiled import apply_profile
from core.results import DetectionResult
from core.verdict.abstention import ForensicFacts, facts_from_bytes
from core.verdict.assessment import Assessment, assess
from core.verdict.ensemble import EnsembleResult
from core.verdict.fitting import profile_table
from core.verdict.present import DIRECTION_COLOUR, UNCALIBRATED_NOTE, level_meanings, vote_line
from core.verdict.robustness import ProbeResult
from core.verdict.rules import Rules, load_rules
from ui.analysis import current_ensemble, ensemble_config
from ui.figures import p_fake_gauge_text
from ui.widgets import CurrentImage, current_profile, persistent

RULE_LABELS = {"graded": "Graded assessment",
               "vote": "Original app's weighted vote",
               "stacked": "Learned fusion (profile)"}


@st.cache_data(max_entries=32, show_spinner=False)
def facts(data: bytes) -> ForensicFacts:
    """Cached input facts of the current file (size, JPEG quality, double compression, EXIF size)."""
    return facts_from_bytes(data)


def rules() -> Rules:
    """configs/ensemble.yaml's rules with the Ensemble page's edited weights and vote threshold."""
    cfg = ensemble_config()
    return dataclasses.replace(load_rules(), weights=dict(cfg.weights), vote_threshold=cfg.vote_threshold)


def latest_probe(sha: str) -> ProbeResult | None:
    """The robustness probe last run on this image (on any page), or None: its flips cap the headline."""
    runs = st.session_state.get("forensics.probe", {}).get(sha) or {}
    return list(runs.values())[-1] if runs else None


def current_assessment(cur: CurrentImage) -> tuple[Assessment, EnsembleResult, list[DetectionResult]]:
    """The assessment and the original vote over the stored results of the chosen variants (nothing re-run)."""
    ens, results = current_ensemble(cur.sha256)
    r = rules()
    a = assess(results, rules=r, profile=current_profile(), facts=facts(cur.data), probe=latest_probe(cur.sha256),
               rule=st.session_state.get("ensemble.rule", r.rule))
    return a, ens, results


def render_assessment(a: Assessment, *, legend_note: str = "", hint: str = " Choose one in the sidebar.") -> None:
    """A graded assessment in :mod:`core.verdict.present`'s words (the CLI's and the case report's): the headline
    in its direction's colour, the calibrated P(fake) when a profile gave one, the reasons, the detectors left
    out, what the profile did (plain text: it may quote the uploaded file), and the levels' meaning.

    Args:
        a: the assessment.
        legend_note: a line added under the levels' meaning (e.g. the video rules).
        hint: said after the "uncalibrated" note.
    """
    st.markdown(f"### :{DIRECTION_COLOUR[a.direction]}[{a.headline}]")
    if a.p_fake is not None:
        st.metric("Calibrated P(fake)", p_fake_gauge_text(a.p_fake),
                  help=f"{a.fused_by}, from the calibration profile chosen in the sidebar.")
    st.markdown("\n".join(f"- {r}" for r in a.reasons) or "- no detector result yet")
    for line in a.excluded:
        st.caption(line)
    if a.calibration:
        st.caption("Calibration profile:")
        st.text("\n".join(a.calibration))    # may quote the uploaded profile: plain text, never Markdown
    if a.p_fake is None:
        st.caption(UNCALIBRATED_NOTE[0].upper() + UNCALIBRATED_NOTE[1:] + "." + hint)
    with st.expander("What the levels mean"):
        st.markdown("\n".join(f"- **{name}**: {text}" for name, text in level_meanings(rules()).items()))
        if legend_note:
            st.caption(legend_note)


def render_headline(a: Assessment, ens: EnsembleResult) -> None:
    """The assessment (:func:`render_assessment`), then — beneath it — the original app's weighted vote."""
    render_assessment(a)
    colour = {"FAKE": "red", "REAL": "green", "UNCERTAIN": "orange"}[ens.verdict]
    st.markdown(vote_line(ens).replace(ens.verdict, f":{colour}[{ens.verdict}]", 1))


def render_calibrated(result: DetectionResult) -> None:
    """The sidebar profile's calibration of one detector's result, or why it does not apply."""
    prof = current_profile()
    if prof is None or not result.ok:
        return
    app = prof.apply([result])
    cs = app.scores.get(result.key)
    if cs is None:
        st.caption(app.notes[0] if app.notes else "The calibration profile has nothing for this result.")
        return
    st.metric("Calibrated P(fake)", p_fake_gauge_text(cs.p_fake), f"{cs.label.upper()} at {cs.threshold:.3f}",
              delta_color="off", help="From the calibration profile chosen in the sidebar.")


# --------------------------------------------------------------------------------------------- rule

def rule_picker() -> str:
    """The Ensemble page's choice of the headline rule."""
    st.session_state.setdefault("ensemble.rule", load_rules().rule)
    return persistent(st.selectbox, "Headline rule", "ensemble.rule", options=list(RULE_LABELS),
                      format_func=RULE_LABELS.get,
                      help="Graded assessment: each confident detector counts once. Original app's weighted "
                           "vote: its detector weights decide the level. Learned fusion: the logistic regression "
                           "stored in a calibration profile, over calibrated scores (needs a profile with one).")


# --------------------------------------------------------------------------------------------- evaluation

def profile_summary() -> None:
    """The chosen profile's cross-validated table: each detector, the learned fusion and the original vote."""
    prof = current_profile()
    if prof is None:
        return
    with st.expander("Calibration profile chosen in the sidebar: cross-validated when fitted"):
        st.text(str(st.session_state.get("settings.profile_name", "")))     # an uploaded file's name: plain text
        st.dataframe(pd.DataFrame(profile_table(prof)), hide_index=True, key="eval.profile_table")
        st.caption("AUC: ranking quality (the learned fusion's is cross-validated; the original vote fits "
                   "nothing). ECE: calibration error before → after, cross-validated.")


def apply_profile_to_evaluation() -> None:
    """Show the Evaluation page's run with the chosen profile's calibrated and stacked columns (recomputed only
    when the run or the profile changes)."""
    run = st.session_state.get("eval.result")
    if run is None:
        return
    base, applied_to, shown = st.session_state.get("eval.profiled", (None, None, None))
    if run is not shown:
        base = run                                    # a new run was stored since
    prof = current_profile()
    if shown is run and applied_to is prof:
        return
    new = apply_profile(base, prof)[0] if prof is not None else base
    st.session_state["eval.profiled"] = (base, prof, new)
    st.session_state["eval.result"] = new
    st.session_state["eval.reports"] = {}             # the metrics memo belongs to the previous run


__all__ = ["facts", "latest_probe", "current_assessment", "render_assessment", "render_headline", "render_calibrated", "rule_picker",
           "profile_summary", "apply_profile_to_evaluation", "rules"]
