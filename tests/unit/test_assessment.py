"""The graded assessment: one test per rule of configs/ensemble.yaml's ``assessment`` section."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from PIL import Image

from core.errors import ConfigError
from core.models.specs import Coverage, DetectorSpec, PreprocessCfg
from core.results import DetectionResult, FaceResult
from core.verdict.abstention import ForensicFacts
from core.verdict.assessment import assess, headline
from core.verdict.fitting import ScoreColumn, fit_profile
from core.verdict.robustness import run_probe
from core.verdict.rules import Rules, load_rules

W = {"A": 0.3, "B": 0.25, "C": 0.2, "D": 0.15, "E": 0.1}
RULES = Rules(weights=W)
BIG = ForensicFacts((512, 512))


def res(det: str, p: float, *, image=(512, 512), inp=None, resized=False, sha: str | None = None,
        threshold: float = 0.5, crop=None) -> DetectionResult:
    logit = math.log(p / (1 - p)) if 0 < p < 1 else float("nan")
    return DetectionResult(det, "original", logit, p, "fake" if p > threshold else "real", threshold, 0.1, image,
                           inp or image, crop, resized, "t", weights_sha256=sha)


def spec(det: str, *, resize=None, coverage: Coverage = Coverage(), weight: float = 0.2) -> DetectorSpec:
    pre = PreprocessCfg(mode="resize_crop", resize=resize, crop=resize) if resize else PreprocessCfg()
    return DetectorSpec(det, "original", "tiny_cnn", None, pre, ensemble_weight=weight, coverage=coverage)


def face(p: float) -> DetectionResult:
    f = FaceResult(0, (10, 10, 60, 60), 0.99, (), math.log(p / (1 - p)), p, "fake" if p > 0.5 else "real",
                   (10, 10, 60, 60))
    return DetectionResult("FACE", "original", f.logit, p, f.label, 0.5, 0.1, (512, 512), (256, 256),
                           (10, 10, 60, 60), True, "face", faces=(f,), details={"n_faces": 1})


def test_unanimous_confident_detectors_give_strong_evidence():
    a = assess([res("A", 0.97), res("B", 0.9), res("C", 0.85)], rules=RULES, facts=BIG, specs={})
    assert (a.level, a.direction, a.p_fake) == ("strong", "fake", None)
    assert a.headline == "Strong evidence of AI generation"
    assert a.reasons[0] == "3 of 3 voting detectors say AI-generated (A, B, C)"
    real = assess([res("A", 0.03), res("B", 0.1)], rules=RULES, facts=BIG, specs={})
    assert (real.level, real.direction) == ("moderate", "real")        # two voters: moderate at most
    assert real.headline == "Moderate evidence that the image is camera-made"


def test_a_single_voter_is_inconclusive():
    a = assess([res("A", 0.99), res("B", 0.55), res("C", 0.45), res("D", 0.5), res("E", 0.52)], rules=RULES,
               facts=BIG, specs={})
    assert (a.level, a.direction) == ("inconclusive", None)
    assert a.headline == "Inconclusive: only 1 of 5 detectors was confident enough to vote (2 needed)"


def test_fewer_than_two_scored_detectors_is_inconclusive():
    a = assess([res("A", 0.99)], rules=RULES, facts=BIG, specs={})
    assert a.level == "inconclusive" and "only 1 detector with a vote scored this image (2 needed)" in a.reasons
    assert assess([], rules=RULES).headline == "Inconclusive: no detector with a vote scored this image"


def test_a_three_two_split_is_inconclusive_and_two_one_is_weak():
    split = [res("A", 0.95), res("B", 0.9), res("C", 0.92), res("D", 0.1), res("E", 0.05)]
    a = assess(split, rules=RULES, facts=BIG, specs={})
    assert a.level == "inconclusive"
    assert "the voting detectors are split (3 fake, 2 real): 60% of the votes agree, 65% needed" in a.reasons
    b = assess(split[:2] + split[3:4], rules=RULES, facts=BIG, specs={})
    assert (b.level, b.direction) == ("weak", "fake")
    assert any(r.startswith("detectors disagree strongly") for r in b.reasons)


def test_an_even_split_is_inconclusive():
    a = assess([res("A", 0.95), res("B", 0.05)], rules=RULES, facts=BIG, specs={})
    assert a.headline == "Inconclusive: the voting detectors are split evenly (1 fake, 1 real)"


def test_a_tiny_image_is_inconclusive_and_a_small_one_capped():
    small = ForensicFacts((16, 16))
    a = assess([res("A", 0.99, image=(16, 16)), res("B", 0.99, image=(16, 16)), res("C", 0.99, image=(16, 16))],
               rules=RULES, facts=small, specs={})
    assert a.level == "inconclusive" and "16×16 pixels" in a.headline
    b = assess([res(d, 0.99, image=(100, 100)) for d in "ABC"], rules=RULES, facts=ForensicFacts((100, 100)),
               specs={})
    assert b.level == "moderate" and any("the image is small (100×100)" in r for r in b.reasons)


def test_an_enlarged_input_or_one_below_min_side_does_not_vote():
    specs = {"A:original": spec("A", resize=224), "B:original": spec("B", coverage=Coverage(min_side=256))}
    results = [res("A", 0.99, image=(200, 150), inp=(224, 224), resized=True), res("B", 0.99, image=(200, 150)),
               res("C", 0.99, image=(200, 150)), res("D", 0.98, image=(200, 150))]
    a = assess(results, rules=RULES, facts=ForensicFacts((200, 150)), specs=specs)
    assert a.voters == ("C", "D") and a.level == "moderate"
    assert any(e.startswith("A does not vote: the image (200×150) is smaller than its 224×224 input")
               for e in a.excluded)
    assert "B does not vote: the image (200×150) is below the 256 px its model card says it needs" in a.excluded


def test_a_weakness_on_the_model_card_down_weights_or_drops_the_detector():
    jpeg = ForensicFacts((512, 512), True, 95, True)            # double-compressed JPEG
    specs = {"E:original": spec("E", coverage=Coverage(weaknesses=("jpeg",)))}
    results = [res("A", 0.95), res("B", 0.9), res("E", 0.05)]
    a = assess(results, rules=RULES, facts=jpeg, specs=specs)
    assert any(r.startswith("E counts 0.5 of a vote: the file is a JPEG compressed at least twice") for r in a.reasons)
    assert next(v for v in a.voices if v.detector_id == "E").weight == 0.5
    dropped = assess(results, rules=dataclasses.replace(RULES, weakness_factor=0.0), facts=jpeg, specs=specs)
    assert dropped.voters == ("A", "B") and any(e.startswith("E does not vote") for e in dropped.excluded)
    resized = ForensicFacts((400, 300), exif_size=(4000, 3000))
    assert resized.resized
    specs = {"A:original": spec("A", coverage=Coverage(weaknesses=("resize",)))}
    b = assess([res("A", 0.9, image=(400, 300)), res("B", 0.9, image=(400, 300))], rules=RULES, facts=resized,
               specs=specs)
    assert any("EXIF says the camera wrote 4000×3000" in r for r in b.reasons)
    crop = {"A:original": spec("A", coverage=Coverage(weaknesses=("crop",)))}
    big = [res("A", 0.9, image=(3000, 2000), crop=(988, 488, 2012, 1512)), res("B", 0.9, image=(3000, 2000))]
    c = assess(big, rules=RULES, facts=ForensicFacts((3000, 2000)), specs=crop)
    assert any(r.startswith("A counts 0.5 of a vote: it analysed only a 1024×1024 crop (17% of the image)")
               for r in c.reasons)
    square = [res("A", 0.9, image=(400, 300), crop=(50, 0, 350, 300)), res("B", 0.9, image=(400, 300))]
    seen75 = assess(square, rules=RULES, facts=ForensicFacts((400, 300)), specs=crop)       # 75 % seen: full vote
    assert not any("counts" in r for r in seen75.reasons) and seen75.level == "moderate"


def test_recompression_caps_the_level():
    q60 = ForensicFacts((512, 512), True, 60, False)
    a = assess([res(d, 0.97) for d in "ABC"], rules=RULES, facts=q60, specs={})
    assert a.level == "moderate"
    assert "the file is a JPEG of estimated quality 60 (below 80): compression removes fine traces" in a.reasons


def test_a_flip_in_the_robustness_probe_caps_the_level():
    class Flipper:
        detector_id = "A"

        def predict(self, image):
            return res("A", 0.9 if image.size == (64, 64) else 0.2, image=image.size)
    probe = run_probe(Image.new("RGB", (64, 64), (1, 2, 3)), [Flipper()], conditions=["resize0.5"])
    a = assess([res(d, 0.97) for d in "ABC"], rules=RULES, facts=BIG, probe=probe, specs={})
    assert a.level == "weak" and "A's verdict flips under resize 0.5× (robustness probe)" in a.reasons


def test_face_has_no_vote_and_its_doubts_do_not_count():
    no_face = DetectionResult("FACE", "original", float("nan"), float("nan"), "no_face", 0.5, 0.1, (512, 512),
                              (0, 0), None, False, "faces", details={"message": "no face"})
    for f in (no_face, face(0.02)):
        a = assess([res("A", 0.97), res("B", 0.96), res("C", 0.9), f], rules=RULES, facts=BIG, specs={})
        assert a.level == "strong" and "FACE" not in " ".join(a.reasons + a.excluded)
        assert [v.detector_id for v in a.voices] == ["A", "B", "C"]


def test_rule_vote_uses_the_original_weights():
    results = [res("A", 0.95), res("E", 0.05), res("D", 0.1)]          # count: 2 real vs 1 fake
    graded = assess(results, rules=RULES, facts=BIG, specs={})
    vote = assess(results, rules=RULES, facts=BIG, specs={}, rule="vote")
    assert graded.direction == "real" and graded.level == "weak"
    # weights: A 0.3·0.95 = 0.285 fake vs 0.1·0.95 + 0.15·0.9 = 0.23 real → fake side, 55% agreement: inconclusive
    assert vote.rule == "vote" and vote.level == "inconclusive" and "55% of the votes agree" in " ".join(vote.reasons)


def _profile(shas: dict[str, str]):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    cols = [ScoreColumn(f"{d}:original", 4.0 * (2 * y - 1) + rng.normal(0, 2.0, 300), weights_sha256=shas[d],
                        detector_id=d, variant="original") for d in shas]
    return fit_profile(y, cols, dataset={"name": "synthetic"}, method="platt")


def test_a_profile_gives_a_calibrated_p_fake_only_for_the_weights_it_was_fitted_on():
    shas = {"A": "a" * 64, "B": "b" * 64}
    prof = _profile(shas)
    results = [res("A", 0.999, sha="a" * 64), res("B", 0.998, sha="b" * 64)]
    a = assess(results, rules=RULES, facts=BIG, specs={}, profile=prof)
    assert a.p_fake is not None and a.p_fake > 0.9 and a.direction == "fake"
    assert a.fused_by.startswith("learned fusion of 2 calibrated")
    assert all(v.calibrated for v in a.voices)
    other = assess([res("A", 0.999, sha="c" * 64), res("B", 0.998, sha="b" * 64)], rules=RULES, facts=BIG,
                   specs={}, profile=prof)
    assert any(n.startswith("A:original: calibration not applied: fitted on weights aaaaaaaaaaaa…") for n in
               other.calibration)
    assert not assess(results, rules=RULES, facts=BIG, specs={}).p_fake         # no profile: no probability


def test_a_calibrated_p_fake_in_the_uncertain_band_abstains():
    prof = _profile({"A": "a" * 64})                       # one detector: no learned fusion
    cal = prof.detectors["A:original"].calibrator
    z0 = -cal.b / cal.a                                     # the raw logit the calibrator maps to exactly 0.5
    results = [res("A", 1 / (1 + math.exp(-z0)), sha="a" * 64), res("B", 0.95), res("C", 0.9)]
    a = assess(results, rules=RULES, facts=BIG, specs={}, profile=prof)
    assert a.level == "inconclusive" and a.p_fake == pytest.approx(0.5, abs=1e-6)
    assert a.fused_by == "mean of 1 calibrated logit(s)"
    assert any("inside the uncertain band [0.40, 0.60]" in r for r in a.reasons)


def test_stacked_rule_without_a_fusion_falls_back_and_says_so():
    a = assess([res(d, 0.97) for d in "ABC"], rules=RULES, facts=BIG, specs={}, rule="stacked")
    assert a.rule == "graded" and any("learned fusion was asked for" in n for n in a.calibration)


def test_to_dict_is_the_contract():
    d = assess([res(d, 0.97) for d in "ABC"], rules=RULES, facts=BIG, specs={}).to_dict()
    assert list(d)[:4] == ["level", "direction", "p_fake", "reasons"]
    assert d["level"] == "strong" and d["direction"] == "fake" and d["p_fake"] is None
    json.dumps(d, allow_nan=False)


def test_headline_wording():
    assert headline("weak", "fake") == "Weak evidence of AI generation"
    assert headline("inconclusive", None, "why") == "Inconclusive: why"


def test_shipped_rules_load_and_bad_rules_fail_with_one_sentence(tmp_path):
    r = load_rules()
    assert r.rule == "graded" and r.min_voters == 2 and r.levels["weak"].min_agreement == 0.65
    assert r.weights["CLIP-D"] == 0.30 and "FACE" not in r.weights
    bad = tmp_path / "e.yaml"
    bad.write_text("vote_threshold: 0.6\nassessment: {rule: majority}\n")
    with pytest.raises(ConfigError, match="assessment.rule must be one of"):
        load_rules(bad)
    bad.write_text("assessment: {caps: {disagreement: maybe}}\n")
    with pytest.raises(ConfigError, match="assessment.caps.disagreement"):
        load_rules(bad)
    bad.write_text("assessment: {min_voters: 0}\n")
    with pytest.raises(ConfigError, match="min_voters: must be between"):
        load_rules(bad)


def test_double_jpeg_caps_the_level():
    twice = ForensicFacts((512, 512), True, 92, True)
    a = assess([res(d, 0.97) for d in "ABC"], rules=RULES, facts=twice, specs={})
    assert a.level == "moderate" and a.direction == "fake"
    assert "the JPEG looks compressed at least twice (re-saved or shared)" in a.reasons


def test_a_faces_only_model_card_has_no_vote():
    specs = {"C:original": spec("C", coverage=Coverage(content="faces"))}
    a = assess([res("A", 0.97), res("B", 0.96), res("C", 0.02)], rules=RULES, facts=BIG, specs=specs)
    assert [v.detector_id for v in a.voices] == ["A", "B"] and a.level == "moderate"
    assert not any("disagree" in r for r in a.reasons)


def test_detectors_that_did_not_run_do_not_count_against_the_others():
    # three of five detectors without weights: the two that ran decide on their own, nothing is said of the rest
    a = assess([res("A", 0.97), res("B", 0.93)], rules=RULES, facts=BIG, specs={})
    assert (a.level, a.direction) == ("moderate", "fake") and a.excluded == ()
    assert not any("weights" in r for r in a.reasons)


def test_an_abstention_leads_with_why_and_says_it_once():
    a = assess([res("A", 0.99), res("B", 0.55), res("C", 0.45)], rules=RULES, facts=BIG, specs={})
    assert a.reasons[0] == "only 1 of 3 detectors was confident enough to vote (2 needed)"
    assert a.reasons[-1] == "the votes lean: 1 of 1 voting detector says AI-generated (A)"
    assert not any(r.startswith("only 1 detector voted") for r in a.reasons)
    tiny = assess([res(d, 0.99, image=(16, 16)) for d in "AB"], rules=RULES, facts=ForensicFacts((16, 16)), specs={})
    assert tiny.headline.startswith("Inconclusive: the image is only 16×16 pixels")


def test_the_rules_are_read_from_the_yaml(tmp_path):
    doc = tmp_path / "ensemble.yaml"
    doc.write_text("vote_threshold: 0.6\nuncertain_band: [0.3, 0.7]\nassessment:\n  rule: vote\n  min_voters: 1\n"
                   "  tiny_side: 8\n  levels:\n    strong: {min_voters: 4, min_agreement: 1.0, min_p: 0.99}\n"
                   "    moderate: {min_voters: 2, min_agreement: 0.9, min_p: 0.9}\n"
                   "    weak: {min_voters: 1, min_agreement: 0.5, min_p: 0.6}\n  caps: {recompressed: weak}\n")
    r = dataclasses.replace(load_rules(doc), weights=W)
    assert (r.rule, r.min_voters, r.tiny_side, r.uncertain_band, r.caps["recompressed"]) == \
        ("vote", 1, 8, (0.3, 0.7), "weak")
    one = assess([res("A", 0.99), res("B", 0.55)], rules=r, facts=ForensicFacts((32, 32)), specs={})
    assert (one.rule, one.level, one.direction) == ("vote", "weak", "fake")     # one voter is enough here
    q60 = assess([res(d, 0.97) for d in "ABCD"], rules=r, facts=ForensicFacts((512, 512), True, 60, False), specs={})
    assert q60.level == "weak"
