"""Models: status of every detector variant; download, import (file, your own custom file, or the Truebees bundle)
and delete weights. Server paths appear only when DEEPFAKE_LENS_DATA_ROOT is set, and stay inside it."""
from __future__ import annotations

import streamlit as st

from core.errors import DeepfakeLensError
from core.models import install
from core.models import weights as W
from core.models.registry import list_specs
from ui.model_admin import data_root, import_upload
from ui.state import init_state
from ui.status import status_table
from ui.widgets import sidebar_settings


def _done(reports, notes) -> None:  # noqa: ANN001 - lists of ImportReport / str
    """Report an import; names from files and archives are untrusted, so they are shown as plain text."""
    for r in reports:
        label = f' as custom "{r.name}"' if r.name else ""
        st.success(f"Installed {r.key}.")
        st.text(f"{r.key}{label} → {r.path}\nsha256 {r.sha256}")
    for n in notes:
        st.text(n)


def _failed(exc: DeepfakeLensError) -> None:
    st.error("Not imported.")
    st.text(str(exc))


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
st.dataframe(status_table(every_variant=True), hide_index=True, key="models.table")

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
            _done(*import_upload(bundle_up, bundle_path, None, "weights"))
        except DeepfakeLensError as exc:
            _failed(exc)

st.subheader("Each detector")
st.caption("A *custom* variant holds your own checkpoint for that architecture (fine-tuned or retrained): it must "
           "fit the architecture exactly, and it is labelled custom, with the name you give it, everywhere.")
for spec in list_specs():
    with st.expander(f"{spec.key} — {spec.card.title}"):
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
                st.caption("Sources: " + "; ".join(s.describe() for s in ws.sources))
            k = f"models.{spec.key}.{part}"
            c1, c2, c3 = st.columns(3)
            if any(s.type in ("url", "hf", "gdrive") for s in ws.sources) and c1.button("Download", key=k + ".dl"):
                bar = st.progress(0.0, text="Downloading…")
                try:
                    W.download(spec, part=part, progress=lambda d, t: bar.progress(min(1.0, d / t) if t else 0.0,
                                                                                   text=f"{d / 1e6:.1f} MB"))
                    st.success("Downloaded and verified.")
                except DeepfakeLensError as exc:
                    st.error(str(exc))            # names the YAML's own sources only
            custom = spec.variant == install.CUSTOM and part == "weights"
            up = c2.file_uploader("Import your own file" if custom else "Import a file", key=k + ".up")
            with c2:
                path = _path_input("…or a path on the server", k + ".path")
            name = c2.text_input("Name for your checkpoint", key=k + ".name", max_chars=64) if custom else None
            if c2.button("Import", key=k + ".import", disabled=not (up or path)):
                try:
                    with st.spinner("Verifying…"):
                        _done(*import_upload(up, path, spec, part, custom_name=name))
                except DeepfakeLensError as exc:
                    _failed(exc)
            if stat.state != "missing" and c3.button("Delete", key=k + ".del"):
                W.delete(spec, part)
                st.rerun()
