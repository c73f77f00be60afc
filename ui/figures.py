"""Pure figure/image builders for the pages (unit-testable: no streamlit calls)."""
from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image, ImageDraw, ImageFont

from core.verdict.assessment import Assessment
from core.verdict.ensemble import EnsembleResult

GREEN = "#16a34a"
RED = "#dc2626"
GREY = "#9ca3af"


def ensemble_bar(result: EnsembleResult) -> go.Figure:
    """The original app's bar chart: each detector's confidence in its own verdict (green real, red fake), a dashed line at
    the vote threshold; hover shows p_fake, logit, weight and time."""
    votes = result.votes
    names = [f"{v.detector_id}" + ("" if v.variant == "original" else f" ({v.variant})") for v in votes]
    colours = [(RED if v.label == "fake" else GREEN) if v.voted else GREY for v in votes]
    custom = [[v.p_fake, v.logit, v.weight, v.effective_weight, v.elapsed_s, "votes" if v.voted else "no vote",
               v.label] for v in votes]
    fig = go.Figure(go.Bar(
        x=names, y=[v.score for v in votes], marker_color=colours, customdata=custom,
        text=[f"{v.label} {v.score:.2f}" for v in votes], textposition="outside",
        hovertemplate=("<b>%{x}</b><br>verdict %{customdata[6]} (%{customdata[5]})<br>confidence %{y:.3f}"
                       "<br>p_fake %{customdata[0]:.4f}<br>logit %{customdata[1]:+.3f}<br>weight %{customdata[2]:.2f}"
                       " (effective %{customdata[3]:.2f})<br>time %{customdata[4]:.2f} s<extra></extra>"),
    ))
    # the threshold is named in the title: an annotation on the line would sit on top of a bar
    fig.add_hline(y=result.vote_threshold, line_dash="dash", line_color="#374151")
    fig.update_layout(title=dict(text=f"Original app's vote (dashed: threshold {result.vote_threshold:.2f})",
                                 font=dict(size=13)),
                      yaxis=dict(range=[0, 1.12], title="confidence in its own verdict"), xaxis_title=None,
                      height=360, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


def vote_table(result: EnsembleResult, assessment: Assessment | None = None) -> list[dict]:
    """Rows of the Ensemble page's table: each detector's part in the original vote and in the assessment."""
    voices = {v.key: v for v in (assessment.voices if assessment else ())}
    rows = []
    for v in result.votes:
        voice = voices.get(f"{v.detector_id}:{v.variant}")
        part = ("left out (see above)" if voice is None else
                ("votes" if voice.voted else "scored, not confident enough to vote") +
                (f" ×{voice.weight:g}" if voice.voted and assessment.rule != "vote" and voice.weight != 1 else ""))
        rows.append({"detector": v.detector_id, "variant": v.variant, "verdict": v.label,
                     "p_fake": round(v.p_fake, 4), "logit": round(v.logit, 4), "confidence": round(v.score, 4),
                     "votes": v.voted, "weight": v.weight, "effective weight": round(v.effective_weight, 3),
                     "assessment": part,
                     "calibrated P(fake)": round(voice.p_fake, 4) if voice is not None and voice.calibrated else None,
                     "time (s)": round(v.elapsed_s, 2)})
    if all(r["calibrated P(fake)"] is None for r in rows):       # no profile applied: no empty column
        for r in rows:
            del r["calibrated P(fake)"]
    return rows


def draw_boxes(image: Image.Image, boxes: Sequence[tuple[float, float, float, float]],
               labels: Sequence[str] = (), colours: Sequence[str] = ()) -> Image.Image:
    """A copy of ``image`` with rectangles (x1, y1, x2, y2) and labels drawn on it."""
    out = image.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 300))
    try:
        font = ImageFont.load_default(size=max(14, round(max(out.size) / 30)))
    except TypeError:  # very old Pillow
        font = ImageFont.load_default()
    for i, box in enumerate(boxes):
        colour = colours[i] if i < len(colours) else "#facc15"
        draw.rectangle([float(c) for c in box], outline=colour, width=width)
        if i < len(labels) and labels[i]:
            x, y = float(box[0]), max(0.0, float(box[1]) - font.size - 4) if hasattr(font, "size") else float(box[1])
            tb = draw.textbbox((x, y), labels[i], font=font)
            draw.rectangle(tb, fill=colour)
            draw.text((x, y), labels[i], fill="black", font=font)
    return out


