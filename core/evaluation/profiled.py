"""Calibration profiles meet evaluation runs: fit a profile from a run's scores, or add a profile's calibrated and
stacked columns to a run.

* :func:`fit_from_run` turns an :class:`~core.evaluation.records.EvalRun` (our detectors' scores on a labelled
  folder, or the score columns of a predictions CSV from any tool) into a calibration profile
  (:func:`core.verdict.fitting.fit_profile`), with the original weighted vote measured beside it.
* :func:`apply_profile` adds ``<key>_calibrated`` columns (kind ``calibrated``) and a ``stacked`` column (kind
  ``stacked``) to a run, so predictions.csv, metrics.json and the Evaluation page show them with every metric.

Example:
    >>> run = evaluate(from_folder("eval/"), dets)
    >>> profile = fit_from_run(run)
    >>> run2, notes = apply_profile(run, profile)
    >>> [s.key for s in run2.sources][-2:]
    ['NPR:original_calibrated', 'stacked']
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from core.convert import safe_logit
from core.errors import DeepfakeLensError, ProfileError
from core.evaluation.records import EvalRun, SourceInfo
from core.models.registry import get_spec
from core.verdict.calibration import Profile
from core.verdict.ensemble import load_config
from core.verdict.fitting import ScoreColumn, fingerprint, fit_profile, vote_margins
from core.verdict.stacking import calibrated_logit

SCORE_KINDS = ("detector", "external")
STACKED_KEY = "stacked"


def _labelled(run: EvalRun) -> np.ndarray:
    return np.array([r.status == "ok" and r.label is not None for r in run.rows], dtype=bool)


def _spec_of(key: str):  # noqa: ANN202 - DetectorSpec or None
    try:
        return get_spec(key)
    except DeepfakeLensError:
        return None


def score_columns(run: EvalRun, column_weights: Mapping[str, str] | None = None) -> list[ScoreColumn]:
    """One :class:`ScoreColumn` per detector or CSV score source of the run (labelled rows only).

    Args:
        run: the evaluation.
        column_weights: CSV column key → weights sha256 (a predictions CSV carries no weights; the analyst names
            them with ``--weights``), so the calibration can apply to that detector later.
    """
    ok = _labelled(run)
    cols = []
    for src in run.sources:
        if src.kind not in SCORE_KINDS:
            continue
        spec = _spec_of(src.key) if src.kind == "external" else None
        sha = src.weights_sha256 if src.kind == "detector" else (column_weights or {}).get(src.key)
        cols.append(ScoreColumn(src.key, np.asarray(run.logit[src.key], dtype=np.float64)[ok], sha,
                                src.detector_id or (spec.id if spec else ""),
                                src.variant or (spec.variant if spec else "")))
    return cols


def _vote(run: EvalRun, ok: np.ndarray) -> np.ndarray | None:
    """The original weighted vote per labelled row, over the sources that are registered detectors with a weight."""
    cfg = load_config()
    p, thr, ids = {}, {}, {}
    for src in run.sources:
        if src.kind not in SCORE_KINDS:
            continue
        spec = _spec_of(src.key)
        if spec is None or spec.id not in cfg.weights:
            continue
        p[src.key], thr[src.key], ids[src.key] = np.asarray(run.p_fake[src.key])[ok], src.threshold, spec.id
    return vote_margins(p, thr, ids, cfg) if p else None


def fit_from_run(run: EvalRun, *, method: str = "auto", target_fpr: float | None = None,
                 column_weights: Mapping[str, str] | None = None) -> Profile:
    """Fit a calibration profile on a run's labelled, scored rows.

    Raises:
        ProfileError: no labelled image, or no source could be calibrated.
    """
    ok = _labelled(run)
    if not ok.any():
        raise ProfileError("no labelled image was scored: nothing to calibrate on.")
    rows = [r for r, k in zip(run.rows, ok) if k]
    y = np.array([r.label for r in rows], dtype=np.int64)
    dataset = {"name": run.dataset_name, "kind": run.dataset_kind,
               "fingerprint": fingerprint([r.sha256 or r.path for r in rows], y.tolist())}
    return fit_profile(y, score_columns(run, column_weights), method=method, target_fpr=target_fpr, dataset=dataset,
                       vote_margin=_vote(run, ok))


def apply_profile(run: EvalRun, profile: Profile) -> tuple[EvalRun, tuple[str, ...]]:
    """A copy of the run with the profile's calibrated columns and its learned fusion added.

    Our detectors' columns are calibrated only when their weights match the profile; a predictions CSV column is
    matched by name. Returns the new run and one note per source (applied or not, and why).
    """
    logit, prob = dict(run.logit), dict(run.p_fake)
    sources, unscored = list(run.sources), dict(run.unscored)
    notes, calibrated = [], {}
    for src in run.sources:
        if src.kind not in SCORE_KINDS:
            continue
        p, why = profile.calibrate_column(src.key, np.asarray(run.logit[src.key]), src.weights_sha256,
                                          by_column=src.kind == "external")
        if p is None:
            if src.key in profile.detectors:
                notes.append(f"{src.key}: calibration not applied: {why}.")
            continue
        key = f"{src.key}_calibrated"
        cal = profile.detectors[src.key]
        calibrated[src.key] = p
        logit[key], prob[key] = np.asarray(calibrated_logit(p)), p
        unscored[key] = {}
        sources.append(SourceInfo(key=key, kind="calibrated", name=f"{src.name} (calibrated)",
                                  threshold=cal.threshold, detector_id=src.detector_id, variant=src.variant,
                                  weights_sha256=src.weights_sha256, note=f"{cal.calibrator.method} calibration "
                                  f"of {src.key} from profile {profile.name}; threshold: {cal.threshold_rule}"))
        notes.append(f"{src.key}: calibrated ({cal.calibrator.method}).")
    st = profile.stacker
    if st is not None and any(k in calibrated for k in st.inputs):
        z = np.column_stack([calibrated_logit(calibrated[k]) if k in calibrated else np.full(len(run.rows), np.nan)
                             for k in st.inputs])
        p = st.predict_many(z)
        logit[STACKED_KEY], prob[STACKED_KEY] = np.asarray(safe_logit(np.nan_to_num(p, nan=0.5))), p
        logit[STACKED_KEY][~np.isfinite(p)] = np.nan
        unscored[STACKED_KEY] = {}
        present = [k for k in st.inputs if k in calibrated]
        sources.append(SourceInfo(key=STACKED_KEY, kind="stacked", name="Learned fusion (stacked, calibrated)",
                                  threshold=st.threshold, note=f"logistic regression over the calibrated logits of "
                                  f"{', '.join(present)} (profile {profile.name}; its cross-validated AUC when "
                                  f"fitted: {st.cv_auc:.4f})" if st.cv_auc is not None else ""))
        notes.append(f"learned fusion: {len(present)} of its {len(st.inputs)} inputs present.")
    for arr in (*logit.values(), *prob.values()):
        arr.setflags(write=False)
    run2 = dataclasses.replace(run, sources=tuple(sources), logit=logit, p_fake=prob, unscored=unscored,
                               notes=run.notes + tuple(f"profile {profile.name}: {n}" for n in notes))
    return run2, tuple(notes)


__all__ = ["fit_from_run", "apply_profile", "score_columns", "STACKED_KEY"]
