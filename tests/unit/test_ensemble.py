"""The seed's weighted vote, checked against numbers worked out by hand, plus fusions and reasons."""
from __future__ import annotations

import math

import pytest

from core.results import DetectionResult
from core.verdict.ensemble import EnsembleConfig, ensemble, load_config


def r(det: str, p: float, thr: float = 0.5, label: str | None = None) -> DetectionResult:
    logit = math.log(p / (1 - p)) if 0 < p < 1 else float("nan")
    return DetectionResult(det, "original", logit, p, label or ("fake" if p > thr else "real"), thr, 0.1,
                           (8, 8), (8, 8), None, False, "test")


SEED = EnsembleConfig(vote_threshold=0.6, weights={"CLIP-D": .30, "R50_TF": .25, "R50_nodown": .20, "P2G": .15,
                                                   "NPR": .10})


def test_default_config_is_the_seed_rule():
    cfg = load_config()
    assert cfg.vote_threshold == 0.6
    assert {k: cfg.weights[k] for k in SEED.weights} == SEED.weights


def test_worked_example():
    # CLIP-D says fake with 0.9 → votes 0.3*0.9 = 0.27 fake; R50_TF says real with 1-0.2 = 0.8 → 0.25*0.8 = 0.20
    # real; NPR says fake with 0.55 → below 0.6, does not vote.
    e = ensemble([r("CLIP-D", 0.9), r("R50_TF", 0.2), r("NPR", 0.55)], SEED)
    assert e.verdict == "FAKE"
    assert e.votes_fake == pytest.approx(0.27) and e.votes_real == pytest.approx(0.20)
    assert e.voted_weight == pytest.approx(0.55)
    assert e.confidence == pytest.approx(0.47 / 0.55)
    assert [v.voted for v in e.votes] == [True, True, False]
    assert sum(v.effective_weight for v in e.votes) == pytest.approx(1.0)
    assert e.votes[0].effective_weight == pytest.approx(0.30 / 0.65)


def test_changing_a_weight_flips_the_verdict():
    res = [r("CLIP-D", 0.9), r("R50_TF", 0.2)]
    cfg = EnsembleConfig(vote_threshold=0.6, weights={"CLIP-D": 0.1, "R50_TF": 0.25})
    e = ensemble(res, cfg)
    assert e.verdict == "REAL" and e.votes_fake == pytest.approx(0.09) and e.votes_real == pytest.approx(0.2)


@pytest.mark.parametrize("results, weights, verdict", [
    ([r("A", 0.8), r("B", 0.2)], {"A": .5, "B": .5}, "UNCERTAIN"),      # exact tie
    ([r("A", 0.55), r("B", 0.45)], {"A": .5, "B": .5}, "UNCERTAIN"),    # nobody confident enough to vote
    ([], {"A": 1.0}, "UNCERTAIN"),                                      # nothing ran
    ([r("A", 0.61)], {"A": 1.0}, "FAKE"),                               # 0.61 > 0.6 votes
    ([r("A", 0.6)], {"A": 1.0}, "UNCERTAIN"),                           # exactly 0.6 does not vote
    ([r("A", 0.01)], {"A": 1.0}, "REAL"),
])
def test_table(results, weights, verdict):
    e = ensemble(results, EnsembleConfig(vote_threshold=0.6, weights=weights))
    assert e.verdict == verdict
    if verdict == "UNCERTAIN":
        assert e.reasons


def test_detector_threshold_defines_its_verdict():
    # a detector with threshold 0.7 calls p=0.65 real, so its score is 0.35 and it does not vote
    e = ensemble([r("A", 0.65, thr=0.7)], EnsembleConfig(weights={"A": 1.0}))
    assert e.votes[0].label == "real" and e.votes[0].score == pytest.approx(0.35) and not e.votes[0].voted


def test_fusions_and_reasons():
    e = ensemble([r("A", 0.99), r("B", 0.05)], EnsembleConfig(weights={"A": 0.5, "B": 0.5}))
    mean_logit = 0.5 * math.log(0.99 / 0.01) + 0.5 * math.log(0.05 / 0.95)
    assert e.p_mean_logit == pytest.approx(1 / (1 + math.exp(-mean_logit)))
    assert e.p_soft_or == pytest.approx(1 - 0.01 * 0.95)
    assert any("disagree strongly" in s for s in e.reasons)


def test_missing_and_unscored_detectors_are_excluded_and_stated():
    no_face = DetectionResult("FACE", "original", float("nan"), float("nan"), "no_face", 0.5, 0.1, (8, 8), (8, 8),
                              None, False, "faces")
    e = ensemble([r("CLIP-D", 0.9), no_face], SEED, missing={"NPR": "weights not installed"})
    assert e.verdict == "FAKE"
    assert any(s.startswith("NPR: weights not installed") for s in e.excluded)
    assert any(s.startswith("FACE: no verdict") for s in e.excluded)
    assert "renormalised" in e.explanation
    assert e.votes[0].effective_weight == pytest.approx(1.0)
    assert any("only one detector" in s for s in e.reasons)
    import json
    json.dumps(e.to_dict())


def test_explanation_counts_what_ran_and_the_summary_line():
    no_vote = DetectionResult("FACE", "original", 2.0, 0.88, "fake", 0.5, 0.1, (8, 8), (8, 8), None, True, "faces")
    e = ensemble([r("CLIP-D", 0.9), r("NPR", 0.3), no_vote], SEED,
                 missing={"R50_TF": "weights not installed", "P2G": "weights not installed",
                          "R50_nodown": "weights not installed"})
    assert "3 detectors did not run (R50_TF, P2G, R50_nodown); the weights are renormalised over the 2 with a " \
           "vote weight that gave a verdict." in e.explanation
    assert "FACE ran without a vote" in e.explanation
    assert e.summary == "weighted vote of the original app: FAKE, 2 of 2 detectors voted"
    assert "not a probability" in e.explanation
    assert e.mean_logit == pytest.approx(0.75 * math.log(9) + 0.25 * math.log(0.3 / 0.7), abs=1e-9)   # .30/.10
