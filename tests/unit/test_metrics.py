"""core.evaluation.metrics against independent computations (brute force over thresholds, pairwise AUC, explicit bins)."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from core.evaluation.metrics import (
    UNCERTAIN,
    BinaryMetrics,
    binary_metrics,
    fmt,
    safe_logit,
    sigmoid,
)

# ---------------------------------------------------------------------------------------------- references


def ref_auc(y, s):
    """Probability that a random fake outscores a random real (ties count one half)."""
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def ref_roc(y, s):
    """(fpr, tpr, thr) for the rule s >= thr over every distinct score, starting at 'nothing is fake'."""
    thr = np.r_[np.inf, np.unique(s)[::-1]]
    P, N = (y == 1).sum(), (y == 0).sum()
    tpr = np.array([((s >= t) & (y == 1)).sum() / P for t in thr])
    fpr = np.array([((s >= t) & (y == 0)).sum() / N for t in thr])
    return fpr, tpr, thr


def ref_ap(y, s):
    """AP = sum over distinct thresholds (high → low) of (R_k - R_{k-1}) * P_k."""
    ap, prev_r = 0.0, 0.0
    P = (y == 1).sum()
    for t in np.unique(s)[::-1]:
        pred = s >= t
        tp = (pred & (y == 1)).sum()
        r, p = tp / P, tp / pred.sum()
        ap += (r - prev_r) * p
        prev_r = r
    return ap


def ref_eer(y, s):
    """Walk the ROC segments; interpolate where FPR - FNR changes sign."""
    fpr, tpr, _ = ref_roc(y, s)
    fnr = 1 - tpr
    for k in range(1, len(fpr)):
        a, b = fpr[k - 1] - fnr[k - 1], fpr[k] - fnr[k]
        if b >= 0:
            if b == 0:
                return fpr[k]
            t = -a / (b - a)
            return fpr[k - 1] + t * (fpr[k] - fpr[k - 1])
    raise AssertionError


def ref_best_balanced(y, s):
    cands = np.unique(s)
    mids = np.r_[cands[0] - 1, (cands[:-1] + cands[1:]) / 2, cands[-1] + 1]
    best = 0.0
    for t in mids:
        pred = s > t
        tpr = (pred & (y == 1)).sum() / (y == 1).sum()
        tnr = (~pred & (y == 0)).sum() / (y == 0).sum()
        best = max(best, (tpr + tnr) / 2)
    return best


def ref_ece(y, p, n_bins=10):
    """Equal-width bins, right-closed like numpy.searchsorted on the inner edges: (e_b, e_b+1], first from 0."""
    edges = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        m = np.ones(len(p), dtype=bool)
        if b > 0:
            m &= p > edges[b]
        if b < n_bins - 1:
            m &= p <= edges[b + 1]
        if m.sum():
            total += m.sum() / len(p) * abs(y[m].mean() - p[m].mean())
    return total


def no_nan(m: BinaryMetrics) -> None:
    for f in dataclasses.fields(m):
        v = getattr(m, f.name)
        if isinstance(v, float):
            assert math.isfinite(v), f.name
    for name in ("accuracy", "balanced_accuracy", "tpr", "tnr", "precision", "coverage", "roc_auc",
                 "average_precision", "eer", "eer_threshold", "tpr_at_fpr_1", "tpr_at_fpr_5", "oracle_threshold",
                 "oracle_balanced_accuracy", "oracle_accuracy", "ece"):
        v = m.value(name)
        assert (v is None) == (name in m.na), name
        assert v is None or math.isfinite(v), name


# ---------------------------------------------------------------------------------------------- fixed vectors

Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0])
P = np.array([0.05, 0.2, 0.35, 0.6, 0.8, 0.4, 0.55, 0.7, 0.9, 0.95, 0.62, 0.1])


def test_fixed_vector_threshold_metrics():
    m = binary_metrics(Y, P, threshold=0.5)
    pred = P > 0.5
    tp = int((pred & (Y == 1)).sum()); fp = int((pred & (Y == 0)).sum())
    tn = int((~pred & (Y == 0)).sum()); fn = int((~pred & (Y == 1)).sum())
    assert (m.tp, m.fp, m.tn, m.fn) == (tp, fp, tn, fn) == (5, 2, 4, 1)
    assert m.accuracy == pytest.approx((tp + tn) / len(Y))
    assert m.tpr == pytest.approx(tp / (tp + fn))
    assert m.tnr == pytest.approx(tn / (tn + fp))
    assert m.balanced_accuracy == pytest.approx((m.tpr + m.tnr) / 2)
    assert m.precision == pytest.approx(tp / (tp + fp))
    assert m.coverage == 1.0 and m.confusion == [[4, 2], [1, 5]]
    no_nan(m)


def test_fixed_vector_ranking_metrics():
    m = binary_metrics(Y, P)
    assert m.roc_auc == pytest.approx(ref_auc(Y, P))
    assert m.average_precision == pytest.approx(ref_ap(Y, P))
    assert m.eer == pytest.approx(ref_eer(Y, P))
    fpr, tpr, _ = ref_roc(Y, P)
    assert m.tpr_at_fpr_5 == pytest.approx(tpr[fpr <= 0.05].max())
    assert m.tpr_at_fpr_1 == pytest.approx(tpr[fpr <= 0.01].max())
    assert m.oracle_balanced_accuracy == pytest.approx(ref_best_balanced(Y, P))


def test_reported_thresholds_reproduce_their_numbers():
    m = binary_metrics(Y, P)
    at_oracle = binary_metrics(Y, P, threshold=m.oracle_threshold)
    assert at_oracle.balanced_accuracy == pytest.approx(m.oracle_balanced_accuracy)
    assert at_oracle.accuracy == pytest.approx(m.oracle_accuracy)
    at_eer = binary_metrics(Y, P, threshold=m.eer_threshold)
    # the EER threshold is the ROC point nearest the crossing: its FPR and FNR bracket the EER
    fpr, fnr = 1 - at_eer.tnr, 1 - at_eer.tpr
    assert min(fpr, fnr) - 1e-9 <= m.eer <= max(fpr, fnr) + 1e-9


def test_hand_computed_small_case():
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert m.accuracy == 0.5 and m.roc_auc == 0.75 and m.eer == 0.5
    assert m.average_precision == pytest.approx((0.5 * 1.0) + (0.5 * 2 / 3))


def test_ties_count_half_in_auc_and_share_one_threshold():
    y = np.array([0, 1, 0, 1, 0, 1])
    p = np.array([0.5, 0.5, 0.5, 0.5, 0.2, 0.8])
    m = binary_metrics(y, p)
    # fakes 0.8, 0.5, 0.5 vs reals 0.5, 0.5, 0.2: 3 + 2 * (0.5 + 0.5 + 1) = 7 wins of 9 pairs
    assert m.roc_auc == pytest.approx(ref_auc(y, p)) == pytest.approx(7 / 9)
    assert m.average_precision == pytest.approx(ref_ap(y, p))
    assert m.eer == pytest.approx(ref_eer(y, p))
    no_nan(m)


def test_all_scores_equal():
    y = np.array([0, 1, 0, 1])
    m = binary_metrics(y, np.full(4, 0.5))
    assert m.roc_auc == 0.5 and m.eer == pytest.approx(0.5)
    assert m.precision is None and "no image was called fake" in m.na["precision"]
    no_nan(m)


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_is_na_with_reason_never_nan(label):
    y = np.full(5, label)
    p = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    m = binary_metrics(y, p, threshold=0.5)
    for name in ("roc_auc", "average_precision", "eer", "eer_threshold", "tpr_at_fpr_1", "tpr_at_fpr_5",
                 "oracle_threshold", "balanced_accuracy"):
        assert m.value(name) is None
        assert "real and fake" in m.na[name]
        assert fmt(m, name).startswith("n/a (")
    assert m.accuracy == pytest.approx(((p > 0.5) == bool(label)).mean())
    assert (m.tpr is None) == (label == 0) and (m.tnr is None) == (label == 1)
    assert m.ece is not None           # calibration is defined with one class
    no_nan(m)


def test_empty_input():
    m = binary_metrics([], [])
    assert m.n == 0 and m.accuracy is None and m.na["accuracy"] == "no labelled image with a score"
    no_nan(m)


def test_ece_and_reliability_bins():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=200)
    p[:5] = [0.0, 0.1, 0.2, 1.0, 0.5]          # bin edges
    y = (rng.uniform(size=200) < p).astype(int)
    m = binary_metrics(y, p, n_bins=10)
    assert m.ece == pytest.approx(ref_ece(y, p))
    r = m.reliability
    assert sum(r.counts) == 200 and len(r.edges) == 11
    for b, c in enumerate(r.counts):
        if c:
            assert 0 <= r.mean_p[b] <= 1 and 0 <= r.frac_fake[b] <= 1
        else:
            assert r.mean_p[b] is None


def test_perfectly_calibrated_extremes_have_zero_ece():
    m = binary_metrics([0, 0, 1, 1], [0.0, 0.0, 1.0, 1.0])
    assert m.ece == 0.0 and m.roc_auc == 1.0 and m.eer == 0.0 and m.tpr_at_fpr_1 == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_random_vectors_match_references(seed):
    rng = np.random.default_rng(seed)
    n = 60
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    p = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), 2)     # rounding creates ties
    m = binary_metrics(y, p, threshold=0.45)
    assert m.roc_auc == pytest.approx(ref_auc(y, p))
    assert m.average_precision == pytest.approx(ref_ap(y, p))
    assert m.eer == pytest.approx(ref_eer(y, p))
    assert m.oracle_balanced_accuracy == pytest.approx(ref_best_balanced(y, p))
    fpr, tpr, _ = ref_roc(y, p)
    assert m.tpr_at_fpr_5 == pytest.approx(tpr[fpr <= 0.05].max())
    assert m.ece == pytest.approx(ref_ece(y, p))
    no_nan(m)


def test_logits_break_saturated_probability_ties():
    logits = np.array([-3.0, 1.0, 40.0, 45.0, 50.0])
    y = np.array([0, 0, 1, 0, 1])
    p = sigmoid(logits)
    assert p[2] == p[3] == p[4] == 1.0                 # float64 saturates
    with_logit = binary_metrics(y, p, logit=logits)
    assert with_logit.roc_auc == pytest.approx(ref_auc(y, logits))
    assert binary_metrics(y, p).roc_auc == pytest.approx(ref_auc(y, p))   # without: ties at 1.0


def test_abstentions_count_as_misses():
    y = [0, 0, 1, 1, 1]
    pred = [0, UNCERTAIN, 1, UNCERTAIN, 0]
    m = binary_metrics(y, [0.2, 0.5, 0.9, 0.5, 0.3], y_pred=pred)
    assert m.threshold is None and m.coverage == pytest.approx(3 / 5)
    assert m.accuracy == pytest.approx(2 / 5)
    assert m.tpr == pytest.approx(1 / 3) and m.tnr == pytest.approx(1 / 2)
    assert m.balanced_accuracy == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert m.confusion == [[1, 0, 1], [1, 1, 1]]


def test_not_probabilistic_has_no_ece():
    m = binary_metrics([0, 1], [0.3, 0.7], probabilistic=False)
    assert m.ece is None and "not probabilities" in m.na["ece"]


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.5])
    with pytest.raises(ValueError):
        binary_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError):
        binary_metrics([0, 1], [0.5, float("nan")])


def test_to_dict_is_json_ready():
    import json
    m = binary_metrics([1, 1], [0.2, 0.9])
    d = m.to_dict(curves=True)
    text = json.dumps(d, allow_nan=False)
    assert '"roc_auc": null' in text and d["na"]["roc_auc"]


def test_sigmoid_and_logit_are_inverse_and_safe():
    z = np.array([-800.0, -5.0, 0.0, 5.0, 800.0])
    p = sigmoid(z)
    assert np.isfinite(p).all() and p[0] == 0.0 and p[-1] == 1.0
    assert np.allclose(safe_logit(p[1:4]), z[1:4])
    assert np.isfinite(safe_logit(np.array([0.0, 1.0]))).all()
