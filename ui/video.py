"""Video page helpers: the Plotly timeline (pure), the analysis run with progress/ETA/cancel, gallery and frame view."""
from __future__ import annotations

import contextlib
import hashlib
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from core.errors import BadVideo, DeepfakeLensError
from core.models.detectors.face import FaceDetector
from core.models.explain import CAVEAT as CAVEAT_CAM
from core.style import PALETTE
from core.video.analyse import CAVEAT, VideoAnalysis, analyse_video, split_detectors
from core.video.reader import read_frame_at
from core.video.report import frame_with_boxes, timeline_series, write_outputs
from core.video.sampling import SamplingPlan
from core.video.verdict import video_rules_text
from ui.figures import cam_figure, draw_boxes, heat_overlay
from ui.gradcam import explanation
from ui.models import availability, chosen_keys, get_detector
from ui.verdict import render_assessment, rules
from ui.widgets import current_profile

VIDEO_TYPES = ["mp4", "mov", "webm", "mkv", "avi", "gif"]
GALLERY_SIDE = 200        # px: the 160-px face crops are shown near their size, not stretched to the column


def timeline_figure(a: VideoAnalysis) -> go.Figure:
    """P(fake) over time: one line per scored face track and per whole-frame detector, plus track presence bars.

    Each point's ``customdata`` is its sampled-frame index, so a click selects that frame. Unscored tracks (no FACE
    weights) appear only as presence bars under the chart.
    """
    fig = go.Figure()
    index_at = {fr.t: fr.index for fr in a.frames}
    for k, (name, xs, ys) in enumerate(timeline_series(a)):
        idx = [index_at.get(x, -1) for x in xs]
        fig.add_trace(go.Scatter(
            x=xs, y=[None if y is None or not math.isfinite(y) else y for y in ys], mode="lines+markers", name=name,
            line={"color": PALETTE[k % len(PALETTE)], "dash": "solid" if name.startswith("face") else "dot"},
            customdata=idx, hovertemplate=f"{name}<br>t=%{{x:.2f}} s · frame %{{customdata}}<br>P(fake)=%{{y:.3f}}"
                                          "<extra></extra>"))
    for tr in a.tracks:
        fig.add_trace(go.Scatter(
            x=[tr.first_t, tr.last_t], y=[-0.06 - 0.04 * (tr.id % 4)] * 2, mode="lines+markers",
            name=f"track {tr.id} seen", line={"color": PALETTE[tr.id % len(PALETTE)], "width": 6},
            customdata=[tr.best_frame, tr.best_frame], showlegend=not tr.scored,
            hovertemplate=f"track {tr.id}: {tr.first_t:.2f}–{tr.last_t:.2f} s, {tr.n_frames} frames"
                          "<extra></extra>"))
    fig.add_hline(y=0.5, line_dash="dash", line_color="#374151")
    fig.update_layout(xaxis_title="time (s)", yaxis_title="P(fake)", yaxis_range=[-0.25, 1.02], height=380,
                      margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h", "y": 1.12},
                      clickmode="event+select")
    return fig


@contextlib.contextmanager
def _as_file(name: str, data: bytes) -> Iterator[Path]:
    """The upload as a temporary file for the reader (which needs a seekable file), deleted right after use:
    the analyst's video never stays on the server's disk."""
    with tempfile.TemporaryDirectory(prefix="deepfake-lens-video-") as folder:
        path = Path(folder) / ("upload" + Path(name).suffix.lower()[:8])
        path.write_bytes(data)
        yield path


def ready_keys() -> tuple[list[str], list[str]]:
    """(installed whole-frame detector keys, FACE key(s) installed) from the sidebar's variant choice."""
    keys = [k for k in chosen_keys() if availability(k).ready]
    return [k for k in keys if not k.startswith("FACE:")], [k for k in keys if k.startswith("FACE:")]


def run_analysis(name: str, data: bytes, plan: SamplingPlan, keys: list[str], use_face: bool) -> None:
    """Analyse with a progress bar (frames, ETA) and a Cancel button; the result goes to session state."""
    bar = st.progress(0.0, text="loading the detectors…")
    dets = []
    for i, k in enumerate(keys, 1):         # the first load of a model takes seconds to minutes: say which one
        bar.progress(0.0, text=f"loading detector {i} of {len(keys)}: {k} (slow only on its first use)…")
        det = get_detector(k)[0]
        if det is not None:
            dets.append(det)
    face, others = split_detectors(dets)
    face = face if use_face else None
    st.session_state["video.sha"] = hashlib.sha256(data).hexdigest()   # names the frames' stored Grad-CAM maps
    bar.progress(0.0, text="reading the video…")
    st.session_state["video.cancel"] = False
    cancel = st.empty()       # shown while the analysis runs, removed when it ends
    cancel.button("Cancel", key="video.cancel_btn",
                  on_click=lambda: st.session_state.update({"video.cancel": True}))

    def progress(done: int, planned: int, elapsed: float) -> None:
        eta = elapsed / done * (planned - done)
        bar.progress(min(1.0, done / planned), text=f"frame {done} of {planned} · {elapsed:.0f} s · ETA {eta:.0f} s")

    try:
        with _as_file(name, data) as path:
            a = analyse_video(str(path), plan=plan, face=face, detectors=others, progress=progress,
                              should_stop=lambda: bool(st.session_state.get("video.cancel")),
                              profile=current_profile(), rules=rules())
    except DeepfakeLensError as exc:
        st.session_state["video.error"] = str(exc.why if isinstance(exc, BadVideo) else exc)
        st.session_state["video.analysis"] = None
        bar.empty()
        cancel.empty()
        return
    st.session_state["video.error"] = None
    st.session_state["video.analysis"] = (name, data, a)
    st.session_state["video.frame_images"] = {}
    bar.empty()
    cancel.empty()


