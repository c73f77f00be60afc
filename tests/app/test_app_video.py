"""Video page (AppTest): upload → analyse → headline, timeline figure, track gallery, frame view, downloads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.video.analyse import analyse_video
from core.video.sampling import SamplingPlan
from tests.helpers import install_tiny_detectors
from tests.unit.videogen import no_face, panned, write_video
from ui.video import timeline_figure

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/7_Video.py"


@pytest.fixture(autouse=True)
def _fresh(weights_home):
    st.cache_resource.clear()
    st.cache_data.clear()
    yield


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "two.mp4", panned([1, 2], side=100), n=20)


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=240).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _plotly(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def test_upload_analyse_shows_timeline_gallery_and_frame(two_faces, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))          # the analyst's video must not stay on the server's disk
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    at = _page()
    assert "Upload a video" in at.info[0].value
    at.file_uploader(key="video.upload").upload("two.mp4", two_faces.read_bytes(), "video/mp4").run()
    at.number_input(key="video.fps").set_value(2.0).run()
    at.button(key="video.run").click().run()
    assert not at.exception, at.exception
    figs = _plotly(at)
    assert len(figs) == 1
    names = {t.get("name") for t in figs[0]["data"]}
    assert {"track 0 seen", "track 1 seen"} <= names                # one trace per track (unscored: presence)
    md = " ".join(m.value for m in at.markdown)
    assert ":orange[Inconclusive: 2 face track(s) found, but the FACE classifier's weights are not installed]" in md
    assert "no detector scored the frames or the faces" in md
    captions = [i.proto.imgs[0].caption for i in at.get("image")]
    assert sum(c.startswith("Track ") for c in captions) == 2 and any(c.startswith("frame ") for c in captions)
    assert len(at.get("download_button")) == 3
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith("deepfake-lens-video")]
    assert left == [], left                                          # upload and outputs deleted after use


def test_whole_frame_detector_line_and_caveat(tmp_path, tiny_config, weights_home):
    install_tiny_detectors(tiny_config, weights_home, {"TINY": (0.5, 2.0), "TB": (0.5, 2.0)})
    clip = write_video(tmp_path / "plain.webm", no_face(), n=20, codec="libvpx")
    at = _page()
    at.file_uploader(key="video.upload").upload("plain.webm", clip.read_bytes(), "video/webm").run()
    at.number_input(key="video.fps").set_value(2.0).run()
    at.button(key="video.run").click().run()
    assert not at.exception, at.exception
    names = {t.get("name") for t in _plotly(at)[0]["data"]}
    assert {"TINY:original", "TB:original"} <= names
    texts = " ".join(w.value for w in at.warning)
    assert "weak evidence" in texts and "No face was found" in " ".join(i.value for i in at.info)
    md = " ".join(m.value for m in at.markdown)     # two detectors agree: moderate for an image, weak for a video
    assert ":red[Weak evidence of AI generation]" in md and "whole frames: 2 of 2 voting detectors" in md


def test_hostile_upload_is_one_sentence():
    at = _page()
    at.file_uploader(key="video.upload").upload("fake.mp4", b"not a video\n" * 30, "video/mp4").run()
    at.button(key="video.run").click().run()
    assert not at.exception, at.exception
    assert at.error and "not a readable video" in at.error[0].value


def test_timeline_figure_lines_per_track_and_detector(two_faces):
    from core.models.factory import create_detector
    a = analyse_video(str(two_faces), plan=SamplingPlan(fps=2),
                      face=create_detector("FACE", pretrained=False), with_cam=False)
    fig = timeline_figure(a)
    lines = [t for t in fig.data if t.name.startswith("face track")]
    assert [t.name for t in lines] == ["face track 0", "face track 1"]
    assert all(len(t.x) == len(a.frames) and list(t.customdata) == [f.index for f in a.frames] for t in lines)


def test_frame_grad_cam_has_a_colour_bar_and_is_computed_once(two_faces, tmp_path):
    import torch

    from core.models import install
    from core.models.factory import create_detector
    from core.models.registry import get_spec
    from ui.gradcam import shared
    torch.manual_seed(0)
    det = create_detector("FACE", pretrained=False)
    torch.save({"model_state_dict": det.model.state_dict()}, tmp_path / "face.pth")
    install.import_file(tmp_path / "face.pth", get_spec("FACE"))
    at = _page()
    at.file_uploader(key="video.upload").upload("two.mp4", two_faces.read_bytes(), "video/mp4").run()
    at.number_input(key="video.fps").set_value(2.0).run()
    at.button(key="video.run").click().run()
    assert not at.exception, at.exception
    cams = [f for f in _plotly(at) if f["data"] and f["data"][0].get("type") == "image"]
    assert len(cams) == 1 and "Grad-CAM" in cams[0]["data"][1]["marker"]["colorbar"]["title"]["text"]
    stored = [k for k in shared().keys() if k[0] == "explain"]
    assert len(stored) == 1
    at.run()                                            # a rerun (any widget) reuses the stored map
    assert [k for k in shared().keys() if k[0] == "explain"] == stored
    assert any("Grad-CAM" in c.value for c in at.caption)
