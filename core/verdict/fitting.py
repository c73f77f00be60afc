"""Fitting a calibration profile on labelled scores: calibrators, thresholds and the learned fusion, all
cross-validated.

Input: labels (1 = fake, 0 = real) and one raw-logit column per score source (NaN = not scored). For each source:
Platt scaling and isotonic regression (scikit-learn) are compared by cross-validated log-loss (``method="auto"``),
the winner is refitted on every image, and the threshold is chosen on the out-of-fold calibrated scores (maximum
balanced accuracy, or the lowest threshold whose false-positive rate stays within ``target_fpr``). The learned
fusion (:mod:`core.verdict.stacking`) is evaluated with calibrators refitted inside each outer fold, so its
cross-validated AUC never sees the images it is scored on. No torch, no streamlit.

Example:
    >>> prof = fit_profile(y, [ScoreColumn("A", za), ScoreColumn("B", zb)], dataset={"name": "mine"})
    >>> prof.detectors["A"].after["ece"] < prof.detectors["A"].before["ece"], prof.stacker.cv_auc
    (True, 0.97)
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from core.convert import sigmoid
from core.errors import ProfileError
from core.results import DetectionResult
from core.verdict.calibration import Calibrator, DetectorCalibration, Profile
from core.verdict.ensemble import EnsembleConfig, ensemble
from core.verdict.stacking import P_CLIP, Stacker, calibrated_logit, fit_logistic

METHODS = ("platt", "isotonic")
MIN_PER_CLASS = 5          # fewer real or fake scored images than this: a calibration would be noise
FOLDS = 5
SEED = 0                   # fixed fold assignment: the same data always gives the same profile


@dataclass(frozen=True)
class ScoreColumn:
    """One score source to calibrate: raw logits aligned with the labels."""

    key: str                              # "ID:variant" or a CSV column name
    logit: np.ndarray                     # raw logit per image (NaN = not scored)
    weights_sha256: str | None = None     # the checkpoint the scores came from
    detector_id: str = ""
    variant: str = ""


# --------------------------------------------------------------------------------------------- measures

def ece(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error over equal-width bins (the bins of core.evaluation.metrics and sklearn)."""
    y, p = np.asarray(y, dtype=np.float64), np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    idx = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], p)
    gap = np.bincount(idx, weights=y, minlength=n_bins) - np.bincount(idx, weights=p, minlength=n_bins)
    return float(np.abs(gap).sum() / max(len(y), 1))


def measures(y: np.ndarray, p: np.ndarray, rank: np.ndarray | None = None) -> dict[str, float | None]:
    """AUC (on ``rank`` when given: finer than a saturated p), ECE and log-loss of P(fake) ``p``."""
    both = 0 < int(y.sum()) < len(y)
    pc = np.clip(p, P_CLIP, 1 - P_CLIP)
    return {"auc": float(roc_auc_score(y, p if rank is None else rank)) if both else None,
            "ece": ece(y, p), "log_loss": float(log_loss(y, pc, labels=[0, 1]))}


def fingerprint(ids: Sequence[str], labels: Sequence[int]) -> str:
    """A dataset fingerprint: sha256 of the sorted (file id, label) pairs (file ids: content sha256 when known)."""
    h = hashlib.sha256()
    for i, lab in sorted(zip(map(str, ids), map(int, labels))):
        h.update(f"{i}\t{lab}\n".encode())
    return h.hexdigest()


