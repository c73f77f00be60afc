"""Pure Plotly builders for the Forensics page (no streamlit: unit-tested through ``fig.data``)."""
from __future__ import annotations

import math
import re

import numpy as np
import plotly.colors as pcolors
import plotly.graph_objects as go
from PIL import Image

from core.forensics import FrequencyView, display_range
from core.forensics.common import MapMode
from core.style import PALETTE
from core.verdict.robustness import ProbeResult
from ui.figures import image_figure


def radial_spectrum_figure(view: FrequencyView) -> go.Figure:
    """Azimuthally averaged log spectra of the residual (left axis) and the residual energy (right axis).

    Dotted vertical lines mark the frequency 1/period of every periodic peak found; hover shows the period.
    """
    f = np.asarray(view.radial_freq, dtype=float)
    with np.errstate(divide="ignore"):
        period = np.where(f > 0, 1.0 / np.maximum(f, 1e-9), np.inf)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=f, y=np.asarray(view.radial_power, dtype=float), name="residual", mode="lines",
                             line=dict(color=PALETTE[0]), customdata=period,
                             hovertemplate="f %{x:.3f} cycles/px (period %{customdata:.2f} px)<br>"
                                           "log RMS |F| %{y:.2f}<extra>residual</extra>"))
    fig.add_trace(go.Scatter(x=f, y=np.asarray(view.radial_energy, dtype=float), name="residual energy",
                             mode="lines", line=dict(color=PALETTE[1]), yaxis="y2", customdata=period,
                             hovertemplate="f %{x:.3f} cycles/px (period %{customdata:.2f} px)<br>"
                                           "log RMS |F| %{y:.2f}<extra>energy</extra>"))
    for p in sorted({p.period_px for p in view.peaks}):
        fig.add_vline(x=1.0 / p, line_dash="dot", line_color="#6b7280",
                      annotation_text=f"{p:g} px", annotation_position="top")
    fig.update_layout(
        height=320, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25),
        xaxis=dict(title="spatial frequency (cycles/pixel)", range=[0, 0.5]),
        yaxis=dict(title="residual: log RMS magnitude"),
        yaxis2=dict(title="energy: log RMS magnitude", overlaying="y", side="right", showgrid=False))
    return fig


def probe_figure(probe: ProbeResult) -> go.Figure:
    """p_fake of every detector under every condition (lines + markers), with each detector's threshold.

    Conditions are categories in probe order ("original" first); failed cells are gaps; hover gives the verdict.
    """
    labels = [c.label for c in probe.conditions]
    fig = go.Figure()
    thresholds = set()
    for i, det in enumerate(probe.detectors):
        rows = {r.condition: r for r in probe.rows if r.detector == det}
        ys, text = [], []
        for c in probe.conditions:
            r = rows.get(c.key)
            ys.append(None if r is None or not math.isfinite(r.p_fake) else r.p_fake)
            text.append("—" if r is None else (r.error or r.label))
            if r is not None and math.isfinite(r.threshold):
                thresholds.add(round(r.threshold, 4))
        fig.add_trace(go.Scatter(x=labels, y=ys, name=det, mode="lines+markers", text=text,
                                 line=dict(color=PALETTE[i % len(PALETTE)]), connectgaps=False,
                                 hovertemplate="%{x}<br>p_fake %{y:.3f}<br>%{text}<extra>" + det + "</extra>"))
    for t in sorted(thresholds):
        fig.add_hline(y=t, line_dash="dash", line_color="#374151", annotation_text=f"threshold {t:g}",
                      annotation_position="top right")
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10), yaxis=dict(range=[0, 1], title="p_fake"),
                      xaxis=dict(title=None), legend=dict(orientation="h", y=-0.2))
    return fig


# A diverging scale for signed maps (0 = white, the sign is the hue) and a perceptually uniform one for magnitudes.
HEAT_SCALES: dict[str, str] = {"signed": "RdBu_r", "magnitude": "Inferno", "stretch": "Inferno"}


def _lut(name: str) -> np.ndarray:
    """256 RGB colours sampled from a named Plotly colour scale (the same scale the colour bar shows)."""
    cols = pcolors.sample_colorscale(pcolors.get_colorscale(name), list(np.linspace(0, 1, 256)), colortype="rgb")
    return np.array([[int(v) for v in re.findall(r"\d+", c)[:3]] for c in cols], dtype=np.uint8)


def colourise(arr: np.ndarray, lo: float, hi: float, scale: str) -> Image.Image:
    """Map ``arr`` linearly from [lo, hi] (clipped) onto the colour scale ``scale``: an RGB image."""
    a = np.nan_to_num(np.asarray(arr, dtype=np.float64))
    idx = np.rint(np.clip((a - lo) / ((hi - lo) or 1.0), 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(_lut(scale)[idx], mode="RGB")


def heatmap_figure(arr: np.ndarray, mode: MapMode, *, unit: str, title: str | None = None) -> go.Figure:
    """A map as a colour image with a colour bar in the map's own units.

    The array is shown through a PNG (a million-cell heat-map trace would be megabytes of JSON); a marker-less
    scatter trace carries the colour bar with the same scale and range: ``[-s, s]`` for signed maps (s = the
    99.5th percentile of |value|), ``[0, p99.5]`` for magnitudes. Values beyond the range take the end colours.

    Args:
        arr: the 2-D map (residual, error or noise level).
        mode: ``signed`` or ``magnitude`` (see :func:`core.forensics.to_image`).
        unit: the colour bar's title, e.g. "residual (0–255 levels)".
        title: an optional figure title.
    """
    lo, hi = display_range(arr, mode)
    scale = HEAT_SCALES.get(mode, "Inferno")
    return image_figure(colourise(arr, lo, hi, scale), colorscale=scale, lo=lo, hi=hi, unit=unit, title=title)


__all__ = ["radial_spectrum_figure", "probe_figure", "heatmap_figure", "colourise", "HEAT_SCALES"]
