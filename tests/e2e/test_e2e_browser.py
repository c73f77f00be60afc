"""Real-browser tests: Chromium drives `streamlit run Home.py` with test weights, page by page, upload → result.

The steps rely on what a user sees and what stays stable: page titles, uploader labels, button names and the
verdict words. One app and one browser serve every page (each start costs seconds).
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
import torch

from tests.helpers import install_tiny_detectors, png_bytes
from tests.helpers.browser import browser_page, chromium_available, streamlit_app

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not chromium_available(), reason="Debian's chromium is not installed "
                                                                   "(apt-get install chromium; .ci/run does this)")]
LONG = 180_000        # ms: a model's first load and Grad-CAM on a CPU


@pytest.fixture()
def app_env(tiny_config, weights_home, tmp_path) -> dict[str, str]:
    """Two decided test detectors (TA says fake, TB real) and a randomly initialised FACE classifier."""
    from core.models import install
    from core.models.factory import create_detector
    from core.models.registry import get_spec
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    torch.manual_seed(0)
    det = create_detector("FACE", pretrained=False)
    torch.save({"model_state_dict": det.model.state_dict()}, tmp_path / "face.pth")
    install.import_file(tmp_path / "face.pth", get_spec("FACE"))
    return {"DEEPFAKE_LENS_CONFIG_DIRS": str(tiny_config), "DEEPFAKE_LENS_WEIGHTS": str(weights_home),
            "HF_HUB_OFFLINE": "1", "DEEPFAKE_LENS_CACHE": str(tmp_path / "cache")}


def _upload(page, label: str, path: Path) -> None:
    """Set a file on the uploader whose label contains ``label`` (pages have several uploaders)."""
    uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text=label).first
    uploader.locator("input[type=file]").set_input_files(str(path))


def _go(page, link: str, title: str) -> None:
    page.get_by_role("link", name=link).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)


def _labelled_zip(path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(3):
            zf.writestr(f"data/real/r{i}.png", png_bytes((48, 40), seed=i))
            zf.writestr(f"data/fake/f{i}.png", png_bytes((48, 40), seed=20 + i))
    path.write_bytes(buf.getvalue())
    return path


def _home(page, img: Path) -> None:
    page.get_by_text("Analyse an image").first.wait_for(timeout=60_000)
    _upload(page, "Upload an image", img)                  # not the sidebar's profile uploader
    button = page.get_by_role("button", name="Analyse with")
    button.first.wait_for(timeout=60_000)
    button.first.click()
    page.get_by_text("Weighted vote of the original app").first.wait_for(timeout=LONG)
    verdict = page.get_by_text("Weighted vote of the original app").first.inner_text()
    assert "FAKE" in verdict or "REAL" in verdict
    # one fake and one real vote is a split: the graded headline (above the vote) says so
    headline = page.get_by_text("Inconclusive").first
    assert headline.bounding_box()["y"] < page.get_by_text("Weighted vote of the original app").first.bounding_box()["y"]
    assert page.locator('[data-testid="stSidebar"]').get_by_text("Headline rule").is_visible()


def _single(page) -> None:
    _go(page, "Single Detector", "Single detector")
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Detector").first.click()
    page.get_by_role("option", name="TA").first.click()
    page.get_by_role("button", name="Run TA").first.click()
    page.get_by_text("Logit (positive = fake)").wait_for(timeout=LONG)
    assert page.get_by_text("FAKE", exact=True).first.is_visible()            # TA's logit is +3
    page.get_by_text("Show Grad-CAM").click()
    page.get_by_text("Grad-CAM at").first.wait_for(timeout=LONG)
    page.locator(".js-plotly-plot").filter(has_text="Grad-CAM").first.wait_for(timeout=60_000)   # its colour bar


def _ensemble(page) -> None:
    _go(page, "Ensemble", "Ensemble")
    run = page.get_by_role("button", name="Run the")
    if run.count():
        run.first.click()
    page.get_by_text("Weighted votes fake / real").first.wait_for(timeout=LONG)
    assert page.get_by_text("Weighted vote of the original app").first.is_visible()
    assert page.get_by_text("Mean logit (uncalibrated)").first.is_visible()     # fused numbers say "uncalibrated"


def _face(page) -> None:
    _go(page, "Face GradCAM", "Face Grad-CAM")
    page.locator('[data-testid="stSelectbox"]').filter(has_text="try an example").first.click()
    page.get_by_role("option", name="Astronaut (camera photo, one face)").click()
    page.get_by_text("Face #0 P(fake)").wait_for(timeout=LONG)
    page.get_by_text("1 face(s) found").wait_for(timeout=30_000)
    page.get_by_role("heading", name="Grad-CAM: where the classifier looked").wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").filter(has_text="Grad-CAM").first.wait_for(timeout=60_000)
    page.get_by_text("Side by side").first.click()                   # re-blends the stored map, nothing recomputed
    page.get_by_text("picture").first.wait_for(timeout=30_000)


def _forensics(page, img: Path) -> None:
    _go(page, "Forensics", "Forensics")
    _upload(page, "Upload an image", img)
    page.get_by_text("1300×900 px").first.wait_for(timeout=LONG)       # the upload's caption
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=60_000)     # the facts table (a canvas)
    page.get_by_role("tab", name="Error levels (ELA)").click()
    # the region analysed is stated (the other tabs' captions say the same, hidden)
    page.locator("p:visible").filter(has_text="Whole image (1300×900 px) analysed").first.wait_for(timeout=60_000)
    page.locator(".js-plotly-plot").filter(has_text="difference").first.wait_for(timeout=60_000)   # colour bar


def _evaluation(page, data: Path) -> None:
    _go(page, "Evaluation", "Evaluation")
    page.get_by_text("Zip file").first.click()
    _upload(page, "A zip of labelled folders", data)
    page.get_by_text("6 file(s)").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Run evaluation").click()
    page.get_by_role("heading", name="Comparison").wait_for(timeout=LONG)
    page.get_by_role("heading", name="Comparison").scroll_into_view_if_needed()      # for the screenshot
    page.get_by_role("heading", name="Confusion matrices").wait_for(timeout=30_000)
    page.locator(".js-plotly-plot").filter(has_text="ROC").first.wait_for(timeout=30_000)


def test_upload_to_result_on_every_image_page(app_env, tmp_path):
    img = tmp_path / "upload.png"
    img.write_bytes(png_bytes((96, 72)))
    other = tmp_path / "other.png"
    other.write_bytes(png_bytes((1300, 900), seed=4))                 # larger than a map's 1024 px: shown scaled
    with streamlit_app(app_env) as url, browser_page() as page:
        page.goto(url, wait_until="networkidle")
        steps = (("home", lambda: _home(page, img)), ("single", lambda: _single(page)),
                 ("ensemble", lambda: _ensemble(page)), ("face", lambda: _face(page)),
                 ("forensics", lambda: _forensics(page, other)),
                 ("evaluation", lambda: _evaluation(page, _labelled_zip(tmp_path / "data.zip"))))
        for name, step in steps:
            try:
                step()
            except Exception:
                page.screenshot(path=str(tmp_path / f"failed_{name}.png"), full_page=True)
                raise
            page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    assert all((tmp_path / f"{n}.png").stat().st_size > 10_000 for n, _ in steps)
