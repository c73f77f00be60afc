"""The Face page with test weights: results shared across sessions, Grad-CAM re-blended without recomputing, and the
Grad-CAM helpers (store, swipe, colour bar)."""
from __future__ import annotations

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from tests.helpers import ROOT
from ui.figures import CAM_COLORSCALE, cam_colours, cam_figure, heat_overlay, swipe_image
from ui.gradcam import SharedResults, display_size, shrink_map

PAGE = str(ROOT / "pages" / "3_Face_GradCAM.py")
ASTRONAUT = "Astronaut (camera photo, one face)"


@pytest.fixture()
def face_weights(weights_home, tmp_path):
    from core.models import install
    from core.models.factory import create_detector
    from core.models.registry import get_spec
    st.cache_resource.clear()
    st.cache_data.clear()
    det = create_detector("FACE", pretrained=False)
    ckpt = tmp_path / "face.pth"
    torch.save({"model_state_dict": det.model.state_dict()}, ckpt)
    install.import_file(ckpt, get_spec("FACE"))
    yield
    st.cache_resource.clear()


def _session() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=180).run()
    at.selectbox(key="face.example").set_value(ASTRONAUT).run()
    assert not at.exception, at.exception
    return at


def _status_labels(at: AppTest) -> list[str]:
    """Labels of the page's ``st.status`` boxes (blocks: not listed by ``at.get``)."""
    out, todo = [], list(at.main.children.values())
    while todo:
        node = todo.pop()
        if getattr(node, "type", "") == "status":
            out.append(node.label)
        todo += list(getattr(node, "children", {}).values())
    return out


def test_a_new_session_reuses_the_scores_and_grad_cam_of_the_same_image(face_weights):
    from ui.gradcam import result_key, shared
    assert len(shared()) == 0
    first = _session()
    assert not _status_labels(first)                    # the progress boxes are gone once the steps succeeded
    key = result_key("faces", "FACE:original", first.session_state["analyse.image"].sha256)
    stored = shared().get(key)
    assert stored is not None and not stored.faces[0].heatmap.flags.writeable    # shared: read-only
    second = _session()                                 # a fresh session on the same bytes: nothing recomputed
    assert shared().get(key) is stored
    assert [m.label for m in second.metric] == ["Face #0 P(fake)"]


def test_grad_cam_sliders_reblend_the_stored_map(face_weights):
    from ui.gradcam import shared
    at = _session()
    before = len(shared())
    assert at.radio(key="face.cam.view").value == "Side by side"
    at.slider(key="face.cam.opacity").set_value(0.9).run()
    at.radio(key="face.cam.view").set_value("Swipe").run()
    at.slider(key="face.cam.swipe").set_value(0.2).run()
    at.radio(key="face.cam.view").set_value("Overlay").run()
    assert not at.exception
    assert len(shared()) == before                      # no new result was computed
    assert any("only re-blend" in c.value for c in at.caption)


def test_shared_results_drop_the_least_recently_used():
    s = SharedResults(max_entries=2)
    s.put("a", 1)
    s.put("b", 2)
    assert s.get("a") == 1                              # a is now the most recent
    s.put("c", 3)
    assert (s.get("a"), s.get("b"), s.get("c"), len(s)) == (1, None, 3, 2)


def test_maps_are_shrunk_for_display_and_read_only():
    assert display_size((4000, 2000), 1000) == (1000, 500) and display_size((300, 200), 1000) == (300, 200)
    big = np.linspace(0, 1, 3000 * 1500, dtype=np.float32).reshape(1500, 3000)
    small = shrink_map(big, 600)
    assert small.shape == (300, 600) and not small.flags.writeable and 0 <= small.min() <= small.max() <= 1


def test_swipe_shows_the_picture_left_and_the_overlay_right_of_the_divider():
    pic = Image.new("RGB", (100, 10), (10, 10, 10))
    over = Image.new("RGB", (100, 10), (200, 0, 0))
    out = np.asarray(swipe_image(pic, over, 0.3))
    assert out[5, 10].tolist() == [10, 10, 10] and out[5, 60].tolist() == [200, 0, 0]
    assert out[5, 30].tolist() == [255, 255, 255]        # the divider


