"""Deepfake Lens — entry page (streamlit run Home.py)."""
from __future__ import annotations

import streamlit as st

from ui.state import init_state
from ui.status import status_table

st.set_page_config(page_title="Deepfake Lens", page_icon="🔎", layout="wide")
init_state()

st.title("🔎 Deepfake Lens")
st.markdown(
    "Tells an analyst whether an image is **camera-made or AI-generated** and whether a **face was swapped**. "
    "It runs five published detectors of AI-generated images (CLIP-D, R50_TF, R50_nodown, P2G, NPR) and a face "
    "classifier on CPU, each exactly as its paper's code, and combines them in an ensemble."
)
st.subheader("Detectors")
st.dataframe(status_table(), hide_index=True, width="stretch", key="home.status")
st.caption("A detector whose weights are not installed is never run: no verdict is ever shown from missing or "
           "random weights. Install weights with `python -m core weights import FILE --detector ID`.")
