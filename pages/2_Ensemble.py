"""Ensemble: every installed detector on one image; the graded assessment, then the original app's weighted vote."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.verdict.ensemble import load_config
from core.verdict.present import fusions_text
from ui.analysis import ensemble_keys, run_detectors, stored
from ui.figures import ensemble_bar, vote_table
from ui.forensics_views import render_probe
from ui.state import init_state
from ui.verdict import current_assessment, latest_probe, render_headline, rule_picker
from ui.widgets import image_input, persistent, show_image, sidebar_settings

st.set_page_config(page_title="Ensemble · Deepfake Lens", page_icon=":material/balance:", layout="wide")
init_state()
sidebar_settings()
defaults = load_config()


def _reset() -> None:
    for k in list(st.session_state):
        if k.startswith("ensemble."):
            del st.session_state[k]


st.session_state.setdefault("ensemble.vote_threshold", float(defaults.vote_threshold))
with st.sidebar:
    st.markdown("### Ensemble rule")
    rule_picker()
    persistent(st.slider, "Vote threshold", "ensemble.vote_threshold", min_value=0.5, max_value=0.99, step=0.01,
               help="A detector votes only when its confidence in its own verdict exceeds this.")
    weights = {}
    for det_id, w in defaults.weights.items():
        st.session_state.setdefault(f"ensemble.w.{det_id}", float(w))
        weights[det_id] = persistent(st.number_input, f"Weight {det_id}", f"ensemble.w.{det_id}", min_value=0.0,
                                     max_value=1.0, step=0.05)
    st.session_state["ensemble.weights"] = weights
    st.caption(f"Sum of weights: **{sum(weights.values()):.2f}** (only ratios matter; missing detectors are "
               "left out and the rest renormalised). The weights act on the original app's vote.")
    st.button("Reset to the configuration files", on_click=_reset, key="reset.ensemble")

st.title("Ensemble")
st.caption("The headline is a graded assessment: strong, moderate or weak evidence, or inconclusive, with the "
           "reasons that set it (too few confident detectors, a split, a tiny or recompressed image, a detector "
           "outside what it was trained for). Beneath it, the original app's weighted vote, unchanged: each "
           "detector's confidence in its own verdict votes only above the vote threshold; a vote adds weight × "
           "confidence to its side; the larger side wins and a tie is UNCERTAIN.")
keys, missing = ensemble_keys()
if missing:
    st.info("Not installed, left out: " + ", ".join(f"{d} ({why})" for d, why in missing.items()))
picked = image_input("ensemble")
if picked is None:
    st.stop()
cur, img = picked
c_img, c_res = st.columns([2, 3])
with c_img:
    show_image(img, cur)
with c_res:
    if not keys:
        st.warning("No detector weights are installed: nothing to combine. See the Models page.")
        st.stop()
    if st.button(f"Run the {len(keys)} installed detector(s)", type="primary", key="ensemble.run"):
        run_detectors(cur, img, keys)
    if not stored(cur.sha256):
        st.stop()
    assessment, ens, results = current_assessment(cur)
    render_headline(assessment, ens)
    # One metric per row (how many voted is in the vote's line above): side by side in this column their labels
    # and values were cut off ("0.25 / …").
    st.metric("Weighted votes fake / real (uncalibrated)", f"{ens.votes_fake:.2f} / {ens.votes_real:.2f}",
              help="Sums of weight × each detector's uncalibrated confidence in its own verdict.")
    st.metric("Mean logit (uncalibrated)", "n/a" if math.isnan(ens.mean_logit) else f"{ens.mean_logit:+.2f}",
              help="The weighted mean of raw logits on different scales: a score, not a probability.")
    if fusions_text(ens):
        st.caption(f"Logit fusions of the vote's detectors: {fusions_text(ens)}.")
    st.write(ens.explanation)
    if ens.excluded:
        with st.expander(f"Left out of the vote ({len(ens.excluded)})"):
            st.markdown("\n".join(f"- {line}" for line in ens.excluded))
if ens.votes:
    st.plotly_chart(ensemble_bar(ens), key="ensemble.chart")
    st.dataframe(pd.DataFrame(vote_table(ens, assessment)), hide_index=True, key="ensemble.table")
    before = latest_probe(cur.sha256)
    with st.expander("Robustness probe — does the verdict survive recompression, resizing, blur?"):
        render_probe(cur, img, keys, key_prefix="ensemble")
    if latest_probe(cur.sha256) is not before:
        st.rerun()                    # a probe just run: its flips act on the headline above, drawn again
