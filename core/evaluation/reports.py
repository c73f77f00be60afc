"""From a run to numbers and files: metrics per source (overall and per group), predictions.csv, metrics.json.
"""

from datetime import datetime, timezone
from typing import Any

import numpy as np

from core.convert import to_jsonable
from core.evaluation.metrics import BinaryMetrics, binary_metrics
from core.evaluation.records import EvalReport, EvalRun, SourceReport
from core.verdict.calibration import Profile
from core.verdict.fitting import profile_table
from core.versions import library_versions


def _metrics(run: EvalRun, key: str, mask: np.ndarray, threshold: float | None) -> BinaryMetrics:
    labels = np.array([-1 if r.label is None else r.label for r in run.rows])
    p = run.p_fake[key]
    ok_rows = mask & (labels >= 0)
    scored = ok_rows & np.isfinite(p)
    src = run.source(key)
    z = run.logit[key][scored]
    if not np.isfinite(z).all():
        z = None
    y_pred = None
    if src.kind == "ensemble" and run.verdict is not None:
        y_pred = run.verdict[scored]
    return binary_metrics(labels[scored], p[scored], threshold=0.5 if threshold is None else threshold, logit=z,
                          y_pred=y_pred, probabilistic=src.probabilistic,
                          n_unscored=int(ok_rows.sum() - scored.sum()))


def compute_report(run: EvalRun, threshold: float | None = None, *, per_group: bool = True) -> EvalReport:
    """Metrics of every source, overall and per group.

    Args:
        run: the evaluation.
        threshold: one p_fake threshold for every source; None = each source's own (detector YAML; 0.5 for CSV
            columns). The ensemble always uses its verdict for threshold metrics.
        per_group: also compute per-group metrics. A group holding only one class is evaluated against the
            other class's images that have no group (e.g. ``fake/stylegan`` vs the shared ``real/``), with a note.

    Returns:
        An :class:`EvalReport`; only rows with status ``ok`` and a label count.
    """
    ok = np.array([r.status == "ok" and r.label is not None for r in run.rows], dtype=bool)
    groups = sorted({r.group for r in run.rows if r.status == "ok" and r.label is not None and r.group})
    group_of = np.array([r.group for r in run.rows], dtype=object)
    labels = np.array([-1 if r.label is None else r.label for r in run.rows])
    out: dict[str, SourceReport] = {}
    for src in run.sources:
        thr = None if src.kind == "ensemble" else (src.threshold if threshold is None else threshold)
        overall = _metrics(run, src.key, ok, thr)
        per: dict[str, BinaryMetrics] = {}
        gnotes: dict[str, str] = {}
        if per_group and groups:
            for g in groups:
                gmask = ok & (group_of == g)
                classes = set(labels[gmask].tolist())
                note = ""
                if len(classes) == 1:
                    other = 1 - next(iter(classes))
                    extra = ok & (group_of == "") & (labels == other)
                    if extra.any():
                        gmask = gmask | extra
                        note = (f"{g} ({'fake' if other == 0 else 'real'} images) vs the {int(extra.sum())} "
                                f"ungrouped {'real' if other == 0 else 'fake'} images")
                per[g] = _metrics(run, src.key, gmask, thr)
                if note:
                    gnotes[g] = note
        out[src.key] = SourceReport(src, overall, per, gnotes, thr)
    return EvalReport(out, threshold)


# --------------------------------------------------------------------------------------------- exports

def predictions_frame(run: EvalRun, threshold: float | None = None):
    """One row per input file: path, label, group, status, reason, sha256, then per source ``<key>_logit`` and
    ``<key>_p_fake`` (and ``ensemble_verdict``). Returns a pandas DataFrame."""
    import pandas as pd
    data: dict[str, Any] = {
        "path": [r.path for r in run.rows],
        "label": [{0: "real", 1: "fake"}.get(r.label, "") for r in run.rows],
        "group": [r.group for r in run.rows],
        "status": [r.status for r in run.rows],
        "reason": [r.reason for r in run.rows],
        "sha256": [r.sha256 for r in run.rows],
    }
    extra_reason = [[] for _ in run.rows]
    for src in run.sources:
        data[f"{src.key}_logit"] = run.logit[src.key]
        data[f"{src.key}_p_fake"] = run.p_fake[src.key]
        for i, why in run.unscored.get(src.key, {}).items():
            if src.kind != "ensemble":
                extra_reason[i].append(f"{src.key}: {why}")
        if src.kind == "ensemble" and run.verdict is not None:
            data["ensemble_verdict"] = [{1: "FAKE", 0: "REAL", -1: "UNCERTAIN"}.get(int(v), "") for v in run.verdict]
    data["reason"] = [("; ".join([r] + e) if r else "; ".join(e)) for r, e in zip(data["reason"], extra_reason)]
    return pd.DataFrame(data)


def metrics_json(run: EvalRun, report: EvalReport, profile: Profile | None = None) -> dict[str, Any]:
    """The metrics file: run facts, per source its identity (ids, weights sha256, threshold, preprocessing) and
    metrics overall and per group, and the library versions. JSON-ready (no NaN).

    With the calibration ``profile`` applied to the run (:func:`core.evaluation.profiled.apply_profile`), the
    ``<key>_calibrated`` and ``stacked`` sources are among ``detectors`` and ``calibration_profile`` adds the
    profile's provenance and its cross-validated table from fitting time (each source, the learned fusion,
    the original vote), so the numbers measured here can be read beside those."""
    c = run.counts()
    labelled = [r for r in run.rows if r.status == "ok"]
    doc = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": {"name": run.dataset_name, "kind": run.dataset_kind, "files": len(run.rows), "by_status": c,
                    "real": sum(r.label == 0 for r in labelled), "fake": sum(r.label == 1 for r in labelled),
                    "groups": sorted({r.group for r in labelled if r.group})},
        "threshold": report.threshold if report.threshold is not None else "per detector",
        "run": {"cancelled": run.cancelled, "elapsed_s": round(run.elapsed_s, 3), "computed": run.computed,
                "from_cache": run.from_cache, "batch_size": run.batch_size, "notes": list(run.notes)},
        "detectors": {},
        "versions": library_versions(),
    }
    for key, sr in report.sources.items():
        doc["detectors"][key] = {
            **sr.source.to_dict(), "threshold": sr.threshold,
            "metrics": sr.overall.to_dict(),
            "groups": {g: {**m.to_dict(), **({"note": sr.group_notes[g]} if g in sr.group_notes else {})}
                       for g, m in sr.groups.items()},
        }
    if profile is not None:
        doc["calibration_profile"] = {"name": profile.name, "provenance": dict(profile.provenance),
                                      "cross_validated_when_fitted": profile_table(profile),
                                      "notes": list(profile.notes)}
    return to_jsonable(doc)
