"""Pure Plotly builders for the Evaluation page (no streamlit calls: unit-tested by inspecting ``fig.data``)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from core.evaluation.metrics import BinaryMetrics
from core.style import PALETTE

GREEN = "#16a34a"
RED = "#dc2626"
GREY = "#6b7280"
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
# a little room beyond [0, 1] so points and lines on the border (p_fake 1.0, TPR 1.0) are drawn whole
UNIT_RANGE = [-0.03, 1.03]
_DASHES = ("solid", "dash", "dot")       # past eight series the colours repeat with another dash


def _series_line(i: int) -> dict:
    """Colour, dash and width of the i-th curve: earlier curves are drawn wider, so curves that coincide (two
    detectors with the same ranking) still show as nested stripes instead of one hiding the other."""
    return dict(color=series_colour(i), width=max(1.5, 5.0 - 0.9 * (i % len(PALETTE))),
                dash=_DASHES[(i // len(PALETTE)) % len(_DASHES)])


def series_colour(i: int) -> str:
    """The i-th series colour: Okabe–Ito's eight colour-blind-safe colours (core.style), reused past eight."""
    return PALETTE[i % len(PALETTE)]


def confusion_figure(m: BinaryMetrics, title: str = "") -> go.Figure:
    """Counts (and % of each true class) with true class on rows and prediction on columns.

    Three columns when the source can abstain (the ensemble's UNCERTAIN verdict).
    """
    z = np.array(m.confusion, dtype=float)
    cols = ["called real", "called fake"] + (["uncertain"] if z.shape[1] == 3 else [])
    rows = ["real", "fake"]
    totals = z.sum(axis=1, keepdims=True)
    share = np.divide(z, totals, out=np.zeros_like(z), where=totals > 0)
    text = [[f"{int(z[i, j])}<br>{100 * share[i, j]:.0f}%" for j in range(z.shape[1])] for i in range(2)]
    fig = go.Figure(go.Heatmap(
        z=share, x=cols, y=rows, text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
        showscale=False, customdata=z, hovertemplate="true %{y}, %{x}: %{customdata:.0f} images<extra></extra>"))
    thr = "verdict" if m.threshold is None else f"p_fake > {m.threshold:.2f}"
    # the threshold on its own line: long source names ("Learned fusion (stacked, calibrated)") were cut off
    fig.update_layout(title=f"{title}<br><sup>{thr}</sup>" if title else thr, height=280,
                      yaxis=dict(autorange="reversed", title="true"), xaxis=dict(title="predicted"), **_LAYOUT)
    return fig


def roc_figure(metrics: Mapping[str, BinaryMetrics]) -> go.Figure:
    """ROC curves of every source that has one, overlaid, AUC in the legend; the chance diagonal dashed."""
    fig = go.Figure()
    for i, (name, m) in enumerate(metrics.items()):
        if m.roc is None:
            continue
        fig.add_trace(go.Scatter(
            x=m.roc.x, y=m.roc.y, mode="lines", name=f"{name} (AUC {m.roc_auc:.3f})",
            line=_series_line(i),
            customdata=np.asarray(m.roc.thresholds), line_shape="hv",
            hovertemplate=f"{name}<br>FPR %{{x:.3f}}<br>TPR %{{y:.3f}}<br>p_fake ≥ %{{customdata:.3f}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", showlegend=False,
                             line=dict(dash="dash", color=GREY), hoverinfo="skip"))
    fig.update_layout(title="ROC", xaxis=dict(title="FPR (real images called fake)", range=UNIT_RANGE),
                      yaxis=dict(title="TPR (fakes caught)", range=UNIT_RANGE), height=380, **_LAYOUT)
    return fig


def pr_figure(metrics: Mapping[str, BinaryMetrics]) -> go.Figure:
    """Precision-recall curves overlaid (AP in the legend); the dotted line is the share of fakes (chance)."""
    fig = go.Figure()
    prevalence = None
    for i, (name, m) in enumerate(metrics.items()):
        if m.pr is None:
            continue
        prevalence = m.n_fake / m.n if m.n else None
        fig.add_trace(go.Scatter(
            x=m.pr.x, y=m.pr.y, mode="lines", name=f"{name} (AP {m.average_precision:.3f})", line_shape="hv",
            line=_series_line(i),
            customdata=np.asarray(m.pr.thresholds),
            hovertemplate=f"{name}<br>recall %{{x:.3f}}<br>precision %{{y:.3f}}<br>p_fake ≥ %{{customdata:.3f}}"
                          "<extra></extra>"))
    if prevalence is not None:
        fig.add_hline(y=prevalence, line_dash="dot", line_color=GREY,
                      annotation_text=f"share of fakes {prevalence:.2f}", annotation_position="bottom left")
    fig.update_layout(title="Precision-recall", xaxis=dict(title="recall (fakes caught)", range=UNIT_RANGE),
                      yaxis=dict(title="precision (fake calls right)", range=UNIT_RANGE), height=380, **_LAYOUT)
    return fig


def histogram_figure(p_real: Sequence[float], p_fake: Sequence[float], threshold: float | None = None,
                     title: str = "") -> go.Figure:
    """Score histograms of real and fake images (20 bins on [0, 1]) with the threshold as a dashed line."""
    bins = dict(start=0.0, end=1.0, size=0.05)
    fig = go.Figure([
        go.Histogram(x=list(p_real), name=f"real ({len(p_real)})", marker_color=GREEN, opacity=0.6, xbins=bins),
        go.Histogram(x=list(p_fake), name=f"fake ({len(p_fake)})", marker_color=RED, opacity=0.6, xbins=bins),
    ])
    if threshold is not None:
        fig.add_vline(x=threshold, line_dash="dash", line_color="#111827",
                      annotation_text=f"threshold {threshold:.2f}", annotation_position="top")
    fig.update_layout(barmode="overlay", title=title or "Scores per class", height=320,
                      xaxis=dict(title="p_fake", range=[0, 1]), yaxis=dict(title="images"), **_LAYOUT)
    return fig


def reliability_figure(metrics: Mapping[str, BinaryMetrics]) -> go.Figure:
    """Reliability diagram: per p_fake bin, the mean score vs the share that is really fake (marker size ∝
    images in the bin). On the diagonal = calibrated; ECE in the legend."""
    fig = go.Figure()
    for k, (name, m) in enumerate(metrics.items()):
        r = m.reliability
        if r is None:
            continue
        idx = [i for i, c in enumerate(r.counts) if c]
        sizes = np.asarray([r.counts[i] for i in idx], dtype=float)
        fig.add_trace(go.Scatter(
            x=[r.mean_p[i] for i in idx], y=[r.frac_fake[i] for i in idx], mode="lines+markers",
            name=f"{name} (ECE {m.ece:.3f})", customdata=sizes, line=dict(color=series_colour(k)),
            marker=dict(size=6 + 14 * np.sqrt(sizes / max(sizes.max(), 1.0)), color=series_colour(k)),
            hovertemplate=f"{name}<br>mean p_fake %{{x:.3f}}<br>really fake %{{y:.3f}}<br>%{{customdata:.0f}} "
                          "images<extra></extra>"))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated", showlegend=False,
                             line=dict(dash="dash", color=GREY), hoverinfo="skip"))
    # markers are up to 20 px wide: a bin at p_fake 1.0 or a share of 1.0 needs more room than lines do
    fig.update_layout(title="Reliability (calibration)", xaxis=dict(title="mean p_fake in bin", range=[-0.06, 1.06]),
                      yaxis=dict(title="share of fakes in bin", range=[-0.06, 1.06]), height=380, **_LAYOUT)
    return fig