def render_headline(a: VideoAnalysis) -> None:
    """The graded assessment (the image pages' words: :mod:`core.verdict.present`), its reasons, the reading summary."""
    render_assessment(a.assessment, legend_note=video_rules_text(), hint="")
    st.caption(f"{a.stats.frames_read} frames read ({a.plan.describe()}), {len(a.tracks)} face track(s), "
               f"{a.elapsed_s:.1f} s. " + ("" if a.face_classifier else
                                           "FACE weights not installed: faces are found and tracked, not scored."))
    if a.detectors:
        st.warning(CAVEAT)
    if a.stats.stopped:
        st.info(f"Reading stopped early: {a.stats.stopped}.")


def render_gallery(a: VideoAnalysis) -> None:
    """One column per track: face crop, its Grad-CAM (when scored), and the numbers."""
    if not a.tracks:
        st.info("No face was found in any sampled frame.")
        return
    cols = st.columns(min(4, len(a.tracks)))
    for k, tr in enumerate(a.tracks):
        with cols[k % len(cols)]:
            img = heat_overlay(tr.thumbnail, tr.heatmap) if tr.heatmap is not None else tr.thumbnail
            p = f"mean {tr.p_mean:.2f}, max {tr.p_max:.2f}, {tr.share_above:.0%} > {tr.threshold:g}" \
                if tr.scored else "not scored"
            st.image(img, width=GALLERY_SIDE,
                     caption=f"Track {tr.id} · {tr.first_t:.1f}–{tr.last_t:.1f} s · {tr.n_frames} frames · {p}")
    if any(tr.heatmap is not None for tr in a.tracks):
        st.caption("Scored crops are tinted with the face classifier's Grad-CAM: untinted = no pull towards "
                   "'fake', then blue → cyan → yellow → red = the strongest pull in that crop (the frame view "
                   "below has the colour bar).")


def render_frame(a: VideoAnalysis, data: bytes, index: int) -> None:
    """The chosen sampled frame at full size with its face boxes, and Grad-CAM of its faces when FACE is loaded."""
    fr = next((f for f in a.frames if f.index == index), a.frames[0])
    try:
        cache = st.session_state.setdefault("video.frame_images", {})
        if fr.index not in cache:              # decoded once per analysis, then kept for reruns
            with _as_file("video", data) as path:
                cache[fr.index] = read_frame_at(str(path), fr.t).image
        image = cache[fr.index]
    except BadVideo:
        st.image(frame_with_boxes(fr), caption=f"frame {fr.index} at {fr.t:.2f} s (thumbnail)")
        return
    labels = [f"T{f.track}" + ("" if not math.isfinite(f.p_fake) else f" {f.p_fake:.2f}") for f in fr.faces]
    colours = [PALETTE[f.track % len(PALETTE)] for f in fr.faces]
    shown = draw_boxes(image, [f.box for f in fr.faces], labels, colours)
    face_key = a.face_classifier
    det = get_detector(face_key)[0] if face_key else None
    scores = ", ".join(f"{k} {v:.2f}" for k, v in fr.scores.items() if math.isfinite(v))
    caption = f"frame {fr.index} at {fr.t:.2f} s" + (f" · {scores}" if scores else "")
    if isinstance(det, FaceDetector) and fr.faces:
        # computed once per frame (and shared by sessions): moving between frames and back does not redo it
        vsha = st.session_state.get("video.sha") or hashlib.sha256(data).hexdigest()
        exp = explanation(face_key, f"{vsha}:{fr.index}", image)
        if exp is not None:
            st.plotly_chart(cam_figure(heat_overlay(shown, exp.heatmap)), key="video.frame_cam",
                            config={"displayModeBar": False})
            st.caption(caption + " · Grad-CAM of the face classifier over each face. " + CAVEAT_CAM)
            return
    st.image(shown, caption=caption)


def render_downloads(a: VideoAnalysis, name: str) -> None:
    """video.json, timeline.csv and report.html as downloads."""
    with tempfile.TemporaryDirectory(prefix="deepfake-lens-video-out-") as out:
        paths = write_outputs(a, Path(out), name)
        files = {kind: (p.name, p.read_bytes()) for kind, p in paths.items()}
    cols = st.columns(3)
    for col, (kind, mime) in zip(cols, [("json", "application/json"), ("csv", "text/csv"), ("html", "text/html")]):
        with col:
            st.download_button(files[kind][0], files[kind][1], file_name=files[kind][0], mime=mime,
                               key=f"video.dl.{kind}")


__all__ = [
    "VIDEO_TYPES",
    "ready_keys",
    "render_downloads",
    "render_frame",
    "render_gallery",
    "render_headline",
    "run_analysis",
    "timeline_figure",
]
