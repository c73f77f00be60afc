"""Evaluation: labelled folders in; trustworthy metrics, curves, an error gallery and exports out."""
from __future__ import annotations

import streamlit as st

from core.evaluation.datasets import from_examples
from ui import evaluation as ev
from ui.state import init_state
from ui.verdict import apply_profile_to_evaluation, profile_summary
from ui.widgets import sidebar_settings

st.set_page_config(page_title="Evaluation · Deepfake Lens", page_icon=":material/analytics:", layout="wide")
init_state()
ev.init_eval_state()
sidebar_settings()
ev.finish_interrupted_job()          # a run stopped by Cancel is rebuilt from the score cache

st.title("Evaluation")
st.markdown(
    "Measure the installed detectors on **your own labelled images**. Labels come from folder names "
    "(`real/` `fake/`, or ForenSynths' `0_real/` `1_fake/`; any other folders become a *group*, e.g. the "
    "generator) or from a CSV. Every file you give appears in the results: unreadable, unsafe or unlabelled "
    "files are listed with the reason instead of being dropped. Scores are cached, so changing the threshold "
    "or running again never recomputes."
)

keys = ev.detector_picker()
c1, c2 = st.columns([3, 1])
use_ensemble = c1.checkbox("Add the weighted vote of the original app over the chosen detectors", value=True,
                           key="eval.use_ensemble", disabled=len(keys) < 2)
batch_size = int(c2.number_input("Batch size", 1, 64, 8, key="eval.batch_size"))
ensemble = use_ensemble and len(keys) >= 2

with st.container(border=True):
    st.markdown("**Demo** — one click on the bundled example images.")
    st.caption("Camera photos count as *real*; the project-rendered images (procedural shapes, an up-sampled "
               "texture — **not AI-generated**) stand in for the *not a camera photo* class. Six images show how "
               "the evaluation works; they are not a benchmark of AI-image detection.")
    if st.button("Run the demo evaluation", key="eval.demo", disabled=not keys):
        ev.start(ev.Job(from_examples(), tuple(keys), ensemble, None, batch_size))

st.subheader("Your data")
dataset, external = ev.dataset_input()
only_csv = dataset is not None and dataset.kind == "predictions"
can_run = dataset is not None and (bool(keys) or external is not None)
if dataset is not None and not can_run:
    st.info("Choose at least one installed detector above, or evaluate a predictions CSV.")
if st.button("Run evaluation", key="eval.start", type="primary", disabled=not can_run):
    ev.start(ev.Job(dataset, () if only_csv else tuple(keys), ensemble and not only_csv, external, batch_size))

apply_profile_to_evaluation()       # the sidebar's calibration profile adds calibrated and stacked columns
run = st.session_state.get("eval.result")
if run is not None:
    profile_summary()
    st.divider()
    ev.render_results(run)
