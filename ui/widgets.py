"""Widgets shared by pages: the image picker (upload or example) and the sidebar settings."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import streamlit as st
from PIL import Image

from core.errors import BadImage
from core.examples import example_bytes, list_examples
from core.io import load_image
from core.registry import list_detectors

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"]


@dataclass(frozen=True)
class CurrentImage:
    """The image the analyst is working on (kept in session state across pages)."""

    name: str
    data: bytes
    sha256: str
    note: str = ""        # e.g. the example's credit


def _set_current(name: str, data: bytes, note: str = "") -> None:
    st.session_state["analyse.image"] = CurrentImage(name, data, hashlib.sha256(data).hexdigest(), note)


def image_input(page: str) -> tuple[CurrentImage, Image.Image] | None:
    """Upload or pick an example; the choice is shared by every page through ``st.session_state``.

    Returns:
        (the current image, its decoded RGB image) or None when nothing usable is chosen. A bad file shows one
        clear sentence.
    """
    col_up, col_ex = st.columns([3, 2])
    with col_up:
        up = st.file_uploader("Upload an image", type=IMAGE_TYPES, key=f"{page}.upload")
    with col_ex:
        examples = list_examples()
        names = ["—"] + [e.name for e in examples]
        pick = st.selectbox("…or try an example", names, key=f"{page}.example")
    if up is not None:
        data = up.getvalue()
        cur = st.session_state.get("analyse.image")
        if cur is None or cur.name != up.name or cur.sha256 != hashlib.sha256(data).hexdigest():
            _set_current(up.name, data)
    elif pick != "—" and st.session_state.get(f"{page}.example_last") != pick:
        ex = next(e for e in examples if e.name == pick)
        _set_current(ex.name, example_bytes(ex), f"{ex.origin} — {ex.credit}")
    st.session_state[f"{page}.example_last"] = pick
    cur = st.session_state.get("analyse.image")
    if cur is None:
        return None
    try:
        img = _decode(cur.data)
    except BadImage as exc:
        st.error(f"{cur.name}: {exc.why}")
        return None
    return cur, img


@st.cache_data(max_entries=16, show_spinner=False)
def _decode(data: bytes) -> Image.Image:
    return load_image(data)


def sidebar_settings() -> None:
    """Device / threads / variant choices (namespaced session keys, shared by all pages)."""
    from ui.models import variants_of
    with st.sidebar:
        st.markdown("### Settings")
        st.selectbox("Device", ["cpu"], key="settings.device", help="Models run on CPU.")
        st.slider("Threads", 1, max(1, os.cpu_count() or 1), key="settings.threads",
                  help="PyTorch intra-op threads used for inference.")
        with st.expander("Detector variants"):
            chosen = dict(st.session_state.get("settings.variants", {}))
            for det_id in list_detectors():
                opts = variants_of(det_id)
                if len(opts) > 1:
                    cur = chosen.get(det_id, opts[0])
                    chosen[det_id] = st.selectbox(det_id, opts, index=opts.index(cur) if cur in opts else 0,
                                                  key=f"settings.variant.{det_id}")
            st.session_state["settings.variants"] = chosen
