"""Run detectors over a labelled dataset, cache every score, and turn the scores into metrics and exports.

Scores are cached on disk by (image sha256, detector key, weights sha256 [+ backbone], preprocessing description),
so re-running an evaluation, adding a detector, or changing a threshold never recomputes a forward pass.
Predictions made elsewhere (a CSV with one or more score columns) are evaluated the same way, with or without
our detectors.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from core import settings
from core.convert import safe_logit, sigmoid, to_jsonable
from core.errors import BadImage
from core.evaluation.datasets import (
    _ID_COLUMNS,
    _LABEL_COLUMNS,
    Dataset,
    DatasetError,
    Item,
    find_column,
    parse_label,
    read_csv_rows,
    sanitize_name,
)
from core.evaluation.metrics import BinaryMetrics, binary_metrics
from core.versions import library_versions

__all__ = ["ScoreCache", "SourceInfo", "Row", "EvalRun", "EvalReport", "SourceReport", "ExternalScores",
           "evaluate", "compute_report", "read_predictions", "predictions_frame", "metrics_json", "cache_dir",
           "detector_fingerprint", "ENSEMBLE_KEY", "CACHE_VERSION"]

CACHE_VERSION = 1          # bump when a detector's scoring changes in a way its spec/weights do not show
ENSEMBLE_KEY = "ensemble"
Progress = Callable[[int, int, "float | None"], None]     # (done, total, eta seconds or None)


# --------------------------------------------------------------------------------------------- cache

def cache_dir() -> Path:
    """Score cache folder: ``$DEEPFAKE_LENS_CACHE`` or ``~/.cache/deepfake-lens/scores``."""
    return settings.score_cache_dir()


class ScoreCache:
    """An sqlite table of scores keyed by (image sha256, detector key, weights fingerprint, preprocessing).

    Safe to share between threads and processes (one short-lived connection per call, WAL journal). Any
    failure to open or write the cache turns it off with a note instead of failing the evaluation.

    Example:
        >>> cache = ScoreCache()          # ~/.cache/deepfake-lens/scores/scores.sqlite
        >>> cache.get_many(fingerprint, ["<sha256>"])
        {}
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.path = Path(folder).expanduser() / "scores.sqlite" if folder is not None else cache_dir() / "scores.sqlite"
        self.problem: str = ""
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as con:
                con.execute("CREATE TABLE IF NOT EXISTS scores (image TEXT, detector TEXT, weights TEXT, prep TEXT, "
                            "value TEXT, PRIMARY KEY (image, detector, weights, prep))")
        except (OSError, sqlite3.Error) as exc:
            self.problem = f"score cache disabled ({self.path}: {exc})"

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=10)
        try:
            con.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error:
            pass
        return con

    @property
    def enabled(self) -> bool:
        return not self.problem

    def get_many(self, fp: tuple[str, str, str], images: Sequence[str]) -> dict[str, dict]:
        """Cached values for these image hashes under one detector fingerprint (missing ones are absent)."""
        if not self.enabled or not images:
            return {}
        out: dict[str, dict] = {}
        try:
            with self._lock, self._connect() as con:
                for s in range(0, len(images), 500):
                    chunk = list(images[s:s + 500])
                    q = ("SELECT image, value FROM scores WHERE detector=? AND weights=? AND prep=? AND image IN "
                         f"({','.join('?' * len(chunk))})")
                    for image, value in con.execute(q, (*fp, *chunk)):
                        out[image] = json.loads(value)
        except (sqlite3.Error, ValueError) as exc:
            self.problem = f"score cache disabled ({exc})"
            return {}
        return out

    def put_many(self, fp: tuple[str, str, str], values: Mapping[str, dict]) -> None:
        """Store values for image hashes under one detector fingerprint."""
        if not self.enabled or not values:
            return
        try:
            with self._lock, self._connect() as con:
                con.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?)",
                                [(img, *fp, json.dumps(v)) for img, v in values.items()])
        except sqlite3.Error as exc:
            self.problem = f"score cache disabled ({exc})"


def detector_fingerprint(det: Any) -> tuple[str, str, str]:
    """(detector key, weights fingerprint, preprocessing description) — the cache key besides the image hash."""
    from core.models.preprocess import describe
    spec = det.spec
    weights = f"{det.weights_sha256 or 'none'}+{det.backbone_sha256 or 'none'}"
    prep = (f"v{CACHE_VERSION}|{describe(spec.preprocess)}|"
            f"{json.dumps(spec.options, sort_keys=True, default=str)}")
    return spec.key, weights, prep


