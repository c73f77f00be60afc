"""The Ray engine's driver: the local engine's results (rows, statuses, order, scores, metrics) from a cluster.

Pipeline (Ray Data, streaming): the rows still to score → ``read_decode`` tasks (read, sha256, decode; hostile
files become error rows) → one actor pool per detector variant (model loaded once per actor; the node's score
cache first) → the driver, which writes each batch to a shard and fills the same bookkeeping as
:func:`core.evaluation.runner.evaluate`. Actors that die are restarted by Ray Data and their batches retried; the
driver keeps the first result per row, so no row is lost or counted twice.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.evaluation.datasets import Dataset
from core.evaluation.distributed.cluster import Plan, connect, current_plan
from core.evaluation.distributed.shards import ShardStore, run_key
from core.evaluation.distributed.stages import Scorer, read_error, read_decode
from core.evaluation.records import EvalRun, ExternalScores
from core.evaluation.runner import Progress, _add_ensemble, _add_external, _cancelled, _record, _RunState

Log = Callable[[str], None]


@dataclass(frozen=True)
class DetectorInfo:
    """What the driver keeps of a loaded detector: identity and weights, not the model (the actors load it)."""

    spec: Any
    weights_sha256: str | None
    backbone_sha256: str | None
    custom_weights: str | None
    weights_path: str | None
    backbone_path: str | None

    @classmethod
    def of(cls, det: Any) -> DetectorInfo:
        """From a :class:`~core.models.detectors.base.Detector` (or a DetectorInfo, returned as is)."""
        if isinstance(det, DetectorInfo):
            return det
        return cls(det.spec, det.weights_sha256, det.backbone_sha256, det.custom_weights,
                   str(det.weights_path) if det.weights_path else None,
                   str(det.backbone_path) if det.backbone_path else None)


def _remote_reader(dataset: Dataset) -> Callable[[str], bytes] | None:
    """The dataset's reader when workers can run it (a module-level function: folders, labels CSVs)."""
    reader = dataset.reader
    if reader is None or "<" in getattr(reader, "__qualname__", "<"):
        return None                  # a closure over an open zip or uploaded bytes: the driver reads
    return reader


def _rows(dataset: Dataset, st: _RunState, left: Sequence[int], remote: bool) -> tuple[list[dict], list[dict]]:
    """Pipeline input rows, and error records for rows the driver failed to read."""
    rows, failed = [], []
    for i in left:
        it = st.items[i]
        data = b""
        if not remote:
            try:
                data = dataset.read(it)
            except Exception as exc:  # noqa: BLE001 - that row's error, as in the local engine
                failed.append({"i": i, "sha": "", "status": "error", "reason": read_error(exc)})
                continue
        rows.append({"i": i, "ref": it.ref or "", "shipped": not remote, "data": data})
    return rows, failed


def _ship(ray: Any, info: DetectorInfo) -> list[Any]:
    """Object refs of the driver's checkpoint files, for nodes that lack them (fetched only by those)."""
    refs = []
    for p in (info.weights_path, info.backbone_path):
        refs.append(ray.put(Path(p).read_bytes()) if p and Path(p).is_file() else None)
    return refs


def _pipeline(ray: Any, rows: list[dict], reader: Any, infos: Sequence[DetectorInfo], st: _RunState, plan: Plan,
              *, batch_size: int, cache: bool, ship: bool) -> Any:
    """The Ray Data dataset: read/decode tasks, then one actor pool per detector."""
    blocks = max(1, min(math.ceil(len(rows) / batch_size), 4096))
    ds = ray.data.from_items(rows, override_num_blocks=blocks)
    ds = ds.map_batches(read_decode, batch_size=batch_size, batch_format="numpy", num_cpus=plan.read_cpus,
                        fn_kwargs={"reader": reader})
    for d, (info, fp) in enumerate(zip(infos, st.fps)):
        shipped = _ship(ray, info) if ship else [None, None]
        kwargs = dict(d=d, key=info.spec.key, fingerprint=fp, expected=(info.weights_sha256, info.backbone_sha256),
                      # the user's own files (--weights) may sit on shared storage; installed ones are looked up
                      # in each node's own weights folder first
                      paths=[info.weights_path, info.backbone_path] if info.custom_weights else [None, None],
                      names=[info.weights_path, info.backbone_path], shipped=shipped, batch_size=batch_size,
                      threads=plan.threads, use_cache=cache, last=d == len(infos) - 1)
        ds = ds.map_batches(Scorer, batch_size=batch_size, batch_format="numpy", num_cpus=plan.actor_cpus,
                            compute=ray.data.ActorPoolStrategy(size=plan.pool),
                            fn_constructor_kwargs=kwargs)
    return ds


