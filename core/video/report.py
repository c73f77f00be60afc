"""Writing a video analysis: ``video.json``, ``timeline.csv`` and a self-contained ``report.html``.

The HTML page needs nothing but itself: CSS inline, charts as inline SVG, images as ``data:`` URIs. Every string that
comes from the file or the user is escaped.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from core.style import PALETTE
from core.tables import rows_to_csv
from core.verdict.present import UNCALIBRATED_NOTE, headline_text
from core.video.analyse import CAVEAT, FrameRecord, TrackSummary, VideoAnalysis
from core.video.verdict import video_rules_text

_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111827}"
        "table{border-collapse:collapse;font-size:.9em;margin:.5em 0}td,th{border:1px solid #d1d5db;padding:.2em .5em;"
        "text-align:left}th{background:#f3f4f6}.box{border-left:4px solid #9ca3af;background:#f9fafb;padding:.5em 1em}"
        ".warn{border-color:#d97706;background:#fffbeb}figure{display:inline-block;margin:.4em .8em .4em 0;"
        "vertical-align:top}figcaption{font-size:.8em;color:#4b5563;max-width:330px}.muted{color:#6b7280}")


def _e(v: Any) -> str:
    return html.escape("—" if v is None else str(v))


def _f(v: float | None, nd: int = 3) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.{nd}f}"


def data_uri(img: Image.Image, fmt: str = "JPEG") -> str:
    """An image as a ``data:`` URI (JPEG by default: thumbnails and crops, a few kB each)."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format=fmt, quality=85)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def heat_tint(image: Image.Image, heat: np.ndarray, strength: float = 0.6) -> Image.Image:
    """Tint ``image`` red where the [0, 1] Grad-CAM map is hot (the map is resized to the image)."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    h8 = Image.fromarray((np.clip(np.nan_to_num(heat), 0, 1) * 255).astype(np.uint8)).resize(image.size,
                                                                                           Image.BILINEAR)
    a = (np.asarray(h8, dtype=np.float32) / 255.0 * strength)[..., None]
    red = np.array([230.0, 30.0, 30.0], dtype=np.float32)
    return Image.fromarray(np.clip(base * (1 - a) + red * a, 0, 255).astype(np.uint8))


def frame_with_boxes(frame: FrameRecord) -> Image.Image:
    """The frame's thumbnail with each face box (scaled) and its track id drawn on it."""
    img = Image.open(io.BytesIO(frame.thumb_jpeg)).convert("RGB")
    sx, sy = img.width / frame.size[0], img.height / frame.size[1]
    draw = ImageDraw.Draw(img)
    for f in frame.faces:
        colour = PALETTE[f.track % len(PALETTE)]
        x1, y1, x2, y2 = f.box
        draw.rectangle((x1 * sx, y1 * sy, x2 * sx, y2 * sy), outline=colour, width=2)
        draw.text((x1 * sx + 2, max(0, y1 * sy - 11)), f"T{f.track}", fill=colour)
    return img


def timeline_series(a: VideoAnalysis) -> list[tuple[str, list[float], list[float]]]:
    """(name, times, P(fake)) per scored face track and per whole-frame detector."""
    series: list[tuple[str, list[float], list[float]]] = []
    for tr in a.tracks:
        if not tr.scored:
            continue
        pts = [(fr.t, f.p_fake) for fr in a.frames for f in fr.faces if f.track == tr.id]
        series.append((f"face track {tr.id}", [t for t, _ in pts], [p for _, p in pts]))
    for key in a.detectors:
        series.append((key, [fr.t for fr in a.frames], [fr.scores.get(key, math.nan) for fr in a.frames]))
    return series


def timeline_rows(a: VideoAnalysis) -> list[dict[str, Any]]:
    """``timeline.csv`` rows: one per face sighting and one per (frame, detector) score."""
    rows: list[dict[str, Any]] = []
    for fr in a.frames:
        for f in fr.faces:
            rows.append({"frame": fr.index, "t": round(fr.t, 4), "series": f"track {f.track}", "track": f.track,
                         "p_fake": _f(f.p_fake, 6) if math.isfinite(f.p_fake) else "",
                         "box": " ".join(f"{v:.1f}" for v in f.box), "detection_prob": round(f.detection_prob, 4)})
        for key, p in fr.scores.items():
            rows.append({"frame": fr.index, "t": round(fr.t, 4), "series": key, "track": "",
                         "p_fake": _f(p, 6) if math.isfinite(p) else "", "box": "", "detection_prob": ""})
    return rows


def timeline_svg(series: list[tuple[str, list[float], list[float]]], tracks: list[TrackSummary], duration: float,
                 width: int = 760) -> str:
    """P(fake) over time (one polyline per series, dashed 0.5 line) above one presence bar per face track."""
    left, right, top, plot_h, bar_h = 48, 170, 10, 200, 14
    plot_w = width - left - right
    height = top + plot_h + 30 + bar_h * len(tracks) + 10

    def x_at(t: float) -> float:
        return left + plot_w * min(max(t / max(duration, 1e-6), 0.0), 1.0)

    def y_at(p: float) -> float:
        return top + plot_h * (1.0 - min(max(p, 0.0), 1.0))

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" '
           f'font-family="sans-serif"><rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
           f'stroke="#9ca3af"/>')]
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        dash = ' stroke-dasharray="5,4"' if p == 0.5 else ""
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y_at(p):.1f}" y2="{y_at(p):.1f}" '
                   f'stroke="{"#374151" if p == 0.5 else "#e5e7eb"}"{dash}/><text x="{left - 6}" '
                   f'y="{y_at(p) + 4:.1f}" text-anchor="end">{p:.2f}</text>')
    for k, (name, xs, ys) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        pts = " ".join(f"{x_at(x):.1f},{y_at(y):.1f}" for x, y in zip(xs, ys) if y is not None and math.isfinite(y))
        if pts:
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<rect x="{left + plot_w + 12}" y="{top + 14 * k + 2}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{left + plot_w + 26}" y="{top + 14 * k + 11}">{_e(name)}</text>')
    axis_y = top + plot_h + 14
    out.append(f'<text x="{left}" y="{axis_y}">0 s</text><text x="{left + plot_w}" y="{axis_y}" '
               f'text-anchor="end">{duration:.1f} s</text><text x="{left + plot_w / 2}" y="{axis_y}" '
               'text-anchor="middle">time · P(fake)</text>')
    for k, tr in enumerate(tracks):
        y = axis_y + 8 + bar_h * k
        x0 = x_at(tr.first_t)
        out.append(f'<text x="{left - 6}" y="{y + 10}" text-anchor="end">T{tr.id}</text><rect x="{x0:.1f}" y="{y}" '
                   f'width="{max(3.0, x_at(tr.last_t) - x0):.1f}" height="{bar_h - 4}" '
                   f'fill="{PALETTE[tr.id % len(PALETTE)]}"/>')
    out.append("</svg>")
    return "".join(out)


