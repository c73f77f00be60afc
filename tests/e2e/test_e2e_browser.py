"""One real-browser test: Chromium uploads an image to `streamlit run Home.py` and sees the verdict."""
from __future__ import annotations

import pytest

from tests.helpers import install_tiny_detectors, png_bytes
from tests.helpers.browser import browser_page, chromium_available, streamlit_app

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed "
                                                                   "(apt-get install chromium; .ci/run does this)")]


def test_upload_and_see_a_verdict(tiny_config, weights_home, tmp_path):
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    img = tmp_path / "upload.png"
    img.write_bytes(png_bytes((96, 72)))
    env = {"DEEPFAKE_LENS_CONFIG_DIRS": str(tiny_config), "DEEPFAKE_LENS_WEIGHTS": str(weights_home),
           "HF_HUB_OFFLINE": "1"}
    with streamlit_app(env) as url, browser_page() as page:
        page.goto(url, wait_until="networkidle")
        page.get_by_text("Analyse an image").wait_for(timeout=60_000)
        uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="Upload an image")
        uploader.locator("input[type=file]").set_input_files(str(img))      # not the sidebar's profile uploader
        button = page.get_by_role("button", name="Analyse with the 2 installed detector(s)")
        button.wait_for(timeout=60_000)
        button.click()
        page.get_by_text("Weighted vote of the original app").wait_for(timeout=120_000)
        verdict = page.get_by_text("Weighted vote of the original app").inner_text()
        assert "FAKE" in verdict
        # the headline sits above the vote: one fake and one real vote is a split, so inconclusive
        headline = page.get_by_text("Inconclusive: the voting detectors are split evenly")
        assert headline.bounding_box()["y"] < page.get_by_text("Weighted vote of the original app").bounding_box()["y"]
        page.screenshot(path=str(tmp_path / "home_result.png"), full_page=True)
        assert page.locator('[data-testid="stSidebar"]').get_by_text("Headline rule").is_visible()
        # the Ensemble page: the same headline above the vote, and its fused numbers say "uncalibrated"
        page.get_by_role("link", name="Ensemble").first.click()
        page.get_by_role("button", name="Run the 2 installed detector(s)").click()
        page.get_by_text("Mean logit (uncalibrated)").wait_for(timeout=120_000)
        head = page.get_by_text("Inconclusive: the voting detectors are split evenly").bounding_box()
        assert head["y"] < page.get_by_text("Weighted vote of the original app").bounding_box()["y"]
        assert page.get_by_text("Weighted votes fake / real (uncalibrated)").is_visible()
    assert (tmp_path / "home_result.png").stat().st_size > 10_000