def _records(batch: dict[str, np.ndarray], n_dets: int) -> list[dict]:
    """One record per row of a result batch (what a shard keeps)."""
    out = []
    for k in range(len(batch["i"])):
        rec = {"i": int(batch["i"][k]), "sha": str(batch["sha"][k]), "status": str(batch["status"][k]),
               "reason": str(batch["reason"][k])}
        if rec["status"] == "ok":
            rec["values"] = [json.loads(str(batch[f"v{d}"][k])) for d in range(n_dets)]
            rec["computed"] = [int(batch[f"c{d}"][k]) for d in range(n_dets)]
        out.append(rec)
    return out


def _apply(st: _RunState, infos: Sequence[DetectorInfo], records: Sequence[dict], resumed: bool = False) -> None:
    """Fill the run's bookkeeping from records (resumed ones count as cached, like the score cache's hits)."""
    for rec in records:
        i = rec["i"]
        if rec.get("sha"):
            st.shas[i] = rec["sha"]
        if rec["status"] != "ok":
            st.status[i] = (rec["status"], rec["reason"])
            continue
        for d, (info, fp) in enumerate(zip(infos, st.fps)):
            v, fresh = rec["values"][d], rec["computed"][d] and not resumed
            st.computed += int(bool(fresh))
            _record(st, d, info, fp[0], [i], {} if fresh else {rec["sha"]: v}, {rec["sha"]: v} if fresh else {},
                    len(infos))


def _drain(ds: Any, st: _RunState, infos: Sequence[DetectorInfo], store: ShardStore | None, *,
           progress: Progress | None, cancel: Any, done0: int, total: int) -> tuple[set[int], dict[int, set[str]]]:
    """Consume the pipeline: shards, bookkeeping, progress. Returns the rows received and where weights came from."""
    seen: set[int] = set()
    where: dict[int, set[str]] = {d: set() for d in range(len(infos))}
    t0 = time.perf_counter()
    # closed explicitly: a cancelled run stops Ray Data's executor before Ray itself shuts down
    with contextlib.closing(iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0))) as batches:
        for batch in batches:
            recs = [r for r in _records(batch, len(infos)) if r["i"] not in seen]   # a retried batch: first wins
            for d in where:
                where[d].update(str(w) for w in batch.get(f"w{d}", ()))
            seen.update(r["i"] for r in recs)
            if store is not None:
                store.write(r for r in recs if not any(v.get("transient") for v in r.get("values", ())))
            _apply(st, infos, recs)
            if progress:
                rate = len(seen) / max(time.perf_counter() - t0, 1e-9)
                progress(done0 + len(seen), total, (total - done0 - len(seen)) / rate if rate > 0 else None)
            if _cancelled(cancel):
                st.was_cancelled = True
                break
    return seen, where


def _weights_lines(infos: Sequence[DetectorInfo], where: dict[int, set[str]]) -> list[str]:
    """One line per detector: how its weights reached each node."""
    lines = []
    for d, info in enumerate(infos):
        by_how: dict[str, set[str]] = {}
        for w in where.get(d, ()):
            node, _, how = w.partition("|")
            by_how.setdefault(how, set()).add(node)
        parts = [f"{how} on {len(nodes)} node(s)" for how, nodes in sorted(by_how.items())]
        lines.append(f"{info.spec.key} weights: {'; '.join(parts) or 'no batch scored'}.")
    return lines


