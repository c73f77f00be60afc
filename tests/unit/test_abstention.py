"""Reasons to doubt: pure functions over results, input facts and a robustness probe."""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image

from core.results import DetectionResult
from core.verdict.abstention import (
    ForensicFacts,
    ensemble_reasons,
    facts_from_bytes,
    input_reasons,
    result_reasons,
)
from core.verdict.ensemble import EnsembleConfig, ensemble
from core.verdict.robustness import run_probe


def res(det: str = "NPR", p: float = 0.95, *, image=(512, 512), inp=None, crop=None, resized=False,
        label: str | None = None, threshold: float = 0.5) -> DetectionResult:
    lab = label or ("fake" if p > threshold else "real")
    logit = math.log(p / (1 - p)) if 0 < p < 1 else float("nan")
    return DetectionResult(det, "original", logit, p, lab, threshold, 0.1, image, inp or image, crop, resized, "t")


CLEAN = ForensicFacts((512, 512), False, None, None)


def codes(reasons) -> list[str]:
    return [r.code for r in reasons]


def test_a_clean_result_has_no_reason_to_doubt():
    assert result_reasons(res(), CLEAN) == ()
    assert result_reasons(res(), None) == ()


def test_no_face_for_the_face_model():
    (r,) = result_reasons(res("FACE", float("nan"), label="no_face"))
    assert r.code == "no_face" and r.severity == "strong" and r.detector == "FACE"
    assert r.text == "FACE found no face, so it says nothing about this image"


def test_image_smaller_than_the_detector_input_was_enlarged():
    (r,) = result_reasons(res("CLIP-D", image=(150, 200), inp=(224, 224), crop=(0, 13, 150, 163), resized=True))
    assert r.code == "upsampled_input" and "(150×200) is smaller than CLIP-D's 224×224 input" in r.text


def test_enlargement_is_found_from_the_spec_even_when_the_crop_is_smaller_than_the_image():
    from core.models.specs import PreprocessCfg
    spec = type("Spec", (), {"preprocess": PreprocessCfg(mode="resize_crop", resize=256, crop=224)})()
    r = res("P2G", image=(240, 240), inp=(224, 224), crop=(9, 9, 231, 231), resized=True)
    assert result_reasons(r) == ()                                     # 240 > 224: invisible without the spec
    (reason,) = result_reasons(r, spec=spec)
    assert reason.text.startswith("the image (240×240) is smaller than the 256 px P2G resizes it to")
    assert codes(ensemble_reasons(None, [r], specs={"P2G:original": spec})) == ["upsampled_input"]


def test_tiny_image_on_a_full_resolution_detector():
    assert codes(result_reasons(res(image=(100, 90)))) == ["small_image"]


def test_centre_crop_on_a_full_resolution_detector():
    r = res("R50_TF", image=(2000, 1500), inp=(1024, 1024), crop=(488, 238, 1512, 1262))
    (reason,) = result_reasons(r)
    assert reason.code == "centre_crop"
    assert reason.text == ("R50_TF analysed only the central 1024×1024 pixels (35% of the image); anything outside "
                           "was not looked at")
    # dropping one odd row (NPR's even crop) is not worth a warning
    assert result_reasons(res(image=(513, 512), crop=(0, 0, 512, 512))) == ()


def test_resize_and_crop_of_a_panorama_sees_only_part_of_it():
    r = res("CLIP-D", image=(1500, 300), inp=(224, 224), crop=(600, 0, 900, 300), resized=True)
    assert codes(result_reasons(r)) == ["partial_view"]
    square = res("CLIP-D", image=(600, 500), inp=(224, 224), crop=(50, 0, 550, 500), resized=True)
    assert result_reasons(square) == ()


def test_recompressed_input():
    low = ForensicFacts((512, 512), True, 55, False)
    (r,) = result_reasons(res(), low)
    assert r.code == "recompressed" and r.severity == "strong"
    assert r.text == ("the file is a JPEG of estimated quality 55 (below 80): compression removes the fine traces "
                      "NPR relies on")
    assert codes(result_reasons(res(), ForensicFacts((512, 512), True, 95, True))) == ["double_jpeg"]
    assert result_reasons(res(), ForensicFacts((512, 512), True, 95, False)) == ()
    assert codes(result_reasons(res(), ForensicFacts((512, 512), True, 85, None), quality_threshold=90)) == \
        ["recompressed"]
    assert input_reasons(low)[0].text.endswith("traces detectors rely on")


