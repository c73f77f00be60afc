"""Models: status of every detector variant; download, import (file or Truebees bundle) and delete weights."""
from __future__ import annotations

import streamlit as st

from core.errors import DeepfakeLensError
from core.models import weights as W
from core.models.registry import list_specs
from ui.model_admin import import_upload
from ui.state import init_state
from ui.status import status_table
from ui.widgets import sidebar_settings

st.set_page_config(page_title="Models · Deepfake Lens", page_icon=":material/inventory_2:", layout="wide")
init_state()
sidebar_settings()
st.title("Models and weights")
st.caption(f"Weights folder: `{W.weights_dir()}` (set DEEPFAKE_LENS_WEIGHTS to move it). Every file is verified "
           "before it is installed: size and sha256 when known, a safe load that can never run code, and a strict "
           "fit to the architecture.")
st.dataframe(status_table(every_variant=True), hide_index=True, key="models.table")

st.subheader("Import the Truebees bundle")
st.caption("The TrueFake-trained weights of all detectors come as one Google Drive bundle "
           "(file id 1F60FN2B9skRcb3YrZwhFTZQihbj3ipJQ) laid out as <DETECTOR>/…/best.pt. Upload the zip or give "
           "its path (or an unpacked folder) on this server.")
b1, b2 = st.columns(2)
bundle_up = b1.file_uploader("Bundle zip", type=["zip"], key="models.bundle_upload")
bundle_path = b2.text_input("…or a zip/folder path on the server", key="models.bundle_path")
if st.button("Import bundle", key="models.bundle_go", disabled=not (bundle_up or bundle_path)):
    with st.spinner("Verifying and importing…"):
        try:
            reports, notes = import_upload(bundle_up, bundle_path, None, "weights")
            for r in reports:
                st.success(f"Imported {r.key} → {r.path} (sha256 {r.sha256[:16]}…)")
            for n in notes:
                st.info(n)
        except DeepfakeLensError as exc:
            st.error(str(exc))

st.subheader("Each detector")
for spec in list_specs():
    with st.expander(f"{spec.key} — {spec.card.title}"):
        for part, ws in W.parts(spec):
            stat = W.status(spec, part)
            st.markdown(f"**{part}** `{ws.file}` — **{stat.state}**" +
                        (f"  \nsha256 `{stat.sha256}` at `{stat.path}`" if stat.state == "installed" else ""))
            if stat.state != "installed":
                st.caption(stat.message)
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
                    st.error(str(exc))
            up = c2.file_uploader("Import a file", key=k + ".up", label_visibility="collapsed")
            path = c2.text_input("…or a path on the server", key=k + ".path")
            if c2.button("Import", key=k + ".import", disabled=not (up or path)):
                try:
                    with st.spinner("Verifying…"):
                        (r,), _ = import_upload(up, path, spec, part)
                    st.success(f"Installed {r.path} (sha256 {r.sha256[:16]}…)")
                except DeepfakeLensError as exc:
                    st.error(str(exc))
            if stat.state != "missing" and c3.button("Delete", key=k + ".del"):
                W.delete(spec, part)
                st.rerun()