def _track_gallery(a: VideoAnalysis) -> str:
    if not a.tracks:
        return "<p>No face was found in any sampled frame.</p>"
    by_index = {fr.index: fr for fr in a.frames}
    out = []
    for tr in a.tracks:
        cap = (f"Track {tr.id}: {_f(tr.first_t, 2)}–{_f(tr.last_t, 2)} s, {tr.n_frames} frames; P(fake) mean "
               f"{_f(tr.p_mean)}, max {_f(tr.p_max)}, {_f(tr.share_above * 100 if tr.scored else None, 0)} % above "
               f"{tr.threshold:g}; {'most suspicious' if tr.scored else 'clearest'} sighting at {tr.best_t:.2f} s")
        imgs = [tr.thumbnail] + ([heat_tint(tr.thumbnail, tr.heatmap)] if tr.heatmap is not None else [])
        if tr.best_frame in by_index:
            imgs.append(frame_with_boxes(by_index[tr.best_frame]))
        pics = "".join(f'<img src="{data_uri(i)}" alt="track {tr.id}" style="margin-right:4px">' for i in imgs)
        out.append(f"<figure>{pics}<figcaption>{_e(cap)}</figcaption></figure>")
    return "".join(out)


def render_html(a: VideoAnalysis, name: str) -> str:
    """The self-contained report page."""
    s = a.assessment
    duration = max([fr.t for fr in a.frames] + [a.info.duration_s or 0.0, 1e-6])
    series = timeline_series(a)
    chart = timeline_svg(series, a.tracks, duration) + ("" if series else (
        "<p>No P(fake) to plot: no face classifier weights and no whole-frame detector; bars show the face "
        "tracks.</p>"))
    info = a.info
    rows = [("file", name), ("container / codec", f"{info.format} / {info.codec}"),
            ("size", f"{info.width}×{info.height}, rotation {info.rotation}°"),
            ("duration (header)", _f(info.duration_s, 2) + " s"), ("sampling", a.plan.describe()),
            ("frames read", (f"{a.stats.frames_read} ({a.stats.frames_decoded} decoded, {a.stats.decode_errors} "
                            "corrupt packets skipped)")),
            ("stopped early", a.stats.stopped or "no"),
            ("face classifier", a.face_classifier or "not installed (boxes and tracks only)"),
            ("whole-frame detectors", ", ".join(a.detectors) or "none"), ("analysis time", f"{a.elapsed_s:.1f} s")]
    table = "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"
    reasons = "".join(f"<li>{_e(r)}</li>" for r in s.reasons)
    notes = list(s.excluded) + list(s.calibration) + ([] if s.p_fake is not None else [UNCALIBRATED_NOTE])
    notes_html = "".join(f"<li class='muted'>{_e(n)}</li>" for n in notes)
    caveat = f"<div class='box warn'>{_e(CAVEAT)}</div>" if a.detectors else ""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Deepfake Lens video report — "
            f"{_e(name)}</title><style>{_CSS}</style></head><body><h1>Deepfake Lens — video report</h1>"
            f"<p class='muted'>{_e(name)} · generated {stamp}</p>"
            f"<div class='box'><b>{_e(headline_text(s))}</b><ul>{reasons}{notes_html}</ul>"
            f"<p class='muted'>{_e(video_rules_text())}</p></div>{caveat}"
            f"<h2>Video</h2>{table}<h2>Timeline</h2>{chart}"
            f"<h2>Track gallery and most suspicious frames</h2>{_track_gallery(a)}</body></html>")


def write_outputs(a: VideoAnalysis, out_dir: str | Path, name: str) -> dict[str, Path]:
    """Write ``video.json``, ``timeline.csv`` and ``report.html`` into ``out_dir`` (created if missing).

    Returns:
        The three paths by kind ("json", "csv", "html").
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "video.json", "csv": out / "timeline.csv", "html": out / "report.html"}
    doc = a.to_dict()
    doc["video"]["path"] = name
    paths["json"].write_text(json.dumps(doc, indent=1, allow_nan=False), encoding="utf-8")
    paths["csv"].write_text(rows_to_csv(["frame", "t", "series", "track", "p_fake", "box", "detection_prob"],
                                        timeline_rows(a)), encoding="utf-8", newline="")
    paths["html"].write_text(render_html(a, name), encoding="utf-8")
    return paths


__all__ = [
    "data_uri",
    "frame_with_boxes",
    "heat_tint",
    "render_html",
    "timeline_rows",
    "timeline_series",
    "timeline_svg",
    "write_outputs",
]
