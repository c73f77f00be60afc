"""Pure figure builders: inspected through fig.data / pixels (AppTest has no typed Plotly accessor)."""
from __future__ import annotations

import numpy as np
from PIL import Image
from tests.unit.test_ensemble import r

from core.verdict.ensemble import EnsembleConfig, ensemble
from ui.figures import draw_boxes, ensemble_bar, heat_overlay


def test_ensemble_bar_colours_threshold_and_hover():
    e = ensemble([r("A", 0.9), r("B", 0.2), r("C", 0.55)], EnsembleConfig(weights={"A": .5, "B": .3, "C": .2}))
    fig = ensemble_bar(e)
    bar = fig.data[0]
    assert list(bar.x) == ["A", "B", "C"]
    assert list(bar.marker.color) == ["#dc2626", "#16a34a", "#9ca3af"]      # fake red, real green, no vote grey
    np.testing.assert_allclose(bar.y, [0.9, 0.8, 0.55])
    assert fig.layout.shapes[0].y0 == 0.6 and fig.layout.shapes[0].line.dash == "dash"
    assert "logit" in bar.hovertemplate and "time" in bar.hovertemplate


def test_heat_overlay_tints_only_where_heat_is():
    img = Image.new("RGB", (20, 10), (100, 100, 100))
    heat = np.zeros((10, 20), np.float32)
    heat[:, 10:] = 1.0
    out = np.asarray(heat_overlay(img, heat, 0.5)).astype(int)
    assert (out[:, :9] == 100).all()                     # cold half untouched
    assert (out[:, 12:, 0] - out[:, 12:, 1]).min() > 40    # hot half tinted red


def test_draw_boxes_keeps_size_and_draws():
    img = Image.new("RGB", (50, 40), "white")
    out = draw_boxes(img, [(5, 5, 30, 30)], ["#0"], ["#ff0000"])
    assert out.size == img.size and np.asarray(out)[20, 5].tolist() == [255, 0, 0]
    assert np.asarray(img).min() == 255                  # the input is not modified