def test_facts_from_bytes():
    arr = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=60)
    f = facts_from_bytes(buf.getvalue())
    assert f.is_jpeg and f.jpeg_quality == 60 and f.image_size == (80, 64)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    assert facts_from_bytes(buf.getvalue()) == ForensicFacts((80, 64))
    assert facts_from_bytes(b"garbage") == ForensicFacts()


def test_near_threshold_and_fragile_verdicts():
    assert codes(result_reasons(res(p=0.55))) == ["near_threshold"]

    class Flipper:
        detector_id = "NPR"

        def predict(self, image):
            # fake on the original only: every degradation changes the pixels and flips the verdict
            return res("NPR", 0.9 if image.size == (64, 64) and image.getpixel((0, 0)) == (1, 2, 3) else 0.2,
                       image=image.size)
    probe = run_probe(Image.new("RGB", (64, 64), (1, 2, 3)), [Flipper()], conditions=["resize0.5"])
    (r,) = result_reasons(res(), CLEAN, probe)
    assert r.code == "fragile" and r.text == "NPR's verdict flips under resize 0.5× (robustness probe)"


def test_ensemble_reasons_include_its_own_and_list_the_input_once():
    results = [res("CLIP-D", 0.97), res("NPR", 0.04), res("R50_TF", 0.9, image=(2000, 1500), inp=(1024, 1024),
                                                          crop=(488, 238, 1512, 1262))]
    ens = ensemble(results, EnsembleConfig(weights={"CLIP-D": .3, "NPR": .1, "R50_TF": .25}))
    facts = ForensicFacts((2000, 1500), True, 60, True)
    reasons = ensemble_reasons(ens, results, facts)
    texts = [r.text for r in reasons]
    assert [r for r in reasons if r.code == "ensemble"][0].text in ens.reasons
    assert sum("disagree strongly" in t for t in texts) == 1                  # not repeated
    assert codes(reasons).count("recompressed") == 1 and codes(reasons).count("double_jpeg") == 1
    assert all(r.detector is None for r in reasons if r.code in ("recompressed", "double_jpeg"))
    assert "centre_crop" in codes(reasons)
    assert len(texts) == len(set(texts))


def test_ensemble_split_verdicts_and_disagreement_without_an_ensemble_result():
    split = ensemble_reasons(None, [res("A", 0.75), res("B", 0.3)])
    assert codes(split) == ["split"] and split[0].text == "the detectors' verdicts are split (1 fake, 1 real)"
    strong = ensemble_reasons(None, [res("A", 0.95), res("B", 0.1)])
    assert codes(strong) == ["disagreement"] and "A p_fake 0.95 vs B 0.10" in strong[0].text
    assert ensemble_reasons(None, [res("A", 0.95), res("B", 0.9)], CLEAN) == ()


def _face_result(p: float = 0.9) -> DetectionResult:
    from core.results import FaceResult
    f = FaceResult(0, (100, 100, 180, 190), 0.99, (), math.log(p / (1 - p)), p, "fake", (100, 100, 180, 190))
    return DetectionResult("FACE", "original", f.logit, p, "fake", 0.5, 0.1, (512, 512), (256, 256),
                           (100, 100, 180, 190), True, "face", faces=(f,), details={"n_faces": 1})


def test_a_face_crop_is_not_reported_as_a_partial_or_enlarged_view():
    # the face model analysed an 80×90 face crop resized to 256: that is its job, not "only the centre (3 %)"
    assert codes(result_reasons(_face_result(), CLEAN)) == []


def test_the_split_counts_only_detectors_with_a_vote():
    results = [res("CLIP-D", 0.8), res("NPR", 0.75), _face_result(0.3)]
    e = ensemble(results, EnsembleConfig(weights={"CLIP-D": .3, "NPR": .1}))
    text = " ".join(r.text for r in ensemble_reasons(e, results, CLEAN))
    assert "split" not in text and "FACE" not in text


def test_exif_dimensions_tell_a_resized_file():
    im = Image.fromarray(np.zeros((60, 80, 3), np.uint8))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA002], exif.get_ifd(0x8769)[0xA003] = 4000, 3000
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95, exif=exif)
    f = facts_from_bytes(buf.getvalue())
    assert f.exif_size == (4000, 3000) and f.resized is True and not f.recompressed
    assert ForensicFacts((80, 60), exif_size=(60, 80)).resized is False        # rotated, not resized
    assert ForensicFacts((80, 60)).resized is None