# --------------------------------------------------------------------------------------------- data types

@dataclass(frozen=True)
class SourceInfo:
    """A column of scores: one of our detectors, the ensemble, or a column of a predictions CSV."""

    key: str                               # "NPR:original", "ensemble", or the CSV column's name
    kind: str                              # detector | ensemble | external
    name: str                              # shown to the user
    threshold: float = 0.5                 # default p_fake threshold (the detector's own)
    detector_id: str = ""
    variant: str = ""
    weights_sha256: str | None = None
    backbone_sha256: str | None = None
    preprocessing: str = ""
    probabilistic: bool = True             # False: scores are not calibrated probabilities (ECE is n/a)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Row:
    """One input file in the results (a dataset item after the run)."""

    path: str
    label: int | None
    group: str
    status: str                            # ok | unlabelled | skipped | error | cancelled
    reason: str
    sha256: str = ""


@dataclass(frozen=True)
class EvalRun:
    """Everything an evaluation produced. Scores are arrays aligned with ``rows`` (NaN = no score)."""

    dataset_name: str
    dataset_kind: str
    rows: tuple[Row, ...]
    sources: tuple[SourceInfo, ...]
    logit: Mapping[str, np.ndarray]        # source key → logit per row
    p_fake: Mapping[str, np.ndarray]       # source key → P(fake) per row
    unscored: Mapping[str, Mapping[int, str]]   # source key → row index → why an ok row has no score
    verdict: np.ndarray | None = None      # ensemble verdict per row: 1 fake, 0 real, -1 uncertain, -2 none
    thumbnails: Mapping[int, bytes] = field(default_factory=dict)   # row index → small JPEG
    cancelled: bool = False
    elapsed_s: float = 0.0
    computed: int = 0                      # (image, detector) pairs run through a model
    from_cache: int = 0                    # (image, detector) pairs read from the cache
    notes: tuple[str, ...] = ()
    batch_size: int = 8

    def source(self, key: str) -> SourceInfo:
        return next(s for s in self.sources if s.key == key)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("ok", "unlabelled", "skipped", "error", "cancelled")}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out


@dataclass(frozen=True)
class SourceReport:
    """Metrics of one source: overall and per group."""

    source: SourceInfo
    overall: BinaryMetrics
    groups: Mapping[str, BinaryMetrics]
    group_notes: Mapping[str, str]         # group → how it was evaluated (e.g. paired with the ungrouped reals)
    threshold: float | None                # p_fake threshold used (None for the ensemble's verdict)


@dataclass(frozen=True)
class EvalReport:
    """Metrics of every source at one threshold setting."""

    sources: Mapping[str, SourceReport]
    threshold: float | None                # the global threshold (None: each detector's own)


@dataclass(frozen=True)
class ExternalScores:
    """Score columns from a predictions CSV, keyed by the CSV's path/id cell (sanitised)."""

    sources: tuple[SourceInfo, ...]
    ids: tuple[str, ...]                   # one per CSV row
    logit: Mapping[str, np.ndarray]        # source key → per CSV row
    p_fake: Mapping[str, np.ndarray]


# --------------------------------------------------------------------------------------------- predictions CSV

_META_COLUMNS = {"group", "status", "reason", "sha256", "verdict", "ensemble_verdict"}


def _score_columns(cols: Sequence[str], rows: list[dict[str, str]], skip: set[str]) -> list[tuple[str, str | None, str | None]]:
    """(source name, p column, logit column) for every numeric column (pairs ``X_logit``/``X_p_fake`` join)."""
    def numeric(c: str) -> bool:
        vals = [r.get(c, "") for r in rows]
        ok = 0
        for v in vals:
            if v == "":
                continue
            try:
                float(v)
                ok += 1
            except ValueError:
                return False
        return ok > 0
    cand = [c for c in cols if c not in skip and c not in _META_COLUMNS and numeric(c)]
    out: list[tuple[str, str | None, str | None]] = []
    used: set[str] = set()
    for c in cand:
        if c in used:
            continue
        for suf in ("_p_fake", " p_fake", ".p_fake"):
            if c.endswith(suf):
                stem = c[: -len(suf)]
                lg = next((stem + s for s in ("_logit", " logit", ".logit") if stem + s in cand), None)
                out.append((stem, c, lg))
                used.update({c, lg} - {None})
                break
        else:
            for suf in ("_logit", " logit", ".logit"):
                if c.endswith(suf):
                    stem = c[: -len(suf)]
                    pc = next((stem + s for s in ("_p_fake", " p_fake", ".p_fake") if stem + s in cand), None)
                    out.append((stem, pc, c))
                    used.update({c, pc} - {None})
                    break
            else:
                out.append((c, c, None))
                used.add(c)
    return out


