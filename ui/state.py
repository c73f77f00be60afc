"""Session-state keys shared by every page (namespaced, initialised with setdefault)."""
from __future__ import annotations

import streamlit as st

DEFAULTS = {
    "settings.device": "cpu",
    "settings.threads": 2,
}


def init_state() -> None:
    """Initialise shared keys on every page (safe to call repeatedly)."""
    for key, value in DEFAULTS.items():
        st.session_state.setdefault(key, value)
