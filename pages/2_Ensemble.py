"""Ensemble: every installed detector on one image, the seed's weighted vote, fusions, editable weights."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.verdict.ensemble import load_config
from ui.analysis import current_ensemble, ensemble_keys, run_detectors, stored
from ui.figures import ensemble_bar, p_fake_gauge_text
from ui.forensics_views import ensemble_doubts, render_probe, render_reasons
from ui.state import init_state
from ui.widgets import image_input, persistent, sidebar_settings

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
    persistent(st.slider, "Vote threshold", "ensemble.vote_threshold", min_value=0.5, max_value=0.99, step=0.01,
               help="A detector votes only when its confidence in its own verdict exceeds this.")
    weights = {}
    for det_id, w in defaults.weights.items():
        st.session_state.setdefault(f"ensemble.w.{det_id}", float(w))
        weights[det_id] = persistent(st.number_input, f"Weight {det_id}", f"ensemble.w.{det_id}", min_value=0.0,
                                     max_value=1.0, step=0.05)
    st.session_state["ensemble.weights"] = weights
    st.caption(f"Sum of weights: **{sum(weights.values()):.2f}** (only ratios matter; missing detectors are "
               "left out and the rest renormalised)")
    st.button("Reset to configs/ensemble.yaml", on_click=_reset, key="reset.ensemble")

st.title("Ensemble")
st.caption("The seed's rule, unchanged: each detector's confidence in its own verdict (p_fake if it says fake, "
           "1 − p_fake if real) votes only above the vote threshold; a vote adds weight × confidence to its side; "
           "the larger side wins and a tie is UNCERTAIN. Mean-logit and soft-OR fusions are shown beside it.")
keys, missing = ensemble_keys()
if missing:
    st.info("Not installed, excluded from the vote: " + ", ".join(f"{d} ({why})" for d, why in missing.items()))
picked = image_input("ensemble")
if picked is None:
    st.stop()
cur, img = picked
c_img, c_res = st.columns([2, 3])
c_img.image(img, caption=f"{cur.name} · {img.width}×{img.height}", width="stretch")
with c_res:
    if not keys:
        st.warning("No detector weights are installed: nothing to combine. See the Models page.")
        st.stop()
    if st.button(f"Run the {len(keys)} installed detector(s)", type="primary", key="ensemble.run"):
        run_detectors(cur, img, keys)
    if not stored(cur.sha256):
        st.stop()
    ens, results = current_ensemble(cur.sha256)
    colour = {"FAKE": "red", "REAL": "green", "UNCERTAIN": "orange"}[ens.verdict]
    st.markdown(f"## :{colour}[{ens.verdict}]")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Weighted confidence", p_fake_gauge_text(ens.confidence))
    m2.metric("Votes fake / real", f"{ens.votes_fake:.2f} / {ens.votes_real:.2f}")
    m3.metric("Mean-logit P(fake)", p_fake_gauge_text(ens.p_mean_logit))
    m4.metric("Soft-OR P(fake)", p_fake_gauge_text(ens.p_soft_or))
    st.write(ens.explanation)
    render_reasons(ensemble_doubts(cur, ens, results))
    for line in ens.excluded:
        st.caption(line)
if ens.votes:
    st.plotly_chart(ensemble_bar(ens), key="ensemble.chart")
    st.dataframe(pd.DataFrame([{
        "detector": v.detector_id, "variant": v.variant, "verdict": v.label, "p_fake": round(v.p_fake, 4),
        "logit": round(v.logit, 4), "confidence": round(v.score, 4), "votes": v.voted, "weight": v.weight,
        "effective weight": round(v.effective_weight, 3), "time (s)": round(v.elapsed_s, 2)} for v in ens.votes]),
        hide_index=True, key="ensemble.table")
    with st.expander("Robustness probe — does the verdict survive recompression, resizing, blur?"):
        render_probe(cur, img, keys, key_prefix="ensemble")