def read_predictions(src: str | Path | bytes, *, name: str = "predictions CSV") -> tuple[Dataset, ExternalScores]:
    """A predictions CSV from any tool → (rows as a dataset without image data, its score columns).

    Columns: an id (``path``/``id``/``file``/…), a ``label`` (real/fake/0/1), optionally ``group``, and one or
    more numeric score columns (higher = more likely fake). ``X_p_fake``/``X_logit`` pairs (this tool's own
    predictions.csv) form one source. A column with values only in [0, 1] is read as P(fake); any other column
    as a logit-like score (sigmoid applied; its ECE is n/a).

    Raises:
        DatasetError: no id/label column, or no numeric score column.
    """
    rows = read_csv_rows(src)
    if not rows:
        raise DatasetError("the predictions CSV has no rows.")
    cols = list(rows[0])
    id_col, label_col = find_column(cols, _ID_COLUMNS), find_column(cols, _LABEL_COLUMNS)
    if id_col is None or label_col is None:
        raise DatasetError("the predictions CSV needs an id/path column and a label column "
                           f"(found: {', '.join(cols)}).")
    specs = _score_columns(cols, rows, {id_col, label_col})
    if not specs:
        raise DatasetError("the predictions CSV has no numeric score column.")
    items, ids = [], []
    for i, r in enumerate(rows):
        clean, _ = sanitize_name(r.get(id_col, ""))
        shown = clean or r.get(id_col, "") or f"row {i + 2}"
        label = parse_label(r.get(label_col))
        status = r.get("status", "") if r.get("status", "") in ("skipped", "error", "unlabelled", "cancelled") \
            else ("ok" if label is not None else "unlabelled")
        reason = r.get("reason", "") if status != "ok" else ""
        if status == "unlabelled" and not reason:
            reason = f"label {r.get(label_col)!r} is not real/fake/0/1" if r.get(label_col) else "no label"
        items.append(Item(shown, label, r.get("group", ""), status, reason))
        ids.append(shown)
    sources, logits, probs = [], {}, {}

    def col(c: str | None) -> np.ndarray | None:
        if c is None:
            return None
        out = np.full(len(rows), np.nan)
        for i, r in enumerate(rows):
            try:
                out[i] = float(r.get(c, "")) if r.get(c, "") != "" else np.nan
            except ValueError:
                pass
        out[~np.isfinite(out)] = np.nan
        return out

    for stem, pc, lc in specs:
        p, z = col(pc), col(lc)
        note, prob = "", True
        if p is not None and z is None:
            fin = p[np.isfinite(p)]
            if fin.size and (fin.min() < 0 or fin.max() > 1):
                z, p = p, sigmoid(p)
                prob = False
                note = "values outside [0, 1]: read as a logit-like score (sigmoid applied); ECE not defined"
        elif p is None and z is not None:
            p = sigmoid(z)
        key = stem if stem not in (ENSEMBLE_KEY,) else f"{stem} (CSV)"
        sources.append(SourceInfo(key=key, kind="external", name=f"{stem} (CSV)", threshold=0.5,
                                  probabilistic=prob, note=note))
        probs[key] = np.asarray(p, dtype=np.float64)
        logits[key] = np.asarray(z, dtype=np.float64) if z is not None else \
            np.where(np.isfinite(p), safe_logit(np.nan_to_num(p, nan=0.5)), np.nan)
    ds = Dataset(name, "predictions", tuple(items), ())
    return ds, ExternalScores(tuple(sources), tuple(ids), logits, probs)


