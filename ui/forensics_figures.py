"""Pure Plotly builders for the Forensics page (no streamlit: unit-tested through ``fig.data``)."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from core.forensics import FrequencyView
from core.verdict.robustness import ProbeResult

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")


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


__all__ = ["radial_spectrum_figure", "probe_figure"]
