"""Learned fusion (stacking): a logistic regression over calibrated logits, with missing detectors, fitted and
cross-validated by fit_profile and stored in the profile."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from core.errors import ProfileError
from core.verdict.calibration import profile_from_dict
from core.verdict.ensemble import EnsembleConfig
from core.verdict.fitting import ScoreColumn, fit_profile, vote_margins
from core.verdict.stacking import P_CLIP, Z_CLIP, Stacker, calibrated_logit, design
from tests.unit.test_calibration import complementary


def test_design_sets_missing_inputs_to_zero_and_flags_them():
    x = design(np.array([[2.0, np.nan], [np.nan, -40.0]]))
    assert x.tolist() == [[2.0, 0.0, 0.0, 1.0], [0.0, -Z_CLIP, 1.0, 0.0]]
    assert calibrated_logit(1.0) == pytest.approx(Z_CLIP) and math.isnan(calibrated_logit(float("nan")))
    assert calibrated_logit(P_CLIP) == pytest.approx(-Z_CLIP)


def test_a_stacker_predicts_with_any_subset_of_its_inputs():
    st = Stacker(("A", "B"), (1.0, 2.0), (0.5, -0.5), 0.1, 0.5, 0.9, 0.3, 0.02, 100)
    both = st.predict({"A": 1.0, "B": -1.0})
    assert both == pytest.approx(1 / (1 + math.exp(-(1.0 - 2.0 + 0.1))))
    only_a = st.predict({"A": 1.0})                           # B missing: its indicator's weight is added
    assert only_a == pytest.approx(1 / (1 + math.exp(-(1.0 - 0.5 + 0.1))))
    assert st.used({"A": 1.0, "C": 3.0}) == ("A",)
    assert math.isnan(st.predict({})) and math.isnan(st.predict({"C": 2.0}))
    many = st.predict_many(np.array([[1.0, -1.0], [1.0, np.nan], [np.nan, np.nan]]))
    assert many[:2] == pytest.approx([both, only_a]) and math.isnan(many[2])


def test_the_fusion_of_two_complementary_tools_beats_each_cross_validated():
    y, za, zb = complementary()
    prof = fit_profile(y, [ScoreColumn("A", za), ScoreColumn("B", zb)])
    st = prof.stacker
    assert st is not None and st.inputs == ("A", "B") and st.n == 400
    singles = [prof.detectors[k].before["auc"] for k in "AB"]
    assert max(singles) < 0.9 and st.cv_auc > max(singles) + 0.1
    assert st.cv_ece < 0.1 and 0 < st.threshold < 1


def test_a_detector_missing_on_some_images_is_handled():
    y, za, zb = complementary(500, seed=4)
    gone = np.random.default_rng(1).random(500) < 0.3              # B did not score 30 % of the images
    zb = np.where(gone, np.nan, zb)
    prof = fit_profile(y, [ScoreColumn("A", za), ScoreColumn("B", zb)])
    st = prof.stacker
    assert prof.detectors["B"].n_real + prof.detectors["B"].n_fake == int((~gone).sum())
    assert st.cv_auc > max(prof.detectors[k].before["auc"] for k in "AB")
    zc = {k: calibrated_logit(prof.detectors[k].calibrator.predict(z)) for k, z in (("A", za), ("B", zb))}
    p = st.predict_many(np.column_stack([zc["A"], zc["B"]]))
    assert np.isfinite(p).all()                                     # A alone still gives a fused P(fake)


def test_cross_validation_does_not_flatter_noise():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    cols = [ScoreColumn(k, rng.normal(0, 3, 300)) for k in ("N1", "N2", "N3")]
    st = fit_profile(y, cols).stacker
    assert st is not None and st.cv_auc < 0.62                     # no signal: the fusion must not invent one


def test_the_original_vote_is_measured_beside_the_fusion():
    y, za, zb = complementary()
    p = {"A:original": 1 / (1 + np.exp(-za)), "B:original": 1 / (1 + np.exp(-zb))}
    cfg = EnsembleConfig(0.6, {"A": 0.3, "B": 0.2})
    margin = vote_margins(p, {"A:original": 0.5, "B:original": 0.5}, {"A:original": "A", "B:original": "B"}, cfg)
    prof = fit_profile(y, [ScoreColumn("A:original", za), ScoreColumn("B:original", zb)], vote_margin=margin)
    assert prof.vote is not None and prof.vote["auc"] == pytest.approx(roc_auc_score(y, margin))
    assert prof.stacker.cv_auc > prof.vote["auc"]
    back = profile_from_dict(prof.to_dict())
    assert back.stacker == prof.stacker and back.vote["auc"] == prof.vote["auc"]


@pytest.mark.parametrize("bad, msg", [
    ({"inputs": ["A"], "coef": [1.0, 2.0], "missing_coef": [0.0], "intercept": 0, "threshold": 0.5},
     "expected 1 numbers"),
    ({"inputs": ["A"], "coef": [1.0], "missing_coef": [0.0], "intercept": float("nan"), "threshold": 0.5},
     "not a finite number"),
    ({"inputs": ["A"], "coef": ["x"], "missing_coef": [0.0], "intercept": 0, "threshold": 0.5}, "could not convert"),
    ({"coef": [1.0]}, "inputs"),
    (["not", "a", "mapping"], "malformed"),
])
def test_a_malformed_stored_fusion_is_refused_in_one_sentence(bad, msg):
    with pytest.raises(ProfileError, match="the profile's learned fusion is malformed") as exc:
        Stacker.from_dict(bad)
    assert msg in str(exc.value) and "\n" not in str(exc.value)
