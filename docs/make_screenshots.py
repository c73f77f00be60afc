"""Take the README's screenshots: the real app in headless Chromium, with TEST weights (not real detections).

Three decided test detectors (TEST_A and TEST_B say fake, TEST_C says real, whatever the image) and a randomly
initialised FACE classifier are installed into a temporary weights folder; the paper detectors show as "weights not
installed". Every screenshot carries a yellow "TEST WEIGHTS" banner, so no one mistakes its numbers for a detection.
Debian's Chromium (/usr/bin/chromium) is driven by Playwright; no browser is downloaded.

    python docs/make_screenshots.py            # all pages
    python docs/make_screenshots.py home face  # some of them
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"
BANNER = ("TEST WEIGHTS — screenshot made with decided test detectors (TEST_A, TEST_B, TEST_C) and a random face "
          "classifier: the numbers mean nothing")
TEST_DETECTORS = {"TEST_A": (0.5, 2.0), "TEST_B": (0.3, 1.4), "TEST_C": (0.2, -1.2)}   # id → (weight, logit)
_BANNER_JS = """text => {
  let b = document.getElementById('test-weights-banner');
  if (!b) { b = document.createElement('div'); b.id = 'test-weights-banner'; document.body.appendChild(b); }
  b.textContent = text;
  b.style.cssText = 'position:fixed;top:8px;left:50%;transform:translateX(-50%);z-index:2147483647;' +
    'background:#facc15;color:#111827;font:600 15px sans-serif;padding:6px 14px;border-radius:6px;' +
    'box-shadow:0 1px 4px rgba(0,0,0,.3);white-space:nowrap';
}"""


def _install(tmp: Path) -> dict[str, str]:
    """Declare and install the test detectors and a random FACE classifier; the app's environment."""
    import torch

    from tests.helpers import install_tiny_detectors
    cfg, wd = tmp / "configs", tmp / "weights"
    cfg.mkdir()
    wd.mkdir()
    os.environ["DEEPFAKE_LENS_CONFIG_DIRS"] = str(cfg)
    os.environ["DEEPFAKE_LENS_WEIGHTS"] = str(wd)
    install_tiny_detectors(cfg, wd, TEST_DETECTORS)
    from core.models import install
    from core.models.factory import create_detector
    from core.models.registry import get_spec
    torch.manual_seed(0)
    det = create_detector("FACE", pretrained=False)
    torch.save({"model_state_dict": det.model.state_dict()}, tmp / "face.pth")
    install.import_file(tmp / "face.pth", get_spec("FACE"), weights_dir=wd)
    return {"DEEPFAKE_LENS_CONFIG_DIRS": str(cfg), "DEEPFAKE_LENS_WEIGHTS": str(wd), "HF_HUB_OFFLINE": "1",
            "DEEPFAKE_LENS_CACHE": str(tmp / "cache")}


def _two_tools(tmp: Path, env: dict[str, str], n: int = 400) -> tuple[Path, Path]:
    """A predictions CSV of two made-up complementary, overconfident tools (toolA writes P(fake), toolB a logit;
    each sees only half of the fakes) and the calibration profile `python -m core calibrate` fits on it."""
    import numpy as np
    import pandas as pd
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    half, sign = np.arange(n) < n // 2, 2 * y - 1
    za = 3.0 * np.where(half, 3.0 * sign + rng.normal(0, 1.5, n), rng.normal(0, 1.5, n))
    zb = 3.0 * np.where(~half, 3.0 * sign + rng.normal(0, 1.5, n), rng.normal(0, 1.5, n))
    csv = tmp / "two_tools.csv"
    pd.DataFrame({"path": [f"img{i}.png" for i in range(n)], "label": np.where(y == 1, "fake", "real"),
                  "toolA": 1 / (1 + np.exp(-za)), "toolB": zb}).to_csv(csv, index=False)
    profile = tmp / "two_tools_profile.json"
    subprocess.run([sys.executable, "-m", "core", "calibrate", str(csv), "--out", str(profile)], cwd=ROOT,
                   env=dict(os.environ, **env), check=True, stdout=subprocess.DEVNULL)
    return csv, profile