def folds(y: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified folds (at most 5; fewer when a class is small)."""
    k = min(FOLDS, int(y.sum()), int(len(y) - y.sum()))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=SEED).split(np.zeros(len(y)), y))


def choose_threshold(y: np.ndarray, p: np.ndarray, target_fpr: float | None = None) -> tuple[float, str]:
    """A P(fake) threshold (fake when ``p > t``): maximum balanced accuracy, or the lowest threshold whose
    false-positive rate is at most ``target_fpr``."""
    cands = np.concatenate([[0.0], np.unique(p)])
    pr, pf = np.sort(p[y == 0]), np.sort(p[y == 1])
    fpr = 1.0 - np.searchsorted(pr, cands, side="right") / max(len(pr), 1)
    tpr = 1.0 - np.searchsorted(pf, cands, side="right") / max(len(pf), 1)
    if target_fpr is not None:
        ok = np.flatnonzero(fpr <= target_fpr + 1e-12)
        return float(cands[ok[0]]), f"FPR <= {target_fpr:.0%}"
    return float(cands[int(np.argmax((tpr + 1.0 - fpr) / 2.0))]), "max balanced accuracy"


# --------------------------------------------------------------------------------------------- calibrators

def fit_calibrator(z: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
    """Fit Platt scaling or isotonic regression on finite raw logits ``z``."""
    z = np.clip(np.asarray(z, dtype=np.float64), -1e6, 1e6)
    if method == "platt":
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(z.reshape(-1, 1), y)   # barely regularised
        return Calibrator("platt", float(lr.coef_[0, 0]), float(lr.intercept_[0]))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(z, y)
    return Calibrator("isotonic", x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)))


def _out_of_fold(z: np.ndarray, y: np.ndarray, method: str, split: list) -> np.ndarray:
    p = np.empty(len(y))
    for tr, te in split:
        p[te] = fit_calibrator(z[tr], y[tr], method).predict(z[te])
    return p


def _fit_column(col: ScoreColumn, y: np.ndarray, method: str,
                target_fpr: float | None) -> tuple[DetectorCalibration, np.ndarray]:
    """Calibrate one column; returns it and its out-of-fold calibrated P(fake) over every row (NaN unscored)."""
    z_all = np.asarray(col.logit, dtype=np.float64)
    ok = np.isfinite(z_all)
    z, yy = z_all[ok], y[ok]
    n_fake = int(yy.sum())
    n_real = len(yy) - n_fake
    if min(n_real, n_fake) < MIN_PER_CLASS:
        raise ProfileError(f"{col.key}: needs at least {MIN_PER_CLASS} scored real and {MIN_PER_CLASS} scored fake "
                           f"images to calibrate (has {n_real} real, {n_fake} fake).")
    split = folds(yy)
    tried = list(METHODS) if method == "auto" else [method]
    oof = {m: _out_of_fold(z, yy, m, split) for m in tried}
    losses = {m: float(log_loss(yy, oof[m], labels=[0, 1])) for m in tried}
    best = min(tried, key=lambda m: (losses[m], METHODS.index(m)))      # ties → Platt, the simpler one
    thr, rule = choose_threshold(yy, oof[best], target_fpr)
    before = measures(yy, np.asarray(sigmoid(z)), rank=z)
    after = measures(yy, oof[best], rank=None)
    cal = DetectorCalibration(col.key, fit_calibrator(z, yy, best), thr, rule, col.weights_sha256,
                              col.detector_id, col.variant, n_real, n_fake, before, after, losses)
    full = np.full(len(y), np.nan)
    full[ok] = oof[best]
    return cal, full


# --------------------------------------------------------------------------------------------- fusion

def _fit_stacker(cols: Sequence[ScoreColumn], cals: Mapping[str, DetectorCalibration], oof: Mapping[str, np.ndarray],
                 y: np.ndarray, target_fpr: float | None) -> Stacker | None:
    """Cross-validate (calibrators refitted in each outer fold) and fit the learned fusion on out-of-fold logits."""
    keys = [c.key for c in cols if c.key in cals]
    if len(keys) < 2:
        return None
    raw = np.column_stack([np.asarray(c.logit, dtype=np.float64) for c in cols if c.key in cals])
    rows = np.isfinite(raw).any(axis=1)
    raw, yy = raw[rows], y[rows]
    stacked = np.empty(len(yy))
    for tr, te in folds(yy):
        z_tr, z_te = np.full((len(tr), len(keys)), np.nan), np.full((len(te), len(keys)), np.nan)
        for j, k in enumerate(keys):
            fit_rows = tr[np.isfinite(raw[tr, j])]
            if len(set(yy[fit_rows].tolist())) < 2:
                continue                      # this detector is "missing" in this fold
            cal = fit_calibrator(raw[fit_rows, j], yy[fit_rows], cals[k].calibrator.method)
            z_tr[:, j] = calibrated_logit(cal.predict(raw[tr, j]))
            z_te[:, j] = calibrated_logit(cal.predict(raw[te, j]))
        coef, icpt = fit_logistic(z_tr, yy[tr])
        stacked[te] = Stacker(tuple(keys), tuple(coef[:len(keys)]), tuple(coef[len(keys):]), icpt, 0.5, None, None,
                              None, len(tr)).predict_many(z_te)
    m = measures(yy, stacked)
    thr, _ = choose_threshold(yy, stacked, target_fpr)
    z_oof = np.column_stack([calibrated_logit(oof[k][rows]) for k in keys])
    coef, icpt = fit_logistic(z_oof, yy)
    return Stacker(tuple(keys), tuple(map(float, coef[:len(keys)])), tuple(map(float, coef[len(keys):])), icpt, thr,
                   m["auc"], m["log_loss"], m["ece"], int(len(yy)))


# --------------------------------------------------------------------------------------------- the original vote

def vote_margins(p_fake: Mapping[str, np.ndarray], thresholds: Mapping[str, float], detector_ids: Mapping[str, str],
                 config: EnsembleConfig) -> np.ndarray:
    """The original app's weighted vote on every row, as ``votes_fake - votes_real`` (NaN: no detector scored).

    Computed by :func:`core.verdict.ensemble.ensemble` itself, so it is exactly the vote the app shows.
    """
    keys = list(p_fake)
    n = len(next(iter(p_fake.values()))) if keys else 0
    out = np.full(n, np.nan)
    for i in range(n):
        res = []
        for k in keys:
            p = float(p_fake[k][i])
            if math.isfinite(p):
                thr = thresholds[k]
                res.append(DetectionResult(detector_ids[k], k.partition(":")[2] or "original", float("nan"), p,
                                           "fake" if p > thr else "real", thr, 0.0, (0, 0), (0, 0), None, False, ""))
        if res:
            e = ensemble(res, config)
            out[i] = e.votes_fake - e.votes_real
    return out


def _vote_metrics(y: np.ndarray, margin: np.ndarray) -> dict[str, Any] | None:
    ok = np.isfinite(margin)
    if not ok.any() or len(set(y[ok].tolist())) < 2:
        return None
    pred = np.where(margin[ok] > 0, 1, np.where(margin[ok] < 0, 0, -1))       # a tie is UNCERTAIN: never right
    return {"auc": float(roc_auc_score(y[ok], margin[ok])),
            "balanced_accuracy": _balanced(y[ok], pred),
            "n": int(ok.sum()), "note": "nothing is fitted: measured on every image"}


def _balanced(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean of fake recall and real recall; an UNCERTAIN verdict (-1) counts as a miss."""
    return float((np.mean(pred[y == 1] == 1) + np.mean(pred[y == 0] == 0)) / 2.0)


# --------------------------------------------------------------------------------------------- the profile

def fit_profile(y: Sequence[int] | np.ndarray, columns: Sequence[ScoreColumn], *, method: str = "auto",
                target_fpr: float | None = None, dataset: Mapping[str, Any] | None = None,
                vote_margin: np.ndarray | None = None) -> Profile:
    """Fit a calibration profile.

    Args:
        y: labels, 1 = fake, 0 = real, one per row.
        columns: the score sources, each aligned with ``y``.
        method: "auto" (lower cross-validated log-loss of Platt and isotonic), "platt" or "isotonic".
        target_fpr: choose thresholds reaching this false-positive rate instead of maximum balanced accuracy.
        dataset: provenance of the data (name, fingerprint, kind), stored in the profile.
        vote_margin: the original weighted vote per row (:func:`vote_margins`), to report its AUC beside the rest.

    Returns:
        The :class:`~core.verdict.calibration.Profile`. A source with too few scored images of a class is left out
        with a note.

    Raises:
        ProfileError: no source could be calibrated, or a bad argument.
    """
    if method not in ("auto", *METHODS):
        raise ProfileError(f"--method must be auto, platt or isotonic (got {method!r}).")
    if target_fpr is not None and not 0.0 < target_fpr < 1.0:
        raise ProfileError(f"--target-fpr must be strictly between 0 and 1 (got {target_fpr}).")
    yy = np.asarray(y, dtype=np.int64)
    if not np.isin(yy, (0, 1)).all():
        raise ProfileError("labels must be 0 (real) or 1 (fake).")
    cals: dict[str, DetectorCalibration] = {}
    oof: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for col in columns:
        if len(col.logit) != len(yy):
            raise ProfileError(f"{col.key}: {len(col.logit)} scores for {len(yy)} labels.")
        try:
            cals[col.key], oof[col.key] = _fit_column(col, yy, method, target_fpr)
        except ProfileError as exc:
            notes.append(f"left out: {exc}")
    if not cals:
        raise ProfileError("no score source could be calibrated: " + " ".join(notes or ["no score columns."]))
    stacker = _fit_stacker(columns, cals, oof, yy, target_fpr)
    prov = {**dict(dataset or {}), "n": int(len(yy)), "n_real": int((yy == 0).sum()), "n_fake": int(yy.sum()),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "method": method,
            "target_fpr": target_fpr, "cross_validation": f"stratified {FOLDS}-fold (seed {SEED}); fewer folds "
                                                           "when a class is small"}
    vote = _vote_metrics(yy, vote_margin) if vote_margin is not None else None
    return Profile(cals, stacker, prov, vote, tuple(notes))


def profile_table(profile: Profile) -> list[dict[str, Any]]:
    """Rows for calibrate's table: each source (AUC, ECE before → after, threshold), the learned fusion and the
    original vote."""
    rows = []
    for k, c in profile.detectors.items():
        rows.append({"source": k, "method": c.calibrator.method, "n": c.n_real + c.n_fake, "auc": c.before.get("auc"),
                     "ece_before": c.before.get("ece"), "ece_after": c.after.get("ece"), "threshold": c.threshold})
    if profile.stacker is not None:
        s = profile.stacker
        rows.append({"source": "learned fusion (stacked, cross-validated)", "method": "logistic", "n": s.n,
                     "auc": s.cv_auc, "ece_before": None, "ece_after": s.cv_ece, "threshold": s.threshold})
    if profile.vote:
        rows.append({"source": "weighted vote of the original app", "method": "vote", "n": profile.vote["n"],
                     "auc": profile.vote["auc"], "ece_before": None, "ece_after": None, "threshold": None})
    return rows


__all__ = ["ScoreColumn", "fit_profile", "fit_calibrator", "choose_threshold", "vote_margins", "profile_table",
           "ece", "measures", "fingerprint", "folds", "MIN_PER_CLASS"]