def test_cam_colour_bar_uses_the_overlay_colours():
    fig = cam_figure(heat_overlay(Image.new("RGB", (40, 20), "grey"), np.ones((20, 40), np.float32), 1.0))
    bar = fig.data[1].marker
    assert bar.showscale and (bar.cmin, bar.cmax) == (0.0, 1.0) and "Grad-CAM" in bar.colorbar.title.text
    hot = [int(v) for v in CAM_COLORSCALE[-1][1][4:-1].split(",")]
    assert hot == [int(round(255 * v)) for v in cam_colours(np.array(1.0))]
    # a fully hot map at full opacity is painted in the colour bar's top colour
    px = np.asarray(heat_overlay(Image.new("RGB", (4, 4), "grey"), np.ones((4, 4), np.float32), 1.0))[0, 0]
    assert np.abs(px.astype(int) - np.array(hot)).max() <= 1


def test_single_detector_grad_cam_is_computed_once_and_reblended(tiny_config, weights_home):
    from tests.helpers import install_tiny_detectors, png_bytes
    from ui.gradcam import result_key, shared
    st.cache_resource.clear()
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0)})
    at = AppTest.from_file(str(ROOT / "pages" / "1_Single_Detector.py"), default_timeout=120).run()
    at.selectbox(key="single.detector").set_value("TA").run()
    at.file_uploader(key="single.upload").upload("x.png", png_bytes((80, 70)), "image/png").run()
    at.button(key="single.run").click().run()
    at.checkbox(key="single.cam").check().run()
    assert not at.exception, at.exception
    key = result_key("explain", "TA:original", at.session_state["analyse.image"].sha256)
    exp = shared().get(key)
    assert exp is not None and exp.heatmap.shape == (70, 80) and not exp.heatmap.flags.writeable
    at.slider(key="single.cam.opacity").set_value(0.2).run()
    at.radio(key="single.cam.view").set_value("Side by side").run()
    assert not at.exception and shared().get(key) is exp          # the same stored map: nothing recomputed
    assert any("Grad-CAM value" in c.value for c in at.caption)    # the colour scale is explained
    st.cache_resource.clear()


def test_side_by_side_and_small_crops_are_enlarged_for_display():
    from ui.figures import side_by_side
    from ui.gradcam import display_picture
    pair = side_by_side(Image.new("RGB", (50, 40), "black"), Image.new("RGB", (10, 10), "red"), gap=4)
    assert pair.size == (104, 40) and pair.getpixel((52, 5)) == (255, 255, 255) and pair.getpixel((60, 5)) == (255, 0, 0)
    assert max(display_picture(Image.new("RGB", (160, 120))).size) == 512
    assert max(display_picture(Image.new("RGB", (4000, 3000))).size) == 1280


def test_compare_switches_between_several_faces():
    def app():
        import numpy as np
        from PIL import Image

        from ui.gradcam import CamItem, compare
        heat = np.zeros((20, 20), np.float32)
        compare([CamItem("face #0", Image.new("RGB", (20, 20), "grey"), heat),
                 CamItem("face #1", Image.new("RGB", (30, 20), "grey"), heat + 1.0)], "t")
    at = AppTest.from_function(app).run()
    assert not at.exception and at.selectbox(key="t.item").options == ["face #0", "face #1"]
    assert any("map is empty" in i.value for i in at.info)             # face #0's map is all zero
    at.selectbox(key="t.item").set_value(1).run()
    assert not at.exception and not at.info


def test_sessions_asking_at_once_share_one_computation():
    import threading
    import time
    s = SharedResults()
    calls = []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.2)
        return "map"
    out = []
    threads = [threading.Thread(target=lambda: out.append(s.get_or_compute("k", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == ["map"] * 4 and len(calls) == 1