def _match_external(rows: Sequence[Item], ext: ExternalScores) -> tuple[np.ndarray, str]:
    """Index into the CSV rows for every dataset row (-1 = not in the CSV), by path, else by unique file name."""
    by_path = {}
    for j, i in enumerate(ext.ids):
        by_path.setdefault(i, j)
    base_count: dict[str, int] = {}
    for i in ext.ids:
        b = PurePosixPath(i).name
        base_count[b] = base_count.get(b, 0) + 1
    by_base = {PurePosixPath(i).name: j for j, i in enumerate(ext.ids) if base_count[PurePosixPath(i).name] == 1}
    idx = np.full(len(rows), -1, dtype=np.int64)
    for k, r in enumerate(rows):
        j = by_path.get(r.path)
        if j is None:
            j = by_base.get(PurePosixPath(r.path).name)
        if j is not None:
            idx[k] = j
    n_ok = sum(1 for r in rows if r.status == "ok")
    n_hit = sum(1 for k, r in enumerate(rows) if r.status == "ok" and idx[k] >= 0)
    note = f"predictions CSV matched {n_hit} of {n_ok} images" if n_hit < n_ok else ""
    return idx, note


# --------------------------------------------------------------------------------------------- running

def _cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _thumbnail(image: Any, size: int) -> bytes | None:
    try:
        im = image.copy()
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="JPEG", quality=80)
        return buf.getvalue()
    except Exception:  # noqa: BLE001 - a thumbnail is decoration; never fail the run for it
        return None


def _fast_thumbnail(data: bytes, size: int) -> bytes | None:
    """A thumbnail without a full decode where the format allows it (JPEG draft mode)."""
    try:
        from PIL import Image, ImageOps
        im = Image.open(io.BytesIO(data))
        if im.width * im.height > 100_000_000:
            return None
        im.draft("RGB", (size * 2, size * 2))
        im = ImageOps.exif_transpose(im)
        return _thumbnail(im, size)
    except Exception:  # noqa: BLE001
        return None


def _result_value(r: Any) -> dict:
    """What the cache keeps of a DetectionResult (enough to rebuild it for metrics and the ensemble)."""
    return {"logit": None if math.isnan(r.logit) else r.logit, "p_fake": None if math.isnan(r.p_fake) else r.p_fake,
            "label": r.label, "elapsed_s": r.elapsed_s, "image_size": list(r.image_size),
            "input_size": list(r.input_size), "crop_box": list(r.crop_box) if r.crop_box else None,
            "resized": r.resized, "message": str(r.details.get("message", "")) if r.details else ""}


def _label(v: dict, threshold: float) -> str:
    """The verdict at the detector's *current* threshold (a YAML threshold change must not reuse stale labels)."""
    if v.get("p_fake") is None:
        return v.get("label") or "no_face"
    return "fake" if float(v["p_fake"]) > threshold else "real"


def _from_value(v: dict, det: Any) -> Any:
    from core.results import DetectionResult
    nan = float("nan")
    return DetectionResult(
        detector_id=det.spec.id, variant=det.spec.variant,
        logit=nan if v.get("logit") is None else float(v["logit"]),
        p_fake=nan if v.get("p_fake") is None else float(v["p_fake"]),
        label=_label(v, det.spec.threshold), threshold=det.spec.threshold, elapsed_s=float(v.get("elapsed_s", 0.0)),
        image_size=tuple(v.get("image_size", (0, 0))), input_size=tuple(v.get("input_size", (0, 0))),
        crop_box=tuple(v["crop_box"]) if v.get("crop_box") else None, resized=bool(v.get("resized", False)),
        preprocessing="", weights_sha256=det.weights_sha256,
        details={"message": v["message"]} if v.get("message") else {})


def _score_one(det: Any, images: list[Any], batch_size: int) -> list[dict]:
    """Score images with one detector; a failure on one image becomes that image's error, never the batch's."""
    try:
        return [_result_value(r) for r in det.predict_batch(images, batch_size=batch_size)]
    except Exception:  # noqa: BLE001 - isolate the offending image below
        pass
    out = []
    for img in images:
        try:
            out.append(_result_value(det.predict(img)))
        except BadImage as exc:
            out.append({"error": exc.why})
        except Exception as exc:  # noqa: BLE001 - one image must never stop the run
            # not a property of the image (e.g. out of memory): reported, but never cached
            out.append({"error": f"{type(exc).__name__}: {str(exc)[:200]}", "transient": True})
    return out


