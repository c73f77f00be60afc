"""One real-browser test of the Video page: Chromium uploads a generated video to `streamlit run Home.py`, presses
Analyse and sees the graded headline, the Plotly timeline (one line per detector) and the track gallery."""
from __future__ import annotations

import pytest

from tests.helpers import install_tiny_detectors
from tests.helpers.browser import browser_page, chromium_available, streamlit_app
from tests.unit.videogen import panned, write_video

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed "
                                                                   "(apt-get install chromium; .ci/run does this)")]


def test_upload_a_video_and_see_the_timeline(tiny_config, weights_home, tmp_path):
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, 3.0)})
    clip = write_video(tmp_path / "panned.mp4", panned([1]), n=40)          # 4 s, one face panned across
    env = {"DEEPFAKE_LENS_CONFIG_DIRS": str(tiny_config), "DEEPFAKE_LENS_WEIGHTS": str(weights_home),
           "HF_HUB_OFFLINE": "1"}
    with streamlit_app(env) as url, browser_page() as page:
        page.goto(url, wait_until="networkidle")
        page.get_by_text("Analyse an image").wait_for(timeout=60_000)
        page.get_by_role("link", name="Video").first.click()
        page.get_by_text("Upload a video").first.wait_for(timeout=60_000)
        uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Upload a video")
        uploader.locator("input[type=file]").set_input_files(str(clip))
        button = page.get_by_role("button", name="Analyse")
        button.wait_for(timeout=60_000)
        button.click()
        page.get_by_role("heading", name="Timeline").wait_for(timeout=180_000)
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for(state="visible", timeout=60_000)
        for name in ("TA:original", "TB:original", "track 0 seen"):          # one line per detector, track bar
            chart.get_by_text(name).first.wait_for(timeout=30_000)
        assert chart.bounding_box()["height"] > 200
        # two whole-frame detectors agree (moderate for an image): weak evidence for a video
        assert page.get_by_text("Weak evidence of AI generation").first.is_visible()
        page.get_by_text("Track 0 ·").first.wait_for(timeout=30_000)        # the track gallery
        page.screenshot(path=str(tmp_path / "video_result.png"), full_page=True)
    assert (tmp_path / "video_result.png").stat().st_size > 10_000
