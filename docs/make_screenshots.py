"""Take the README's screenshots: the real app in headless Chromium, with TEST weights (not real detections).

Two decided test detectors (TEST_A says fake, TEST_B says real) and a randomly initialised FACE classifier are
installed into a temporary weights folder; the six paper detectors show as "weights not installed".

    python docs/make_screenshots.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
OUT = ROOT / "docs" / "screenshots"


def main() -> None:
    import os

    import torch
    from browser import browser_page, streamlit_app
    from conftest import install_tiny_detectors

    with tempfile.TemporaryDirectory() as tmp:
        cfg, wd = Path(tmp) / "configs", Path(tmp) / "weights"
        cfg.mkdir()
        wd.mkdir()
        os.environ["DEEPFAKE_LENS_CONFIG_DIRS"] = str(cfg)
        os.environ["DEEPFAKE_LENS_WEIGHTS"] = str(wd)
        install_tiny_detectors(cfg, wd, {"TEST_A": (0.6, 2.0), "TEST_B": (0.4, -1.2)})
        from core.models import install
        from core.models.factory import create_detector
        from core.models.registry import get_spec
        det = create_detector("FACE", pretrained=False)
        torch.manual_seed(0)
        torch.save({"model_state_dict": det.model.state_dict()}, Path(tmp) / "face.pth")
        install.import_file(Path(tmp) / "face.pth", get_spec("FACE"), weights_dir=wd)
        env = {"DEEPFAKE_LENS_CONFIG_DIRS": str(cfg), "DEEPFAKE_LENS_WEIGHTS": str(wd), "HF_HUB_OFFLINE": "1"}
        with streamlit_app(env) as url, browser_page(1400, 1900) as page:
            def pick_example(name: str) -> None:
                page.locator('[data-testid="stSelectbox"]').filter(has_text="try an example").first.click()
                page.get_by_role("option", name=name).click()

            page.goto(url, wait_until="networkidle")
            page.get_by_text("Analyse an image").wait_for(timeout=60_000)
            pick_example("Coffee (camera photo)")
            page.get_by_role("button", name="Analyse with").click()
            page.get_by_text("Weighted vote of the original app").wait_for(timeout=120_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / "home.png"), full_page=False)

            page.get_by_role("link", name="Ensemble").first.click()
            page.get_by_role("button", name="Run the").click()
            page.get_by_text("Votes fake / real").wait_for(timeout=120_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / "ensemble.png"), full_page=False)

            page.get_by_role("link", name="Single Detector").first.click()
            page.get_by_text("Model card").wait_for(timeout=60_000)
            page.screenshot(path=str(OUT / "single_detector_missing.png"), full_page=False)
            page.locator('[data-testid="stSelectbox"]').filter(has_text="Detector").first.click()
            page.get_by_role("option", name="TEST_A").click()
            page.get_by_role("button", name="Run TEST_A:original").click()
            page.get_by_text("Logit (positive = fake)").wait_for(timeout=120_000)
            page.get_by_text("Show Grad-CAM").click()
            page.get_by_text("Grad-CAM at").wait_for(timeout=120_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / "single_detector.png"), full_page=False)

            page.get_by_role("link", name="Face GradCAM").first.click()
            page.get_by_text("Upload an image").wait_for(timeout=60_000)
            pick_example("Astronaut (camera photo, one face)")
            page.get_by_text("face(s) found").wait_for(timeout=120_000)
            page.get_by_text("Face #0 P(fake)").wait_for(timeout=120_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(OUT / "face_gradcam.png"), full_page=False)

            page.get_by_role("link", name="Forensics").first.click()
            page.get_by_text("Frequency").first.wait_for(timeout=60_000)
            pick_example("Nearest-neighbour upsampled texture (rendered by this project; shows up-sampling traces)")
            page.wait_for_timeout(6000)
            page.screenshot(path=str(OUT / "forensics.png"), full_page=False)

            page.get_by_role("link", name="Evaluation").first.click()
            page.get_by_role("button", name="Run the demo evaluation").click()
            page.get_by_text("Confusion matrices").wait_for(timeout=120_000)
            page.wait_for_timeout(2000)
            page.screenshot(path=str(OUT / "evaluation.png"), full_page=False)

            page.get_by_role("link", name="Models").first.click()
            page.get_by_text("Import the Truebees bundle").wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(OUT / "models.png"), full_page=False)


def shrink(width: int = 1000) -> None:
    """Downscale the screenshots so the README stays light."""
    from PIL import Image
    for png in OUT.glob("*.png"):
        with Image.open(png) as im:
            im = im.convert("RGB")
            if im.width > width:
                im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
            im.save(png, optimize=True)


if __name__ == "__main__":
    main()
    shrink()
