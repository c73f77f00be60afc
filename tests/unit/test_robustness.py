"""Robustness probe: deterministic degradations, per-detector stability sentences, real (tiny) detectors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from tests.helpers import install_tiny_detectors
from PIL import Image

from core.errors import BadImage
from core.results import DetectionResult
from core.verdict.robustness import CONDITIONS, condition, perturb, run_probe


def noise_image(w: int = 96, h: int = 64, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def result(det: str, p: float, size: tuple[int, int] = (64, 64), threshold: float = 0.5) -> DetectionResult:
    return DetectionResult(det, "original", math.log(p / (1 - p)), p, "fake" if p > threshold else "real", threshold,
                           0.0, size, size, None, False, "test")


class Sharpness:
    """Says 'fake' when the image has strong pixel-to-pixel variation: blur and JPEG make it flip."""

    detector_id = "SHARP"

    def predict(self, image: Image.Image) -> DetectionResult:
        a = np.asarray(image.convert("L"), dtype=float)
        hf = float(np.abs(np.diff(a, axis=1)).mean())
        return result("SHARP", 0.95 if hf > 40 else 0.1, image.size)


class Constant:
    detector_id = "CONST"

    def predict(self, image: Image.Image) -> DetectionResult:
        return result("CONST", 0.8, image.size)


class NeedsBigImages:
    detector_id = "BIG"

    def predict(self, image: Image.Image) -> DetectionResult:
        if min(image.size) < 60:
            raise BadImage("<image>", "too small for BIG")
        return result("BIG", 0.3, image.size)


def test_conditions_are_the_issue_list_in_order():
    assert [c.key for c in CONDITIONS] == ["original", "jpeg95", "jpeg75", "jpeg50", "resize0.5", "blur1", "social"]
    assert [c.label for c in CONDITIONS][1:4] == ["JPEG 95", "JPEG 75", "JPEG 50"]
    with pytest.raises(KeyError, match="known"):
        condition("sepia")


def test_perturbations_are_deterministic_and_do_what_they_say():
    img = noise_image()
    for c in CONDITIONS:
        a, b = perturb(img, c.key), perturb(img, c.key)
        assert a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b)), c.key
    assert perturb(img, "original") is not None and np.array_equal(np.asarray(perturb(img, "original")),
                                                                     np.asarray(img))
    assert perturb(img, "resize0.5").size == (48, 32)
    blurred = np.asarray(perturb(img, "blur1"), dtype=float)
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.5 * np.abs(np.diff(np.asarray(img, float), axis=1)).mean()
    q95 = np.abs(np.asarray(perturb(img, "jpeg95"), float) - np.asarray(img, float)).mean()
    q50 = np.abs(np.asarray(perturb(img, "jpeg50"), float) - np.asarray(img, float)).mean()
    assert 0 < q95 < q50
    assert perturb(Image.new("RGB", (2000, 1000)), "social").size == (1080, 540)
    assert perturb(img, "social").size == img.size                     # small images are not enlarged


def test_probe_says_which_detector_flips_and_which_is_stable():
    probe = run_probe(noise_image(), [Sharpness(), Constant()])
    assert probe.detectors == ("SHARP", "CONST")
    assert len(probe.rows) == 2 * len(CONDITIONS)
    sharp, const = probe.stability
    assert sharp.flips and "blur1" in sharp.flips and sharp.baseline_label == "fake"
    assert sharp.sentence.startswith("SHARP flips under ") and "blur σ=1" in sharp.sentence
    assert const.stable and const.sentence.startswith("CONST is stable: fake under all 6 degradations")
    assert probe.summary[0].startswith("SHARP flips")                   # flips are listed first
    assert probe.p_fake("CONST", "jpeg50") == pytest.approx(0.8)
    assert math.isnan(probe.p_fake("CONST", "nope"))
    d = probe.to_dict()
    assert d["conditions"][0]["key"] == "original" and len(d["rows"]) == 14


def test_probe_survives_a_detector_that_fails_on_some_versions_and_reports_progress():
    calls = []
    probe = run_probe(noise_image(120, 100), [NeedsBigImages()], conditions=["resize0.5", "jpeg75"],
                      progress=lambda d, t, m: calls.append((d, t)))
    assert [c.key for c in probe.conditions] == ["original", "resize0.5", "jpeg75"]   # original always first
    row = next(r for r in probe.rows if r.condition == "resize0.5")
    assert row.label == "error" and "too small for BIG" in row.error and math.isnan(row.p_fake)
    assert "No score under resize 0.5×" in probe.stability[0].sentence
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)


def test_probe_with_installed_tiny_detectors(tiny_config, weights_home):
    from core.models.factory import create_detector
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    dets = [create_detector("TA"), create_detector("TB")]
    probe = run_probe(noise_image(80, 70), dets)
    assert probe.detectors == ("TA", "TB")
    assert all(r.p_fake == pytest.approx(1 / (1 + math.exp(-3))) for r in probe.rows if r.detector == "TA")
    assert all(s.stable for s in probe.stability)
    assert probe.summary == ("TA is stable: fake under all 6 degradations (largest p_fake change 0.00, under "
                             "JPEG 95).", "TB is stable: real under all 6 degradations (largest p_fake change "
                             "0.00, under JPEG 95).")


def test_same_id_twice_gets_distinct_names():
    probe = run_probe(noise_image(), [Constant(), Constant()], conditions=["jpeg95"])
    assert probe.detectors == ("CONST", "CONST #2")
