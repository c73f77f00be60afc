"""Widgets shared by pages: the image picker (upload or example) and the sidebar settings (device, threads, variants,
calibration profile: ``settings.profile`` holds the chosen Profile or None, ``settings.profile_name`` its name)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import streamlit as st
from PIL import Image

from core import settings
from core.errors import BadImage, ProfileError
from core.examples import example_bytes, list_examples
from core.io import IMAGE_TYPES, load_image
from core.models.registry import list_detectors
from core.verdict.calibration import Profile, load_profile
from core.verdict.present import profile_description
from ui.models import remember_variant, variant_choice, variant_label, variants_of


@dataclass(frozen=True)
class CurrentImage:
    """The image the analyst is working on (kept in session state across pages)."""

    name: str
    data: bytes
    sha256: str
    note: str = ""        # e.g. the example's credit


def _set_current(name: str, data: bytes, note: str = "") -> None:
    st.session_state["analyse.image"] = CurrentImage(name, data, hashlib.sha256(data).hexdigest(), note)


def _uploaded(page: str) -> None:
    # A new upload (or its removal) is the latest action: it wins over an example picked before it.
    st.session_state[f"{page}.source"] = "upload"
    st.session_state[f"{page}.example"] = "—"


def _picked_example(page: str) -> None:
    st.session_state[f"{page}.example_new"] = True


def upload_limit_mb() -> int:
    """The image uploader's per-file limit in MB: the library's byte limit (``DEEPFAKE_LENS_MAX_BYTES``), never
    above the server's ``server.maxUploadSize`` (which refuses larger requests anyway)."""
    server = int(st.get_option("server.maxUploadSize"))
    return max(1, min(server, settings.max_bytes() // settings.MB))


def image_input(page: str) -> tuple[CurrentImage, Image.Image] | None:
    """Upload or pick an example; the choice is shared by every page through ``st.session_state``.

    The latest action wins: picking an example while a file sits in the upload box shows the example (and says
    so); uploading a file afterwards switches back to the upload.

    Returns:
        (the current image, its decoded RGB image) or None when nothing usable is chosen. A bad file shows one
        clear sentence.
    """
    col_up, col_ex = st.columns([3, 2])
    with col_up:
        up = st.file_uploader("Upload an image", type=IMAGE_TYPES, key=f"{page}.upload", on_change=_uploaded,
                              args=(page,), max_upload_size=upload_limit_mb())
    with col_ex:
        examples = list_examples()
        names = ["—"] + [e.name for e in examples]
        pick = st.selectbox("…or try an example", names, key=f"{page}.example", on_change=_picked_example,
                            args=(page,))
    if st.session_state.pop(f"{page}.example_new", False):
        st.session_state[f"{page}.source"] = "example" if pick != "—" else "upload"
        if pick != "—":
            ex = next(e for e in examples if e.name == pick)
            _set_current(ex.name, example_bytes(ex), f"{ex.origin} — {ex.credit}")
    if up is not None and st.session_state.get(f"{page}.source") != "example":
        data = up.getvalue()
        cur = st.session_state.get("analyse.image")
        if cur is None or cur.name != up.name or cur.sha256 != hashlib.sha256(data).hexdigest():
            _set_current(up.name, data)
    if up is not None and st.session_state.get(f"{page}.source") == "example":
        st.info("Showing the example you picked, not the file in the upload box. To analyse your file instead, "
                "set the example back to — or upload it again.")
    cur = st.session_state.get("analyse.image")
    if cur is None:
        return None
    try:
        img = _decode(cur.data)
    except BadImage as exc:
        st.error("This file cannot be read as an image:")
        st.text(f"{cur.name}: {exc.why}")         # the name is the uploader's text: never rendered as Markdown
        return None
    return cur, img


@st.cache_data(max_entries=16, show_spinner=False)
def _decode(data: bytes) -> Image.Image:
    return load_image(data)


def show_image(img: Image.Image, cur: CurrentImage, extra: str = "", *, shown: Image.Image | None = None) -> None:
    """The image, then its name and size as plain text: an uploaded file's name is never rendered as Markdown
    (``st.image`` captions are Markdown)."""
    st.image(shown if shown is not None else img, width="stretch")
    st.text(f"{cur.name} · {img.width}×{img.height}" + (f" · {cur.note}" if cur.note else "") +
            (f" · {extra}" if extra else ""))


def persistent(widget, label: str, key: str, **kwargs):
    """A widget whose value survives page switches.

    Streamlit forgets a widget's keyed state when another page runs, so the value lives under ``key`` (set by
    ui.state.init_state) and the widget uses ``key + "._w"``, copying its value back on change.
    """
    wkey = key + "._w"

    def _sync() -> None:
        st.session_state[key] = st.session_state[wkey]

    # Re-seed on every run: after a page switch Streamlit may keep a stale entry that the new widget ignores.
    st.session_state[wkey] = st.session_state[key]
    return widget(label, key=wkey, on_change=_sync, **kwargs)


def sidebar_settings() -> None:
    """Device / threads / variant choices (namespaced session keys, shared by all pages)."""
    with st.sidebar:
        st.markdown("### Settings")
        persistent(st.selectbox, "Device", "settings.device", options=["cpu"], help="Models run on CPU.")
        persistent(st.slider, "Threads", "settings.threads", min_value=1, max_value=max(1, os.cpu_count() or 1),
                   help="PyTorch intra-op threads used for inference.")
        persistent(st.toggle, "Fast mode (bf16)", "settings.fast",
                   help="Runs CLIP-D in bfloat16: measured 2.3–2.8× faster with |Δlogit| ≤ 0.001 and no verdict "
                        "change on the test images (bench/results.json). Every other detector stays in faithful "
                        "float32 (R50_nodown's bf16 gain measured 1.85–2.29×, not reliably the required 2×). Off by "
                        "default: the default is the papers' exact numbers.")
        variant_sidebar()
        profile_sidebar()


def variant_sidebar() -> None:
    """One variant per detector id. A new session starts on the installed variant (the original when several
    are) or the one remembered from the last pick; a pick is remembered in the preferences file for new sessions
    and the command line (:mod:`core.preferences`)."""
    def _picked(det_id: str, wkey: str) -> None:
        if not remember_variant(det_id, st.session_state[wkey]):
            st.session_state["settings.prefs_unsaved"] = True

    with st.expander("Detector variants"):
        for det_id in list_detectors():
            opts = variants_of(det_id)
            if len(opts) < 2:
                continue
            wkey = f"settings.variant.{det_id}._w"
            # Re-seeded every run: the default follows what is installed until the analyst picks one.
            st.session_state[wkey] = variant_choice(det_id).split(":", 1)[1]
            st.selectbox(det_id, opts, key=wkey, on_change=_picked, args=(det_id, wkey),
                         format_func=lambda v, d=det_id: variant_label(d, v))
        if st.session_state.get("settings.prefs_unsaved"):
            st.caption("Your picks hold for this session only: the preferences file could not be written.")
        else:
            st.caption("Your picks are remembered for new sessions and the command line.")
        st.text(str(settings.preferences_file()))      # a path: plain text


# --------------------------------------------------------------------------------------------- calibration profile

NO_PROFILE = "none (uncalibrated)"


def current_profile() -> Profile | None:
    """The calibration profile chosen in the sidebar (None: uncalibrated)."""
    return st.session_state.get("settings.profile")


def _saved_profiles() -> dict[str, str]:
    folder = settings.profiles_dir()
    try:
        return {p.name: str(p) for p in sorted(folder.glob("*.json")) if p.is_file()}
    except OSError:
        return {}


def profile_sidebar() -> None:
    """Choose a saved profile (``DEEPFAKE_LENS_PROFILES``) or upload one; the choice is shared by every page."""
    st.session_state.setdefault("settings.profile", None)
    st.session_state.setdefault("settings.profile_name", NO_PROFILE)
    with st.expander("Calibration profile"):
        saved = _saved_profiles()
        names = [NO_PROFILE] + list(saved) + ([st.session_state["settings.profile_name"]]
                                             if st.session_state["settings.profile_name"] not in saved
                                             and st.session_state["settings.profile_name"] != NO_PROFILE else [])
        st.session_state.setdefault("settings.profile_pick", st.session_state["settings.profile_name"])
        picker = st.container()          # drawn after the upload is read, so it shows the profile in use now
        up = st.file_uploader("…or upload a profile (JSON)", type=["json"], key="settings.profile_upload")
        try:
            if up is not None and st.session_state.get("settings.profile_name") != f"{up.name} (uploaded)":
                _use(load_profile(up.getvalue()), f"{up.name} (uploaded)")
                names.append(f"{up.name} (uploaded)")
        except ProfileError as exc:
            _refused(exc)
        with picker:
            pick = persistent(st.selectbox, "Profile", "settings.profile_pick", options=names,
                              help=f"Profiles made by `python -m core calibrate` in {settings.profiles_dir()}")
        try:
            if up is None and pick != st.session_state["settings.profile_name"]:
                _use(load_profile(saved[pick]) if pick in saved else None, pick if pick in saved else NO_PROFILE)
        except ProfileError as exc:
            _refused(exc)
        prof = current_profile()
        if prof is not None:
            st.text(profile_description(prof))    # names and fields from the profile file: plain text


def _refused(exc: ProfileError) -> None:
    st.error("This calibration profile was refused:")
    st.text(str(exc))                         # may quote the uploaded document: plain text, never Markdown


def _use(profile: Profile | None, name: str) -> None:
    st.session_state["settings.profile"] = profile
    st.session_state["settings.profile_name"] = name
    st.session_state["settings.profile_pick"] = name
