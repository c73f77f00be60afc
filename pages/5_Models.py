"""Models: status of every detector variant; download, import (file, your own custom file, or the Truebees bundle)
and delete weights. Server paths appear only when DEEPFAKE_LENS_DATA_ROOT is set, and stay inside it."""
from __future__ import annotations

import streamlit as st

from core.errors import DeepfakeLensError
from core.models import install
from core.models import weights as W
from core.models.registry import list_specs
from core.models.selection import downloadable, size_text
from ui.model_admin import (CONFIRM, FLASH, data_root, delete_button, download_all_section, flash, import_upload,
                            imported, show_flash)
from ui.state import init_state
from ui.status import status_table
from ui.widgets import sidebar_settings


def _failed(exc: DeepfakeLensError) -> None:
    st.error("Not imported.")
    st.text(str(exc))                             # names the user's file, never a temporary path


def _path_input(label: str, key: str) -> str:
    """A server-path box only when a data folder is configured (otherwise uploads only)."""
    root = data_root()
    if root is None:
        return ""
    return st.text_input(f"{label} (inside {root})", key=key)


st.set_page_config(page_title="Models · Deepfake Lens", page_icon=":material/inventory_2:", layout="wide")
init_state()
sidebar_settings()
st.title("Models and weights")
st.caption(f"Weights folder: `{W.weights_dir()}` (set DEEPFAKE_LENS_WEIGHTS to move it). Every file is verified "
           "before it is installed: size and sha256 when known, a safe load that can never run code, and a strict "
           "fit to the architecture.")
if data_root() is None:
    st.caption("Imports are uploads only. To import from a folder on this server, set DEEPFAKE_LENS_DATA_ROOT to "
               "that folder; paths are then confined to it.")
show_flash()
_variants = status_table(every_variant=True).drop(columns=["training data"])     # on Home; too long for 25 rows
_variants["in use"] = _variants["in use"].map({True: "yes", False: ""})
st.table(_variants.set_index("detector"))      # a static table wraps long text: no licence or source is cut off

st.subheader("Download every detector's weights")
st.caption("What is missing for the detectors that have no installed variant yet, with sizes and licences. Each "
           "file is verified before it is installed. Command line: `python -m core weights download-all`.")
download_all_section()

st.subheader("Import the Truebees bundle")
st.caption("The TrueFake-trained weights of all detectors come as one Google Drive bundle "
           "(file id 1F60FN2B9skRcb3YrZwhFTZQihbj3ipJQ). Each checkpoint is taken from "
           "detectors/<ID>/checkpoint/pretrained/weights/best.pt or models/<ID>/weights/best.pt.")
b1, b2 = st.columns(2)
bundle_up = b1.file_uploader("Bundle zip", type=["zip"], key="models.bundle_upload")
with b2:
    bundle_path = _path_input("…or a zip/folder path on the server", "models.bundle_path")
if st.button("Import bundle", key="models.bundle_go", disabled=not (bundle_up or bundle_path)):
    with st.spinner("Verifying and importing…"):
        try:
            reports, notes = import_upload(bundle_up, bundle_path, None, "weights")
        except DeepfakeLensError as exc:
            _failed(exc)
        else:
            imported(reports, notes, "bundle")
show_flash("bundle")

st.subheader("Each detector")
st.caption("A *custom* variant holds your own checkpoint for that architecture (fine-tuned or retrained): it must "
           "fit the architecture exactly, and it is labelled custom, with the name you give it, everywhere.")
st.caption(f"Uploads are limited to {st.get_option('server.maxUploadSize')} MB per file (server.maxUploadSize). Larger "
           "files, such as the CLIP backbones (0.6–1.7 GB), install with **Download**, a server path, or "
           "`python -m core weights import FILE --detector ID --part backbone`.")
confirm = st.session_state.get(CONFIRM)
pending = {m[0] for m in st.session_state.get(FLASH, [])} | ({f"models.{confirm[0]}."} if confirm else set())
for spec in list_specs():
    # kept open when it holds a message or a delete confirmation: the rerun after an action must not hide them
    with st.expander(f"{spec.key} — {spec.card.title}", expanded=any(w.startswith(f"models.{spec.key}.")
                                                                      for w in pending)):
        for part, ws in W.parts(spec):
            stat = W.status(spec, part)
            st.markdown(f"**{part}** `{ws.file}` — **{stat.state}**" +
                        (f"  \nsha256 `{stat.sha256}` at `{stat.path}`" if stat.state == "installed" else ""))
            label = install.custom_label(spec) if part == "weights" and stat.state == "installed" else None
            if label:
                st.text(label)                    # the user's own name: plain text, never Markdown
            if stat.state != "installed":
                st.caption(stat.message)
            if ws.sources:
                st.caption("Sources: " + "; ".join(s.describe() for s in ws.sources) +
                           f" · size: {size_text(ws)} · licence: {ws.licence or spec.card.licence}")
            k = f"models.{spec.key}.{part}"
            c1, c2, c3 = st.columns(3)
            if downloadable(ws) and c1.button("Download", key=k + ".dl"):
                bar = st.progress(0.0, text="Connecting…")
                try:
                    got = W.download(spec, part=part, progress=lambda d, t: bar.progress(
                        min(1.0, d / t) if t else 0.0, text=f"{d / 1e6:.1f} MB"))
                except DeepfakeLensError as exc:
                    st.error(str(exc))            # names the YAML's own sources only
                else:
                    flash("success", f"Downloaded and verified the {part} of {spec.key}.", [str(got)], k)
                    st.rerun()
            custom = spec.variant == install.CUSTOM and part == "weights"
            up = c2.file_uploader("Import your own file" if custom else "Import a file", key=k + ".up")
            with c2:
                path = _path_input("…or a path on the server", k + ".path")
            name = c2.text_input("Name for your checkpoint", key=k + ".name", max_chars=64) if custom else None
            if c2.button("Import", key=k + ".import", disabled=not (up or path)):
                try:
                    with st.spinner("Verifying…"):
                        reports, notes = import_upload(up, path, spec, part, custom_name=name)
                except DeepfakeLensError as exc:
                    _failed(exc)
                else:
                    imported(reports, notes, k)
            if stat.state != "missing":
                delete_button(spec, part, k, c3)
            show_flash(k)
