"""Forensics: evidence that needs no detector weights, the robustness probe and the case report."""
from __future__ import annotations

import streamlit as st

from core.errors import BadImage
from ui.forensics_sections import (
    render_ela,
    render_frequency,
    render_metadata,
    render_noise,
    render_npr,
    render_overview,
)
from ui.forensics_views import metadata, render_probe, render_report, views
from ui.state import init_state
from ui.widgets import image_input, sidebar_settings

st.set_page_config(page_title="Forensics · Deepfake Lens", page_icon=":material/troubleshoot:", layout="wide")
init_state()
sidebar_settings()
st.title("Forensics")
st.caption("Evidence that works without any detector weights: the image's frequency content, the NPR residual, "
           "error levels, noise, and what the file says about itself (EXIF, XMP/IPTC, C2PA, JPEG tables). "
           "Then: does each installed detector's verdict survive recompression, resizing and blur? "
           "Metadata is supporting evidence only — it can be stripped or forged.")

picked = image_input("forensics")
if picked is None:
    st.info("Upload an image or pick an example to see its forensic evidence.")
    st.stop()
cur, img = picked
try:
    meta = metadata(cur.data, cur.name, bool(st.session_state.get("forensics.show_gps", False)))
    freq, npr, noise = views(cur.data)
except BadImage as exc:
    st.error("This file cannot be analysed:")
    st.text(f"{cur.name}: {exc.why}")         # the name is the uploader's text: never rendered as Markdown
    st.stop()
render_overview(cur, img, meta)
tabs = st.tabs(["Frequency", "NPR residual", "Error levels (ELA)", "Noise", "Metadata", "Robustness probe",
                "Case report"])
with tabs[0]:
    render_frequency(freq)
with tabs[1]:
    render_npr(npr)
with tabs[2]:
    render_ela(cur.data)
with tabs[3]:
    render_noise(noise)
with tabs[4]:
    render_metadata(cur)
with tabs[5]:
    render_probe(cur, img)
with tabs[6]:
    render_report(cur, img)
