"""Binary detection metrics (label 1 = fake, 0 = real) computed with scikit-learn, returned as frozen dataclasses.

Conventions (the same as every detector): a score ``p_fake`` in [0, 1], and an image is called fake when
``p_fake > threshold`` (strictly). Every threshold this module reports (EER threshold, oracle threshold) uses that
same rule, so it can be typed back into the threshold slider or ``--threshold`` and reproduces the reported numbers.

Ranking metrics (ROC, AP, EER, oracle threshold) use the logit when it is known: ``sigmoid`` saturates to exactly
1.0 in float64 above a logit of about 37, and overconfident detectors would otherwise produce artificial ties.

Nothing here returns NaN: a metric that is undefined for the data (one class only, no scores) is ``None`` and its
reason is in ``BinaryMetrics.na``.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from core.convert import safe_logit, sigmoid

__all__ = ["Curve", "Reliability", "BinaryMetrics", "binary_metrics", "fmt", "safe_logit", "sigmoid",
           "METRIC_LABELS", "UNCERTAIN"]

UNCERTAIN = -1          # a predicted label meaning "abstained" (the ensemble's UNCERTAIN verdict)
_Z_CLIP = 27.6          # logit of 1 - 1e-12: where p = 0 or 1 sits in logit space

# Display names of the scalar metrics, in table order.
METRIC_LABELS: dict[str, str] = {
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "tpr": "TPR (fake recall)",
    "tnr": "TNR (real recall)",
    "precision": "precision (fake)",
    "roc_auc": "ROC-AUC",
    "average_precision": "average precision",
    "eer": "EER",
    "eer_threshold": "EER threshold",
    "tpr_at_fpr_1": "TPR @ 1% FPR",
    "tpr_at_fpr_5": "TPR @ 5% FPR",
    "oracle_threshold": "oracle threshold",
    "oracle_balanced_accuracy": "oracle balanced accuracy",
    "oracle_accuracy": "oracle accuracy",
    "ece": "ECE",
    "coverage": "coverage (decided)",
}


@dataclass(frozen=True)
class Curve:
    """Points of a ROC or precision-recall curve (sklearn's order) and the p_fake threshold of each point."""

    x: tuple[float, ...]               # FPR (ROC) or recall (PR)
    y: tuple[float, ...]               # TPR (ROC) or precision (PR)
    thresholds: tuple[float, ...]      # p_fake at which each point starts (sklearn's >= rule; inf → 1.0)


@dataclass(frozen=True)
class Reliability:
    """Reliability diagram: equal-width bins of p_fake."""

    edges: tuple[float, ...]           # n_bins + 1 bin edges on [0, 1]
    counts: tuple[int, ...]            # images per bin
    mean_p: tuple[float | None, ...]   # mean p_fake per bin (None for an empty bin)
    frac_fake: tuple[float | None, ...]  # fraction of fake images per bin (None for an empty bin)


@dataclass(frozen=True)
class BinaryMetrics:
    """Every metric of one score source on one set of images.

    Scalar metrics are ``None`` when undefined for this data, with the reason in :attr:`na`.
    """

    n: int                                         # images with a label and a score
    n_real: int
    n_fake: int
    n_unscored: int                                # labelled images this source gave no score for
    threshold: float | None                        # p_fake threshold used (None: predictions given directly)
    tn: int                                        # true real, predicted real
    fp: int                                        # true real, predicted fake
    fn: int                                        # true fake, predicted real
    tp: int                                        # true fake, predicted fake
    uncertain_real: int = 0                        # true real, abstained (ensemble UNCERTAIN)
    uncertain_fake: int = 0                        # true fake, abstained
    accuracy: float | None = None                  # abstentions count as not correct
    balanced_accuracy: float | None = None         # mean of TPR and TNR
    tpr: float | None = None                       # fake recall
    tnr: float | None = None                       # real recall
    precision: float | None = None                 # of the fake predictions, the fraction really fake
    coverage: float | None = None                  # fraction decided (1.0 unless abstentions are possible)
    roc_auc: float | None = None
    average_precision: float | None = None
    eer: float | None = None                       # equal error rate (FPR = FNR), linearly interpolated on the ROC
    eer_threshold: float | None = None             # p_fake threshold of the ROC point nearest the EER
    tpr_at_fpr_1: float | None = None              # best TPR with FPR <= 1 %
    tpr_at_fpr_5: float | None = None              # best TPR with FPR <= 5 %
    oracle_threshold: float | None = None          # p_fake threshold maximising balanced accuracy (on this data!)
    oracle_balanced_accuracy: float | None = None
    oracle_accuracy: float | None = None
    ece: float | None = None                       # expected calibration error of p_fake (equal-width bins)
    roc: Curve | None = None
    pr: Curve | None = None
    reliability: Reliability | None = None
    na: Mapping[str, str] = field(default_factory=dict)   # metric name → why it is n/a
    notes: tuple[str, ...] = ()                    # caveats that do not make a metric undefined

    @property
    def confusion(self) -> list[list[int]]:
        """Rows: true real, true fake. Columns: predicted real, predicted fake (+ uncertain when abstaining)."""
        if self.uncertain_real or self.uncertain_fake:
            return [[self.tn, self.fp, self.uncertain_real], [self.fn, self.tp, self.uncertain_fake]]
        return [[self.tn, self.fp], [self.fn, self.tp]]

    def value(self, name: str) -> float | None:
        """A scalar metric by name."""
        return getattr(self, name)

    def to_dict(self, *, curves: bool = False) -> dict[str, Any]:
        """JSON-ready view: metrics (null when n/a), counts, the n/a reasons and the reliability bins."""
        out: dict[str, Any] = {
            "n": self.n, "n_real": self.n_real, "n_fake": self.n_fake, "n_unscored": self.n_unscored,
            "threshold": self.threshold,
            "confusion": {"tn": self.tn, "fp": self.fp, "fn": self.fn, "tp": self.tp,
                          "uncertain_real": self.uncertain_real, "uncertain_fake": self.uncertain_fake},
        }
        for name in METRIC_LABELS:
            out[name] = self.value(name)
        out["na"] = dict(self.na)
        out["notes"] = list(self.notes)
        if self.reliability is not None:
            r = self.reliability
            out["reliability"] = {"edges": list(r.edges), "counts": list(r.counts), "mean_p": list(r.mean_p),
                                  "frac_fake": list(r.frac_fake)}
        if curves:
            for name in ("roc", "pr"):
                c = getattr(self, name)
                out[name] = None if c is None else {"x": list(c.x), "y": list(c.y), "thresholds": list(c.thresholds)}
        return out


def fmt(m: BinaryMetrics, name: str, digits: int = 3) -> str:
    """A metric as text: the number, or ``n/a (reason)``."""
    v = m.value(name)
    if v is None:
        return f"n/a ({m.na.get(name, 'undefined')})"
    return f"{v:.{digits}f}"


def _f(x: Any) -> float:
    return float(x)


def _strict_threshold(thr: np.ndarray, i: int, z_min: float) -> float:
    """Convert ROC point ``i`` (rule: z >= thr[i]) into the strict rule z > t, as a z value.

    Any t in [next lower distinct score, thr[i]) gives the same predictions; the midpoint is reported.
    """
    if i == 0 or not np.isfinite(thr[i]):          # nothing predicted fake: t = the largest score
        return float(thr[1]) if len(thr) > 1 else float(z_min)
    if i + 1 < len(thr):
        return float((thr[i] + thr[i + 1]) / 2.0)
    return float(z_min) - 1.0                      # everything predicted fake


def binary_metrics(y_true: Sequence[int] | np.ndarray, p_fake: Sequence[float] | np.ndarray, *,
                   threshold: float | None = 0.5, logit: Sequence[float] | np.ndarray | None = None,
                   y_pred: Sequence[int] | np.ndarray | None = None, n_bins: int = 10,
                   probabilistic: bool = True, n_unscored: int = 0) -> BinaryMetrics:
    """Compute every metric of one score source.

    Args:
        y_true: 1 = fake, 0 = real (finite scores only: filter unscored images out first).
        p_fake: P(fake) in [0, 1] per image.
        threshold: call fake when ``p_fake > threshold``; ignored when ``y_pred`` is given.
        logit: optional logit per image, monotone in ``p_fake``; used for ranking metrics (finer than p_fake).
        y_pred: predictions to use instead of thresholding: 1 fake, 0 real, -1 abstained (ensemble UNCERTAIN).
        n_bins: reliability-diagram bins.
        probabilistic: False when the scores are not calibrated probabilities (ECE is then n/a).
        n_unscored: labelled images without a score (reported, not used).

    Returns:
        A frozen :class:`BinaryMetrics`; undefined metrics are ``None`` with a reason in ``na``.

    Raises:
        ValueError: inputs of different lengths, labels other than 0/1, or non-finite scores.

    Example:
        >>> m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
        >>> m.accuracy, m.roc_auc
        (0.5, 0.75)
    """
    y, p, z = _checked_scores(y_true, p_fake, logit)
    n, n_fake = len(y), int(y.sum())
    n_real = n - n_fake
    na: dict[str, str] = {}
    notes: list[str] = []
    pred, threshold = _predictions(y_pred, p, threshold, n)
    cm = confusion_matrix(y, pred, labels=[0, 1, UNCERTAIN]) if n else np.zeros((3, 3), dtype=np.int64)
    tn, fp, unc_r = (int(v) for v in cm[0])
    fn, tp, unc_f = (int(v) for v in cm[1])
    if n == 0:
        reason = "no labelled image with a score"
        for k in METRIC_LABELS:
            na[k] = reason
        return BinaryMetrics(n, n_real, n_fake, n_unscored, threshold, tn, fp, fn, tp, unc_r, unc_f, na=na)
    vals = _threshold_metrics(y, pred, na)
    roc, pr = _ranking_metrics(y, z, vals, na, notes)
    reliability = _calibration_metrics(y, p, n_bins, probabilistic, vals, na)
    for k, v in vals.items():
        if v is not None and not math.isfinite(v):   # defensive: the contract is "never NaN"
            vals[k] = None
            na[k] = "not finite for these scores"
    return BinaryMetrics(n=n, n_real=n_real, n_fake=n_fake, n_unscored=n_unscored, threshold=threshold,
                         tn=tn, fp=fp, fn=fn, tp=tp, uncertain_real=unc_r, uncertain_fake=unc_f,
                         roc=roc, pr=pr, reliability=reliability, na=na, notes=tuple(notes), **vals)


def _checked_scores(y_true, p_fake, logit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # noqa: ANN001
    """Labels, probabilities and ranking logits as arrays, after checking lengths, labels and finiteness."""
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(p_fake, dtype=np.float64).ravel()
    if len(y) != len(p):
        raise ValueError(f"y_true has {len(y)} values but p_fake has {len(p)}")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 (real) and 1 (fake)")
    if not np.isfinite(p).all():
        raise ValueError("p_fake must be finite (leave unscored images out)")
    if logit is None:
        return y, p, (safe_logit(p) if len(p) else np.zeros(0))
    z = np.asarray(logit, dtype=np.float64).ravel()
    if len(z) != len(p) or not np.isfinite(z).all():
        raise ValueError("logit must be finite and as long as p_fake")
    return y, p, np.clip(z, -1e6, 1e6)


def _predictions(y_pred, p: np.ndarray, threshold: float | None, n: int) -> tuple[np.ndarray, float | None]:  # noqa: ANN001
    """The predicted labels (given, or p_fake thresholded) and the threshold they came from (None if given)."""
    if y_pred is not None:
        pred = np.asarray(y_pred, dtype=np.int64).ravel()
        if len(pred) != n or not np.isin(pred, (0, 1, UNCERTAIN)).all():
            raise ValueError("y_pred must hold 0, 1 or -1 for every image")
        return pred, None
    if threshold is None:
        raise ValueError("give a threshold or y_pred")
    return (p > threshold).astype(np.int64), threshold


def _threshold_metrics(y: np.ndarray, pred: np.ndarray, na: dict[str, str]) -> dict[str, Any]:
    """Accuracy, coverage, TPR, TNR, balanced accuracy, precision (sklearn; -1 = abstained counts as a miss)."""
    n_fake = int(y.sum())
    n_real = len(y) - n_fake
    vals: dict[str, Any] = {"accuracy": _f(accuracy_score(y, pred)), "coverage": _f((pred != UNCERTAIN).mean())}
    if n_fake:
        vals["tpr"] = _f(recall_score(y, pred, labels=[1], average=None, zero_division=0)[0])
    else:
        na["tpr"] = "no fake images"
    if n_real:
        vals["tnr"] = _f(recall_score(y, pred, labels=[0], average=None, zero_division=0)[0])
    else:
        na["tnr"] = "no real images"
    if n_real and n_fake:
        with warnings.catch_warnings():
            # abstentions form a predicted class absent from y_true: sklearn warns, then (as wanted) counts them
            # as misses in both recalls
            warnings.simplefilter("ignore", UserWarning)
            vals["balanced_accuracy"] = _f(balanced_accuracy_score(y, pred))
    else:
        na["balanced_accuracy"] = "needs both real and fake images"
    if (pred == 1).any():
        vals["precision"] = _f(precision_score(y, pred, labels=[1], average=None, zero_division=0)[0])
    else:
        na["precision"] = "no image was called fake"
    return vals


def _to_p(t: float) -> float:
    return 1.0 if not np.isfinite(t) else float(sigmoid(t))


def _ranking_metrics(y: np.ndarray, z: np.ndarray, vals: dict[str, Any], na: dict[str, str],
                     notes: list[str]) -> tuple[Curve | None, Curve | None]:
    """ROC AUC, AP, EER, TPR at fixed FPR and the oracle threshold (need both classes); the ROC and PR curves."""
    n_fake = int(y.sum())
    n_real = len(y) - n_fake
    if not (n_real and n_fake):
        reason = "only fake images" if n_fake else "only real images"
        for k in ("roc_auc", "average_precision", "eer", "eer_threshold", "tpr_at_fpr_1", "tpr_at_fpr_5",
                  "oracle_threshold", "oracle_balanced_accuracy", "oracle_accuracy"):
            na[k] = f"needs both real and fake images ({reason})"
        return None, None
    vals["roc_auc"] = _f(roc_auc_score(y, z))
    vals["average_precision"] = _f(average_precision_score(y, z))
    fpr, tpr, thr = roc_curve(y, z, drop_intermediate=False)
    roc = Curve(tuple(map(float, fpr)), tuple(map(float, tpr)), tuple(_to_p(t) for t in thr))
    prec, rec, pthr = precision_recall_curve(y, z)
    pr = Curve(tuple(map(float, rec)), tuple(map(float, prec)), tuple(_to_p(t) for t in pthr) + (1.0,))
    z_min = float(z.min())
    # EER: first ROC point where FPR >= FNR, linearly interpolated with the point before it.
    d = fpr - (1.0 - tpr)
    i = int(np.argmax(d >= 0))
    if d[i] == 0 or i == 0:
        vals["eer"] = _f(fpr[i])
    else:
        t = -d[i - 1] / (d[i] - d[i - 1])
        vals["eer"] = _f(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))
    j = i if i == 0 or abs(d[i]) <= abs(d[i - 1]) else i - 1
    vals["eer_threshold"] = float(sigmoid(_strict_threshold(thr, j, z_min)))
    for pct in (1, 5):
        vals[f"tpr_at_fpr_{pct}"] = _f(tpr[fpr <= pct / 100.0 + 1e-12].max())
    if n_real < 100:
        notes.append(f"only {n_real} real images: TPR @ 1% FPR is the TPR with no false positive at all")
    # Oracle: the ROC point with the best balanced accuracy (first = highest threshold on ties).
    k = int(np.argmax((tpr + 1.0 - fpr) / 2.0))
    t_z = _strict_threshold(thr, k, z_min)
    vals["oracle_threshold"] = float(sigmoid(t_z))
    o_pred = (z > t_z).astype(np.int64)
    vals["oracle_balanced_accuracy"] = _f(balanced_accuracy_score(y, o_pred))
    vals["oracle_accuracy"] = _f(accuracy_score(y, o_pred))
    notes.append("the oracle threshold is chosen on these very images: an optimistic upper bound")
    return roc, pr


def _calibration_metrics(y: np.ndarray, p: np.ndarray, n_bins: int, probabilistic: bool, vals: dict[str, Any],
                         na: dict[str, str]) -> Reliability | None:
    """ECE and the reliability diagram (only when the scores are probabilities)."""
    if not probabilistic:
        na["ece"] = "the scores are not probabilities"
        return None
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    pc = np.clip(p, 0.0, 1.0)
    prob_true, prob_pred = calibration_curve(y, pc, n_bins=n_bins, strategy="uniform", pos_label=1)
    # the same bin assignment as sklearn's calibration_curve, to know the (non-empty) bin sizes
    counts = np.bincount(np.searchsorted(edges[1:-1], pc), minlength=n_bins)
    nz = counts > 0
    vals["ece"] = _f(np.sum(counts[nz] / len(y) * np.abs(prob_true - prob_pred)))
    mean_p: list[float | None] = [None] * n_bins
    frac: list[float | None] = [None] * n_bins
    for b, pt, pp in zip(np.flatnonzero(nz), prob_true, prob_pred):
        mean_p[b], frac[b] = float(pp), float(pt)
    return Reliability(tuple(map(float, edges)), tuple(int(c) for c in counts), tuple(mean_p), tuple(frac))


