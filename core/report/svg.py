"""Small static charts as inline SVG for the case report (no JavaScript; deterministic output)."""
from __future__ import annotations

import html
import math
from collections.abc import Sequence

from core.style import PALETTE as _PALETTE


def _e(v: object) -> str:
    return html.escape("—" if v is None else str(v))


def svg_line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, x_labels: Sequence[str] = (),
                   y_range: tuple[float, float] | None = None, hline: float | None = None, x_title: str = "",
                   y_title: str = "", width: int = 720, height: int = 300, markers: bool = True) -> str:
    """A small static line chart as inline SVG (no JavaScript; deterministic output).

    Args:
        series: (name, xs, ys) per line; NaN values break the line.
        x_labels: category labels at x = 0, 1, 2, … (categorical axis); empty for a numeric axis.
        y_range: fixed (min, max); default from the data.
        hline: a dashed horizontal reference line (e.g. the 0.5 threshold).
    """
    ml, mr, mt, mb = 56, 150 if len(series) > 1 else 16, 14, 52
    pw, ph = width - ml - mr, height - mt - mb
    xs_all = [x for _, xs, _ in series for x in xs]
    ys_all = [y for _, _, ys in series for y in ys if y is not None and math.isfinite(y)]
    x0, x1 = (0.0, max(1.0, len(x_labels) - 1.0)) if x_labels else (min(xs_all or [0]), max(xs_all or [1]))
    if x1 == x0:
        x1 = x0 + 1
    if y_range:
        y0, y1 = y_range
    else:
        y0, y1 = (min(ys_all), max(ys_all)) if ys_all else (0.0, 1.0)
        pad = (y1 - y0) * 0.05 or 0.5
        y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return round(ml + (x - x0) / (x1 - x0) * pw, 1)

    def sy(y: float) -> float:
        return round(mt + (1 - (y - y0) / (y1 - y0)) * ph, 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="sans-serif" font-size="11">',
             f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#9ca3af"/>']
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{sy(yv)}" y2="{sy(yv)}" stroke="#e5e7eb"/>'
                     f'<text x="{ml - 4}" y="{sy(yv) + 4}" text-anchor="end">{yv:.2f}</text>')
    if x_labels:
        for i, lab in enumerate(x_labels):
            parts.append(f'<text x="{sx(i)}" y="{mt + ph + 16}" text-anchor="middle">{_e(lab)}</text>')
    else:
        for i in range(6):
            xv = x0 + (x1 - x0) * i / 5
            parts.append(f'<text x="{sx(xv)}" y="{mt + ph + 16}" text-anchor="middle">{xv:.2f}</text>')
    if hline is not None and y0 <= hline <= y1:
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{sy(hline)}" y2="{sy(hline)}" stroke="#374151" '
                     'stroke-dasharray="5,4"/>')
    for k, (name, xs, ys) in enumerate(series):
        colour = _PALETTE[k % len(_PALETTE)]
        segs, cur = [], []
        for x, y in zip(xs, ys):
            if y is None or not math.isfinite(y):
                if cur:
                    segs.append(cur)
                cur = []
                continue
            cur.append(f"{sx(x)},{sy(min(max(y, y0), y1))}")
        if cur:
            segs.append(cur)
        for seg in segs:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(seg)}"/>')
            if markers:
                parts += [f'<circle cx="{pt.split(",")[0]}" cy="{pt.split(",")[1]}" r="3" fill="{colour}"/>'
                          for pt in seg]
        if len(series) > 1:
            ly = mt + 12 + 16 * k
            parts.append(f'<line x1="{ml + pw + 10}" x2="{ml + pw + 28}" y1="{ly - 4}" y2="{ly - 4}" '
                         f'stroke="{colour}" stroke-width="2"/><text x="{ml + pw + 32}" y="{ly}">{_e(name)}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{height - 8}" text-anchor="middle">{_e(x_title)}</text>')
    parts.append(f'<text x="14" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {mt + ph / 2})">'
                 f'{_e(y_title)}</text></svg>')
    return "".join(parts)