class Shots:
    """The page-driving steps, one method per screenshot (each leaves the app where the next can start)."""

    def __init__(self, page: Any, csv: Path, profile: Path) -> None:     # a playwright Page
        self.page, self.csv, self.profile = page, csv, profile

    def _go(self, link: str, ready: str) -> None:
        self.page.get_by_role("link", name=link).first.click()
        self.page.get_by_text(ready).first.wait_for(timeout=60_000)

    def _example(self, name: str) -> None:
        self.page.locator('[data-testid="stSelectbox"]').filter(has_text="try an example").first.click()
        self.page.get_by_role("option", name=name).click()

    def _save(self, name: str, wait_ms: int = 1500) -> None:
        self.page.wait_for_timeout(wait_ms)
        self.page.evaluate(_BANNER_JS, BANNER)
        self.page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
        print(f"wrote {OUT / name}.png")

    def home(self) -> None:
        self._example("Coffee (camera photo)")
        self.page.get_by_role("button", name="Analyse with").click()
        self.page.get_by_text("Weighted vote of the original app").wait_for(timeout=120_000)
        self._save("home")

    def ensemble(self) -> None:
        self._go("Ensemble", "Upload an image")
        self.page.get_by_role("button", name="Run the").click()
        self.page.get_by_text("Weighted votes fake / real").wait_for(timeout=120_000)
        self._save("ensemble")

    def single_detector(self) -> None:
        self._go("Single Detector", "Model card")
        # a new session opens on a detector that can run: pick one without weights for the "missing" shot
        self.page.locator('[data-testid="stSelectbox"]').filter(has_text="Detector").first.click()
        self.page.get_by_role("option", name="CLIP-D").first.click()
        self.page.get_by_text("Install weights").first.wait_for(timeout=60_000)
        self._save("single_detector_missing", 500)
        self.page.locator('[data-testid="stSelectbox"]').filter(has_text="Detector").first.click()
        self.page.get_by_role("option", name="TEST_A").click()
        self.page.get_by_role("button", name="Run TEST_A:original").click()
        self.page.get_by_text("Logit (positive = fake)").wait_for(timeout=120_000)
        self.page.get_by_text("Show Grad-CAM").click()
        self.page.get_by_text("Grad-CAM at").wait_for(timeout=120_000)
        self._save("single_detector")

    def face(self) -> None:
        self._go("Face GradCAM", "Upload an image")
        self._example("Astronaut (camera photo, one face)")
        self.page.get_by_text("Face #0 P(fake)").wait_for(timeout=120_000)
        self._save("face_gradcam")

    def forensics(self) -> None:
        self._go("Forensics", "Frequency")
        self._example("Nearest-neighbour upsampled texture (rendered by this project; shows up-sampling traces)")
        self._save("forensics", 6000)
        # a pixel map with its colour bar: error levels of a camera photo
        self._example("Coffee (camera photo)")
        self.page.get_by_role("tab", name="Error levels (ELA)").click()
        self.page.locator("p:visible").filter(has_text="Whole image (").first.wait_for(timeout=60_000)
        self.page.get_by_text("Re-save quality").first.scroll_into_view_if_needed()
        self._save("forensics_maps", 3000)

    def evaluation(self) -> None:
        """Two tools' predictions CSV, then their calibration profile: calibrated and stacked rows appear."""
        from playwright.sync_api import Error as PlaywrightError
        self._go("Evaluation", "Run the demo evaluation")
        self.page.get_by_text("Predictions CSV only").click()
        label = "Predictions CSV (path or id"            # not the other page's "compare with a predictions CSV"
        self.page.get_by_text(label).wait_for(timeout=60_000)
        uploader = self.page.locator('[data-testid="stFileUploader"]').filter(has_text=label)
        uploader.locator("input[type=file]").set_input_files(str(self.csv))
        self.page.get_by_text("400 file(s) in").wait_for(timeout=60_000)
        self.page.get_by_role("button", name="Run evaluation").click()
        self.page.get_by_text("Confusion matrices").wait_for(timeout=120_000)
        sidebar = self.page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Calibration profile").click()
        sidebar.locator("input[type=file]").set_input_files(str(self.profile))
        self.page.get_by_text("Learned fusion (stacked, calibrated) (AUC").first.wait_for(timeout=60_000)
        for attempt in range(5):          # the page reruns once more after the profile: retry a detached heading
            self.page.wait_for_timeout(1500)
            try:
                self.page.get_by_role("heading", name="Comparison").first.scroll_into_view_if_needed(timeout=5000)
                break
            except PlaywrightError:         # the element was replaced by the rerun
                if attempt == 4:
                    raise
        self._save("evaluation", 1000)

    def video(self) -> None:
        """A generated clip (two faces panned across the frame) analysed at 2 frames/s."""
        from tests.unit.videogen import panned, write_video
        clip = write_video(self.csv.parent / "two_faces.mp4", panned([1, 2], side=100), n=60)
        self._go("Video", "Upload a video")
        uploader = self.page.locator('[data-testid="stFileUploader"]').filter(has_text="Upload a video")
        uploader.locator("input[type=file]").set_input_files(str(clip))
        self.page.get_by_label("Frames per second", exact=True).fill("2")
        self.page.get_by_label("Frames per second", exact=True).press("Enter")
        self.page.get_by_role("button", name="Analyse").click()
        self.page.get_by_role("heading", name="Timeline").wait_for(timeout=300_000)
        self.page.get_by_text("Track 1 ·").first.wait_for(timeout=60_000)
        self._save("video", 3000)

    def models(self) -> None:
        self._go("Models", "Import")
        self._save("models", 1000)


# the Evaluation step loads a calibration profile into the sidebar, which later pages would then mention: it runs
# after the image and video pages
ORDER = ("home", "ensemble", "single_detector", "face", "forensics", "video", "evaluation", "models")


def main(names: list[str]) -> int:
    """Take the named screenshots (default: all) in one app session; returns the number that failed."""
    from tests.helpers.browser import browser_page, streamlit_app
    wanted = [n for n in ORDER if not names or n in names]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        env = _install(Path(tmp))
        csv, profile = _two_tools(Path(tmp), env)
        with streamlit_app(env) as url, browser_page(1400, 1900) as page:
            page.goto(url, wait_until="networkidle")
            page.get_by_text("Analyse an image").wait_for(timeout=60_000)
            shots = Shots(page, csv, profile)
            for name in wanted:
                step: Callable[[], None] = getattr(shots, name)
                try:
                    step()
                except Exception as exc:  # noqa: BLE001 - report every failed shot, keep taking the others
                    failed += 1
                    where = Path(tmp).parent / f"failed_{name}.png"
                    page.screenshot(path=str(where), full_page=False)      # what the page showed instead
                    print(f"FAILED {name}: {type(exc).__name__}: {str(exc).splitlines()[0]} (page: {where})",
                          file=sys.stderr)
    return failed


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
    n_failed = main(sys.argv[1:])
    shrink()
    sys.exit(1 if n_failed else 0)
