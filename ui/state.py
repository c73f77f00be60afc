"""Session-state keys shared by every page (namespaced, initialised with setdefault on every page)."""
from __future__ import annotations

import os

import streamlit as st

DEFAULTS = {
    "settings.device": "cpu",
    "settings.threads": max(1, min(2, os.cpu_count() or 1)),
    "settings.variants": {},
    "settings.fast": False,         # bf16 fast mode, only for detectors whose YAML validated it
    "analyse.image": None,          # ui.widgets.CurrentImage
    "analyse.results": {},          # image sha256 → {ID:variant → DetectionResult}
    "analyse.errors": {},           # image sha256 → {ID:variant → sentence}
    "settings.profile": None,       # core.verdict.calibration.Profile chosen in the sidebar (None: uncalibrated)
    "settings.profile_name": "none (uncalibrated)",
}


def init_state() -> None:
    """Initialise shared keys (safe to call on every rerun of every page)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value.copy() if isinstance(value, dict) else value)