def evaluate(dataset: Dataset, detectors: Sequence[Any] = (), *, batch_size: int = 8,
             progress: Progress | None = None, cancel: Any = None, cache: ScoreCache | None | bool = True,
             ensemble: bool | None = None, external: ExternalScores | None = None,
             thumbnails: int | None = None, cache_only: bool = False) -> EvalRun:
    """Score every ``ok`` item of a dataset with each detector (and optionally the ensemble).

    Args:
        dataset: the labelled inputs (its rows are kept one-to-one in the result).
        detectors: loaded :class:`~core.models.detectors.base.Detector` objects (never mutated).
        batch_size: images per forward pass (``Detector.predict_batch``) and per progress step.
        progress: ``fn(done, total, eta_seconds)`` called after each batch (images done / images to score).
        cancel: a ``threading.Event`` or a callable returning True to stop; checked between batches. The rows
            not reached get status ``cancelled``; everything scored so far is kept (and cached).
        cache: a :class:`ScoreCache`, True for the default one, False/None for none.
        ensemble: combine the detectors with :func:`core.verdict.ensemble.ensemble` (default: when two or more ran).
        external: scores from a predictions CSV, matched to rows by path (else by unique file name).
        thumbnails: also keep a JPEG thumbnail of at most this many pixels per scored image.
        cache_only: never run a model; rows missing from the cache are ``cancelled`` (shows a partial run).

    Returns:
        An :class:`EvalRun`. Unreadable images are rows with status ``error`` and the BadImage reason.

    Example:
        >>> ds = from_folder("eval/")
        >>> run = evaluate(ds, [create_detector("NPR")], progress=lambda d, t, eta: print(d, t))
        >>> compute_report(run, threshold=0.5).sources["NPR:original"].overall.roc_auc
        0.93
    """
    t_start = time.perf_counter()
    store = ScoreCache() if cache is True else (cache or None)
    items = list(dataset.items)
    n = len(items)
    dets = list(detectors)
    fps = [detector_fingerprint(d) for d in dets]
    keys = [fp[0] for fp in fps]
    if len(set(keys)) != len(keys):
        raise ValueError("the same detector variant was given twice")
    logit = {k: np.full(n, np.nan) for k in keys}
    prob = {k: np.full(n, np.nan) for k in keys}
    unscored: dict[str, dict[int, str]] = {k: {} for k in keys}
    results: dict[int, list[Any]] = {}
    status = {i: (it.status, it.reason) for i, it in enumerate(items)}
    shas: dict[int, str] = {}
    thumbs: dict[int, bytes] = {}
    notes = list(dataset.notes)
    computed = cached = 0
    todo = [i for i, it in enumerate(items) if it.status == "ok"] if dets else []
    total, done, t_work = len(todo), 0, 0.0
    was_cancelled = False
    if progress:
        progress(0, total, None)
    for s in range(0, len(todo), max(1, batch_size)):
        if _cancelled(cancel):
            was_cancelled = True
            for i in todo[s:]:
                status[i] = ("cancelled", "the run was cancelled before this image")
            break
        t0 = time.perf_counter()
        batch = todo[s:s + batch_size]
        data: dict[int, bytes] = {}
        for i in batch:
            try:
                data[i] = dataset.read(items[i])
                shas[i] = hashlib.sha256(data[i]).hexdigest()
            except Exception as exc:  # noqa: BLE001 - corrupt zip member, vanished file...: that row's error
                why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
                status[i] = ("error", f"could not be read ({why})")
        live = [i for i in batch if i in data]
        hits = [store.get_many(fp, [shas[i] for i in live]) if store else {} for fp in fps]
        need_decode = [i for i in live if any(shas[i] not in h for h in hits)]
        images: dict[int, Any] = {}
        if not cache_only:
            from core.io import load_image
            for i in need_decode:
                try:
                    images[i] = load_image(data[i])
                except BadImage as exc:
                    status[i] = ("error", exc.why)
        for i in live:
            if thumbnails and status[i][0] == "ok":
                thumbs_i = _thumbnail(images[i], thumbnails) if i in images else _fast_thumbnail(data[i], thumbnails)
                if thumbs_i:
                    thumbs[i] = thumbs_i
        for d, (det, fp, hit) in enumerate(zip(dets, fps, hits)):
            key = fp[0]
            miss = [i for i in live if shas[i] not in hit and i in images]
            fresh: dict[str, dict] = {}
            if miss and not cache_only:
                vals = _score_one(det, [images[i] for i in miss], batch_size)
                computed += len(miss)
                fresh = {shas[i]: v for i, v in zip(miss, vals)}
                if store:
                    store.put_many(fp, {h: v for h, v in fresh.items() if not v.get("transient")})
            for i in live:
                if status[i][0] != "ok":
                    continue
                v = hit.get(shas[i]) or fresh.get(shas[i])
                if v is None:
                    status[i] = ("cancelled", "not in the score cache (the run was cancelled before this image)")
                    continue
                if shas[i] in hit:
                    cached += 1
                if "error" in v:
                    unscored[key][i] = v["error"]
                    continue
                r = _from_value(v, det)
                results.setdefault(i, [None] * len(dets))[d] = r
                if r.ok and not math.isnan(r.p_fake):
                    logit[key][i], prob[key][i] = r.logit, r.p_fake
                else:
                    unscored[key][i] = r.details.get("message") or f"no verdict ({r.label})"
        done += len(batch)
        t_work += time.perf_counter() - t0
        if progress:
            eta = t_work / done * (total - done) if done else None
            progress(done, total, eta)
    if store is not None and store.problem:
        notes.append(store.problem)

    sources = [SourceInfo(key=fp[0], kind="detector", name=fp[0], threshold=det.spec.threshold,
                          detector_id=det.spec.id, variant=det.spec.variant, weights_sha256=det.weights_sha256,
                          backbone_sha256=det.backbone_sha256, preprocessing=fp[2].split("|", 2)[1])
               for det, fp in zip(dets, fps)]
    verdict = None
    if ensemble is None:
        ensemble = len(dets) >= 2
    if ensemble and dets:
        from core.verdict.ensemble import ensemble as combine
        from core.verdict.ensemble import load_config
        cfg = load_config()
        ek = ENSEMBLE_KEY
        logit[ek], prob[ek], unscored[ek] = np.full(n, np.nan), np.full(n, np.nan), {}
        verdict = np.full(n, -2, dtype=np.int64)
        for i, res in results.items():
            if status[i][0] != "ok":
                continue
            er = combine([r for r in res if r is not None], cfg)
            verdict[i] = {"FAKE": 1, "REAL": 0}.get(er.verdict, -1)
            used = [(v.weight, max(-50.0, min(50.0, v.logit))) for v in er.votes]
            if used and not math.isnan(er.p_mean_logit):
                logit[ek][i] = sum(w * z for w, z in used) / sum(w for w, _ in used)
                prob[ek][i] = er.p_mean_logit
            else:
                unscored[ek][i] = "no detector with an ensemble weight gave a verdict"
        for i in range(n):
            if status[i][0] == "ok" and i not in results:
                unscored[ek][i] = "no detector scored this image"
        weights = ", ".join(f"{k} {v:.2f}" for k, v in cfg.weights.items() if k in {d.spec.id for d in dets})
        sources.append(SourceInfo(key=ek, kind="ensemble", name="Ensemble (weighted vote)", threshold=0.5,
                                  preprocessing="",
                                  note=f"verdict: the weighted vote (vote threshold {cfg.vote_threshold}, weights "
                                       f"{weights or 'none'}); score for curves: sigmoid of the weighted mean logit"))

    if external is not None:
        idx, note = _match_external(items, external)
        if note:
            notes.append(note)
        for src in external.sources:
            key = src.key
            while key in logit:
                key = f"{key} (CSV)"
            ok = idx >= 0
            logit[key], prob[key] = np.full(n, np.nan), np.full(n, np.nan)
            logit[key][ok] = external.logit[src.key][idx[ok]]
            prob[key][ok] = external.p_fake[src.key][idx[ok]]
            unscored[key] = {i: ("not in the predictions CSV" if idx[i] < 0 else "empty score cell")
                             for i in range(n) if status[i][0] == "ok" and not np.isfinite(prob[key][i])}
            sources.append(SourceInfo(**{**src.to_dict(), "key": key}))

    rows = tuple(Row(it.path, it.label, it.group, *status[i], shas.get(i, "")) for i, it in enumerate(items))
    for arr in (*logit.values(), *prob.values()):
        arr.setflags(write=False)
    return EvalRun(dataset.name, dataset.kind, rows, tuple(sources), logit, prob,
                   {k: dict(v) for k, v in unscored.items()}, verdict, thumbs, was_cancelled,
                   time.perf_counter() - t_start, computed, cached, tuple(notes), batch_size)


# --------------------------------------------------------------------------------------------- metrics

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


def metrics_json(run: EvalRun, report: EvalReport) -> dict[str, Any]:
    """The metrics file: run facts, per source its identity (ids, weights sha256, threshold, preprocessing) and
    metrics overall and per group, and the library versions. JSON-ready (no NaN)."""
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
    return to_jsonable(doc)