def cam_colours(h: np.ndarray) -> np.ndarray:
    """Grad-CAM values in [0, 1] → RGB floats in [0, 1]: a compact 'jet' map without matplotlib,
    dark blue (0) → cyan → yellow → red (1)."""
    r = np.clip(1.5 - np.abs(4 * h - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * h - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * h - 1), 0, 1)
    return np.stack([r, g, b], -1)


def _rgb(c: np.ndarray) -> str:
    return "rgb({},{},{})".format(*(int(round(255 * float(v))) for v in c))


# the overlay's colour map as a Plotly colour scale (exact at its 17 stops), for the colour bar beside the map
CAM_COLORSCALE = [[float(v), _rgb(cam_colours(np.array(v)))] for v in np.linspace(0.0, 1.0, 17)]
CAM_UNIT = "Grad-CAM: pull towards 'fake' (0 none, 1 strongest)"


def heat_overlay(image: Image.Image, heat: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """Blend a [0,1] heat map (any size; resized to the image) over ``image`` with a blue→red colour map."""
    base = image.convert("RGB")
    h = np.asarray(Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(base.size,
                                                                                           Image.BILINEAR)) / 255.0
    colour = (cam_colours(h) * 255).astype(np.float32)
    # per-pixel alpha follows the heat: cold (and outside the analysed region) stays untinted
    alpha = float(min(max(opacity, 0.0), 1.0)) * np.clip(h * 1.5, 0.0, 1.0)[..., None]
    mixed = (1 - alpha) * np.asarray(base, dtype=np.float32) + alpha * colour
    return Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))


def swipe_image(left: Image.Image, right: Image.Image, split: float) -> Image.Image:
    """``left`` up to ``split`` (a fraction of the width) and ``right`` after it, with a white divider line."""
    a, b = np.asarray(left.convert("RGB")).copy(), np.asarray(right.convert("RGB").resize(left.size))
    x = int(round(min(max(split, 0.0), 1.0) * a.shape[1]))
    a[:, x:] = b[:, x:]
    lo, hi = max(0, x - 1), min(a.shape[1], x + 1)
    a[:, lo:hi] = 255
    return Image.fromarray(a)


def side_by_side(left: Image.Image, right: Image.Image, gap: int = 12) -> Image.Image:
    """``left`` and ``right`` (resized to ``left``'s size) next to each other on white, ``gap`` pixels apart."""
    w, h = left.size
    out = Image.new("RGB", (2 * w + gap, h), "white")
    out.paste(left.convert("RGB"), (0, 0))
    out.paste(right.convert("RGB").resize((w, h)), (w + gap, 0))
    return out


def image_figure(image: Image.Image, *, colorscale: str | list, lo: float, hi: float, unit: str,
                 title: str | None = None, max_height: int = 640) -> go.Figure:
    """An already coloured image with a colour bar that says what its colours mean.

    The image travels as one PNG (a heat-map trace of a million cells would be megabytes of JSON); a marker-less
    scatter trace carries the colour bar with ``colorscale`` over ``[lo, hi]``.
    """
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    w, h = image.size
    fig = go.Figure(go.Image(source="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(),
                             hoverinfo="x+y", name="map"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip", name="scale",
                             marker=dict(colorscale=colorscale, cmin=lo, cmax=hi, color=[lo, hi], showscale=True,
                                         colorbar=dict(title=dict(text=unit, side="right"), thickness=14))))
    fig.update_layout(height=int(min(max_height, 80 + 560 * h / max(w, 1))),
                      margin=dict(l=0, r=0, t=30 if title else 5, b=0), title=title,
                      xaxis=dict(visible=False, range=[-0.5, w - 0.5]),
                      yaxis=dict(visible=False, range=[h - 0.5, -0.5], scaleanchor="x"),
                      plot_bgcolor="rgba(0,0,0,0)")
    return fig


def cam_figure(shown: Image.Image, title: str | None = None) -> go.Figure:
    """A Grad-CAM overlay (or swipe) with the colour bar of :func:`heat_overlay`'s colour map."""
    return image_figure(shown, colorscale=CAM_COLORSCALE, lo=0.0, hi=1.0, unit=CAM_UNIT, title=title)


def p_fake_gauge_text(p: float) -> str:
    """'87.3 %' or 'n/a'."""
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{100 * p:.1f} %"
