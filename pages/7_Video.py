"""Video: sampled frames, face tracks, a timeline and the same graded verdict as for images."""
from __future__ import annotations

import streamlit as st

from core import settings
from core.video.sampling import DEFAULT_MAX_FRAMES, SamplingPlan
from ui.state import init_state
from ui.video import (
    VIDEO_TYPES,
    ready_keys,
    render_downloads,
    render_frame,
    render_gallery,
    render_headline,
    run_analysis,
    timeline_figure,
)
from ui.widgets import sidebar_settings

st.set_page_config(page_title="Video · Deepfake Lens", page_icon=":material/movie:", layout="wide")
init_state()
sidebar_settings()
st.title("Video")
st.caption("Frames are sampled (1 per second by default, or the keyframes), faces are found with MTCNN and linked "
           "into tracks, and each face is scored by the FACE classifier when its weights are installed. Installed "
           "image detectors also score whole frames — weak evidence on compressed video frames. "
           f"Limits: {settings.max_video_seconds() / 3600:g} h, {settings.max_video_frames()} frames analysed, "
           f"{settings.max_video_pixels():,} pixels per frame.")

up = st.file_uploader("Upload a video", type=VIDEO_TYPES, key="video.upload")
whole, faces = ready_keys()
c1, c2, c3 = st.columns(3)
with c1:
    mode = st.radio("Sampling", ["frames per second", "keyframes"], horizontal=True, key="video.mode")
    fps = st.number_input("Frames per second", 0.1, 10.0, 1.0, 0.5, key="video.fps",
                          disabled=mode == "keyframes")
with c2:
    max_frames = st.number_input("Most frames analysed", 1, settings.max_video_frames(),
                                 min(DEFAULT_MAX_FRAMES, settings.max_video_frames()), key="video.max_frames")
with c3:
    use_face = st.toggle("Score faces (FACE)", value=bool(faces), disabled=not faces, key="video.use_face",
                         help=None if faces else "FACE weights not installed: faces are found and tracked only.")
    chosen = st.multiselect("Whole-frame detectors", whole, default=whole, key="video.detectors")

if up is not None and st.button("Analyse", type="primary", key="video.run"):
    plan = SamplingPlan(mode="keyframes" if mode == "keyframes" else "fps", fps=float(fps),
                        max_frames=int(max_frames))
    run_analysis(up.name, up.getvalue(), plan, chosen + (faces[:1] if use_face else []), use_face)

if st.session_state.get("video.error"):
    st.error(st.session_state["video.error"])
done = st.session_state.get("video.analysis")
if up is None or not done or done[0] != up.name:
    st.info("Upload a video (mp4, mov, webm, mkv, avi or animated GIF) and press Analyse.")
    st.stop()
name, data, analysis = done
render_headline(analysis)
if not analysis.frames:
    st.stop()
st.subheader("Timeline")
event = st.plotly_chart(timeline_figure(analysis), key="video.timeline", on_select="rerun",
                        selection_mode="points", width="stretch")
picked = [p.get("customdata") for p in (event.selection.points if event else []) if p.get("customdata") is not None]
st.subheader("Face tracks")
render_gallery(analysis)
st.subheader("Frame")
options = [f.index for f in analysis.frames]
if picked and picked[0] in options and st.session_state.get("video.last_pick") != picked[0]:
    st.session_state["video.frame"] = st.session_state["video.last_pick"] = picked[0]   # a clicked point
if st.session_state.get("video.frame") not in options:
    st.session_state["video.frame"] = analysis.tracks[0].best_frame if analysis.tracks else options[0]
index = options[0] if len(options) == 1 else st.select_slider(
    "Sampled frame", options, key="video.frame", format_func=lambda i: f"frame {i} · {analysis.frames[i].t:.2f} s")
render_frame(analysis, data, index)
st.subheader("Downloads")
render_downloads(analysis, name)