def evaluate_ray(dataset: Dataset, detectors: Sequence[Any] = (), *, address: str | None = None,
                 workers: int | None = None, batch_size: int = 8, progress: Progress | None = None,
                 cancel: Any = None, cache: bool = True, ensemble: bool | None = None,
                 external: ExternalScores | None = None, shards_dir: str | Path | None = None,
                 verbose: bool = False, log: Log | None = None) -> EvalRun:
    """:func:`core.evaluation.runner.evaluate` on a Ray cluster: the same :class:`EvalRun`, row for row.

    Args:
        dataset: the labelled inputs. Folders and labels CSVs are read by the workers (the files must be at the
            same path on every node); other kinds are read by the driver and shipped.
        detectors: loaded detectors (or :class:`DetectorInfo`); the actors load their own copies.
        address: ``auto`` or ``HOST:PORT`` of a running cluster; None starts a private local instance.
        workers: actors per detector (default: sized from the cluster's CPUs, leaving room for reads).
        batch_size: images per batch (per actor call and per shard).
        progress: ``fn(done, total, eta_seconds)`` after each batch that comes back.
        cancel: a ``threading.Event`` or callable; the rows not reached are ``cancelled`` and the shards kept.
        cache: read and write each node's score cache.
        ensemble: as in the local engine (default: when two or more detectors ran).
        external: scores from a predictions CSV.
        shards_dir: folder for the per-batch shards (resume); None keeps no shards.
        verbose: Ray's own logs and progress bars.
        log: one line of text at a time for the terminal (cluster plan, where the weights came from).

    Returns:
        An :class:`EvalRun`; ``computed`` counts model runs on the cluster, ``from_cache`` the rest.

    Raises:
        ClusterError: Ray missing or the cluster unreachable / refusing the token.
        DeepfakeLensError: an actor cannot get the driver's weights on its node.
    """
    t_start, say = time.perf_counter(), log or (lambda _line: None)
    infos = [DetectorInfo.of(d) for d in detectors]
    st = _RunState.start(dataset, infos)
    todo = [i for i, it in enumerate(st.items) if it.status == "ok"] if infos else []
    store = ShardStore(Path(shards_dir), run_key(dataset.name, st.items, st.fps)) if shards_dir and todo else None
    resumed = store.load() if store else {}
    _apply(st, infos, [resumed[i] for i in todo if i in resumed], resumed=True)
    left = [i for i in todo if i not in resumed]
    if resumed:
        say(f"resumed {len(todo) - len(left)} image(s) from the shards of an interrupted run ({store.folder}).")
    if progress:
        progress(len(todo) - len(left), len(todo), None)
    if left:
        with connect(address, verbose=verbose) as ray:
            plan = current_plan(ray, len(infos), workers)
            say(plan.describe())
            rows, failed = _rows(dataset, st, left, remote=(reader := _remote_reader(dataset)) is not None)
            _apply(st, infos, failed)
            ds = _pipeline(ray, rows, reader, infos, st, plan, batch_size=batch_size, cache=cache,
                           ship=address is not None)
            seen, where = _drain(ds, st, infos, store, progress=progress, cancel=cancel,
                                 done0=len(todo) - len(rows), total=len(todo))
        for line in _weights_lines(infos, where):
            say(line)
        _mark_missing(st, [r["i"] for r in rows if r["i"] not in seen])
    if store is not None and not st.was_cancelled:
        store.remove()
    if (len(infos) >= 2 if ensemble is None else ensemble) and infos:
        _add_ensemble(st, infos)
    if external is not None:
        _add_external(st, external)
    return st.finish(dataset, time.perf_counter() - t_start, batch_size)


def _mark_missing(st: _RunState, missing: Sequence[int]) -> None:
    """Rows that never came back (the run was cancelled): ``cancelled``, and the shards are kept for a resume."""
    for i in missing:
        st.status[i] = ("cancelled", "the run was cancelled before this image")
    if missing:
        st.was_cancelled = True


__all__ = ["DetectorInfo", "evaluate_ray"]
