"""Run detectors over a labelled dataset, cache every score, and turn the scores into metrics and exports.

Scores are cached on disk by (image sha256, detector key, weights sha256 [+ backbone], preprocessing description),
so re-running an evaluation, adding a detector, or changing a threshold never recomputes a forward pass.
Predictions made elsewhere (a CSV with one or more score columns) are evaluated the same way, with or without
our detectors.
"""
from __future__ import annotations

import hashlib
import io
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import BadImage, ScoreError
from core.evaluation.datasets import Dataset, Item
from core.evaluation.cache import CACHE_VERSION, ScoreCache, cache_dir, detector_fingerprint
from core.evaluation.predictions import _match_external
from core.evaluation.records import ENSEMBLE_KEY, EvalReport, EvalRun, ExternalScores, Row, SourceInfo, SourceReport
from core.io import load_image
from core.results import DetectionResult
from core.verdict.ensemble import ensemble as combine
from core.verdict.ensemble import load_config

Progress = Callable[[int, int, "float | None"], None]     # (done, total, eta seconds or None)


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
    nan = float("nan")
    return DetectionResult(
        # the user's own file (--weights) is "custom" in evaluation results too, never the official variant
        detector_id=det.spec.id, variant="custom" if getattr(det, "custom_weights", None) else det.spec.variant,
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
        except ScoreError as exc:                 # NaN/inf logit: an error row with the sentence, never a label
            out.append({"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - one image must never stop the run
            # not a property of the image (e.g. out of memory): reported, but never cached
            out.append({"error": f"{type(exc).__name__}: {str(exc)[:200]}", "transient": True})
    return out


def evaluate(dataset: Dataset, detectors: Sequence[Any] = (), *, batch_size: int = 8,
             progress: Progress | None = None, cancel: Any = None, cache: ScoreCache | None | bool = True,
             ensemble: bool | None = None, external: ExternalScores | None = None,
             thumbnails: int | None = None, cache_only: bool = False, prefetch: bool = True) -> EvalRun:
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
        prefetch: read, hash and decode the next batch in a background thread while this one is scored (same
            results; False does everything in turn, in the calling thread).

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
    dets = list(detectors)
    st = _RunState.start(dataset, dets)
    todo = [i for i, it in enumerate(st.items) if it.status == "ok"] if dets else []
    total, done, t_work = len(todo), 0, 0.0
    if progress:
        progress(0, total, None)
    batches = [todo[s:s + max(1, batch_size)] for s in range(0, len(todo), max(1, batch_size))]

    def load(k: int) -> _Batch:
        return _load_batch(st, dataset, dets, batches[k], store=store, thumbnails=thumbnails, cache_only=cache_only)

    # One reader thread reads, hashes, looks up and decodes batch k+1 while the models score batch k: Pillow's
    # decoders, hashlib and file reads release the GIL, so this work hides behind the forward passes.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-prefetch") if prefetch else None
    try:
        ahead: Future[_Batch] | None = pool.submit(load, 0) if pool and batches else None
        for k, batch in enumerate(batches):
            if _cancelled(cancel):
                st.was_cancelled = True
                _discard(st, ahead, [i for b in batches[k:] for i in b])
                break
            t0 = time.perf_counter()
            loaded = ahead.result() if ahead is not None else load(k)
            ahead = pool.submit(load, k + 1) if pool and k + 1 < len(batches) else None
            _score_batch(st, dets, loaded, store=store, batch_size=batch_size, cache_only=cache_only)
            done += len(batch)
            t_work += time.perf_counter() - t0
            if progress:
                progress(done, total, t_work / done * (total - done) if done else None)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    if store is not None and store.problem:
        st.notes.append(store.problem)
    if (len(dets) >= 2 if ensemble is None else ensemble) and dets:
        _add_ensemble(st, dets)
    if external is not None:
        _add_external(st, external)
    return st.finish(dataset, time.perf_counter() - t_start, batch_size)


@dataclass
class _RunState:
    """The mutable bookkeeping of one evaluation (scores per source, row statuses, counters)."""

    items: list[Item]
    fps: list[tuple[str, str, str]]
    logit: dict[str, np.ndarray]
    prob: dict[str, np.ndarray]
    unscored: dict[str, dict[int, str]]
    status: dict[int, tuple[str, str]]
    notes: list[str]
    sources: list[SourceInfo]
    results: dict[int, list[Any]] = field(default_factory=dict)
    shas: dict[int, str] = field(default_factory=dict)
    thumbs: dict[int, bytes] = field(default_factory=dict)
    verdict: np.ndarray | None = None
    computed: int = 0
    cached: int = 0
    was_cancelled: bool = False

    @classmethod
    def start(cls, dataset: Dataset, dets: list[Any]) -> _RunState:
        items = list(dataset.items)
        n = len(items)
        fps = [detector_fingerprint(d) for d in dets]
        keys = [fp[0] for fp in fps]
        if len(set(keys)) != len(keys):
            raise ValueError("the same detector variant was given twice")
        sources = [SourceInfo(key=fp[0], kind="detector", name=fp[0], threshold=det.spec.threshold,
                              detector_id=det.spec.id, variant=det.spec.variant, weights_sha256=det.weights_sha256,
                              backbone_sha256=det.backbone_sha256, preprocessing=fp[2].split("|", 2)[1])
                   for det, fp in zip(dets, fps)]
        return cls(items=items, fps=fps, logit={k: np.full(n, np.nan) for k in keys},
                   prob={k: np.full(n, np.nan) for k in keys}, unscored={k: {} for k in keys},
                   status={i: (it.status, it.reason) for i, it in enumerate(items)}, notes=list(dataset.notes),
                   sources=sources)

    @property
    def n(self) -> int:
        return len(self.items)

    def ok(self, i: int) -> bool:
        return self.status[i][0] == "ok"

    def finish(self, dataset: Dataset, elapsed: float, batch_size: int) -> EvalRun:
        rows = tuple(Row(it.path, it.label, it.group, *self.status[i], self.shas.get(i, ""))
                     for i, it in enumerate(self.items))
        for arr in (*self.logit.values(), *self.prob.values()):
            arr.setflags(write=False)
        return EvalRun(dataset.name, dataset.kind, rows, tuple(self.sources), self.logit, self.prob,
                       {k: dict(v) for k, v in self.unscored.items()}, self.verdict, self.thumbs,
                       self.was_cancelled, elapsed, self.computed, self.cached, tuple(self.notes), batch_size)


def _read_batch(st: _RunState, dataset: Dataset, batch: list[int]) -> dict[int, bytes]:
    """The bytes (and sha256) of each row of the batch; a row that cannot be read becomes an error row."""
    data: dict[int, bytes] = {}
    for i in batch:
        try:
            data[i] = dataset.read(st.items[i])
            st.shas[i] = hashlib.sha256(data[i]).hexdigest()
        except Exception as exc:  # noqa: BLE001 - corrupt zip member, vanished file...: that row's error
            why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            st.status[i] = ("error", f"could not be read ({why})")
    return data


@dataclass
class _Batch:
    """One batch of rows, read and decoded: what scoring needs."""

    live: list[int]                               # rows whose bytes were read
    hits: list[dict[str, dict]]                   # per detector: cached values by image sha256
    images: dict[int, Any]                        # decoded images of the rows some detector still has to score


def _load_batch(st: _RunState, dataset: Dataset, dets: list[Any], batch: list[int], *, store: ScoreCache | None,
                thumbnails: int | None, cache_only: bool) -> _Batch:
    """Read, look up in the cache and decode (only what the cache lacks) one batch of rows (any thread)."""
    data = _read_batch(st, dataset, batch)
    live = [i for i in batch if i in data]
    hits = [store.get_many(fp, [st.shas[i] for i in live]) if store else {} for fp in st.fps]
    images: dict[int, Any] = {}
    if not cache_only:
        for i in (i for i in live if any(st.shas[i] not in h for h in hits)):
            try:
                images[i] = load_image(data[i])
            except BadImage as exc:
                st.status[i] = ("error", exc.why)
    for i in live:
        if thumbnails and st.ok(i):
            thumb = _thumbnail(images[i], thumbnails) if i in images else _fast_thumbnail(data[i], thumbnails)
            if thumb:
                st.thumbs[i] = thumb
    return _Batch(live, hits, images)


def _discard(st: _RunState, ahead: Future[_Batch] | None, rows: list[int]) -> None:
    """Cancelled: the rows not scored (a batch already read ahead included) become ``cancelled``, as if unread."""
    if ahead is not None:
        ahead.cancel()
        if not ahead.cancelled():
            ahead.exception()                   # wait for the reader: it writes into st
    for i in rows:
        st.status[i] = ("cancelled", "the run was cancelled before this image")
        st.shas.pop(i, None)
        st.thumbs.pop(i, None)


def _score_batch(st: _RunState, dets: list[Any], loaded: _Batch, *, store: ScoreCache | None, batch_size: int,
                 cache_only: bool) -> None:
    """Score one loaded batch with every detector (what the cache lacks) and record the values."""
    live, images = loaded.live, loaded.images
    for d, (det, fp, hit) in enumerate(zip(dets, st.fps, loaded.hits)):
        miss = [i for i in live if st.shas[i] not in hit and i in images]
        fresh: dict[str, dict] = {}
        if miss and not cache_only:
            vals = _score_one(det, [images[i] for i in miss], batch_size)
            st.computed += len(miss)
            fresh = {st.shas[i]: v for i, v in zip(miss, vals)}
            if store:
                store.put_many(fp, {h: v for h, v in fresh.items() if not v.get("transient")})
        _record(st, d, det, fp[0], live, hit, fresh, len(dets))


def _record(st: _RunState, d: int, det: Any, key: str, live: list[int], hit: Mapping[str, dict],
            fresh: Mapping[str, dict], n_dets: int) -> None:
    """Store detector ``d``'s cached or fresh values for the live rows of a batch."""
    for i in live:
        if not st.ok(i):
            continue
        v = hit.get(st.shas[i]) or fresh.get(st.shas[i])
        if v is None:
            st.status[i] = ("cancelled", "not in the score cache (the run was cancelled before this image)")
            continue
        if st.shas[i] in hit:
            st.cached += 1
        if "error" in v:
            st.unscored[key][i] = v["error"]
            continue
        r = _from_value(v, det)
        st.results.setdefault(i, [None] * n_dets)[d] = r
        if r.ok and not math.isnan(r.p_fake):
            st.logit[key][i], st.prob[key][i] = r.logit, r.p_fake
        else:
            st.unscored[key][i] = r.details.get("message") or f"no verdict ({r.label})"


def _add_ensemble(st: _RunState, dets: list[Any]) -> None:
    """The original app's weighted vote per row, plus the weighted mean logit as the score for curves."""
    cfg = load_config()
    ek = ENSEMBLE_KEY
    st.logit[ek], st.prob[ek], st.unscored[ek] = np.full(st.n, np.nan), np.full(st.n, np.nan), {}
    st.verdict = np.full(st.n, -2, dtype=np.int64)
    for i, res in st.results.items():
        if not st.ok(i):
            continue
        er = combine([r for r in res if r is not None], cfg)
        st.verdict[i] = {"FAKE": 1, "REAL": 0}.get(er.verdict, -1)
        used = [(v.weight, max(-50.0, min(50.0, v.logit))) for v in er.votes]
        if used and not math.isnan(er.p_mean_logit):
            st.logit[ek][i] = sum(w * z for w, z in used) / sum(w for w, _ in used)
            st.prob[ek][i] = er.p_mean_logit
        else:
            st.unscored[ek][i] = "no detector with an ensemble weight gave a verdict"
    for i in range(st.n):
        if st.ok(i) and i not in st.results:
            st.unscored[ek][i] = "no detector scored this image"
    weights = ", ".join(f"{k} {v:.2f}" for k, v in cfg.weights.items() if k in {d.spec.id for d in dets})
    st.sources.append(SourceInfo(key=ek, kind="ensemble", name="Ensemble (weighted vote)", threshold=0.5,
                                 preprocessing="",
                                 note=f"verdict: the weighted vote (vote threshold {cfg.vote_threshold}, weights "
                                      f"{weights or 'none'}); score for curves: sigmoid of the weighted mean logit"))


def _add_external(st: _RunState, external: ExternalScores) -> None:
    """Score columns of a predictions CSV, matched to rows by path (else by unique file name)."""
    idx, note = _match_external(st.items, external)
    if st.n and not (idx >= 0).any():       # nothing matched: one note, no empty rows or matrices
        st.notes.append(f"The predictions CSV matched none of the {st.n} files (by path or file name): its "
                        "score columns are left out.")
        return
    if note:
        st.notes.append(note)
    for src in external.sources:
        key = src.key
        while key in st.logit:
            key = f"{key} (CSV)"
        ok = idx >= 0
        st.logit[key], st.prob[key] = np.full(st.n, np.nan), np.full(st.n, np.nan)
        st.logit[key][ok] = external.logit[src.key][idx[ok]]
        st.prob[key][ok] = external.p_fake[src.key][idx[ok]]
        st.unscored[key] = {i: ("not in the predictions CSV" if idx[i] < 0 else "empty score cell")
                            for i in range(st.n) if st.ok(i) and not np.isfinite(st.prob[key][i])}
        st.sources.append(SourceInfo(**{**src.to_dict(), "key": key}))


# The public names of the evaluation engine, re-exported so callers need one import.
from core.evaluation.predictions import read_predictions  # noqa: E402
from core.evaluation.reports import compute_report, metrics_json, predictions_frame  # noqa: E402

__all__ = ["ScoreCache", "SourceInfo", "Row", "EvalRun", "EvalReport", "SourceReport", "ExternalScores",
           "evaluate", "compute_report", "read_predictions", "predictions_frame", "metrics_json", "cache_dir",
           "detector_fingerprint", "ENSEMBLE_KEY", "CACHE_VERSION"]
