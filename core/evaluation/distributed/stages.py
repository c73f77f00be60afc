"""What runs on the Ray workers: reading and decoding as tasks, scoring in one actor pool per detector variant.

A batch is a dict of numpy columns. ``read_decode`` turns row indices (+ the item's reference, or bytes the driver
read) into ``sha`` / ``status`` / ``reason`` and the decoded RGB pixels; each :class:`Scorer` adds its detector's
value (the score cache's JSON) per row. Hostile files become error rows with the local engine's sentences.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.errors import BadImage, DeepfakeLensError
from core.evaluation.cache import ScoreCache
from core.evaluation.runner import _score_one
from core.io import load_image

PIXELS = ("pix", "w", "h")


def read_error(exc: Exception) -> str:
    """The local engine's sentence for a file that cannot be read."""
    why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"could not be read ({why})"


def read_decode(batch: dict[str, np.ndarray], reader: Callable[[str], bytes] | None) -> dict[str, np.ndarray]:
    """Read (unless the driver shipped the bytes), hash and decode one batch of rows.

    Args:
        batch: columns ``i`` (row index), ``ref`` (what ``reader`` takes), ``shipped`` (bool), ``data`` (bytes).
        reader: the dataset's reader (a module-level function, so it pickles to the workers), or None.

    Returns:
        ``i``, ``sha``, ``status`` (``ok``/``error``), ``reason`` and the pixels ``pix`` (RGB bytes), ``w``, ``h``.
    """
    n = len(batch["i"])
    out: dict[str, list[Any]] = {k: [] for k in ("sha", "status", "reason", *PIXELS)}
    for k in range(n):
        sha, status, reason, pix, size = "", "ok", "", b"", (0, 0)
        try:
            data = bytes(batch["data"][k]) if bool(batch["shipped"][k]) else reader(str(batch["ref"][k]))
            sha = hashlib.sha256(data).hexdigest()
        except Exception as exc:  # noqa: BLE001 - corrupt member, vanished file...: that row's error
            status, reason = "error", read_error(exc)
        if status == "ok":
            try:
                image = load_image(data)
                pix, size = image.tobytes(), image.size
            except BadImage as exc:
                status, reason = "error", exc.why
        for col, v in zip(out, (sha, status, reason, pix, size[0], size[1])):
            out[col].append(v)
    res = {"i": np.asarray(batch["i"], dtype=np.int64)}
    res.update({c: np.array(v, dtype=object) for c, v in out.items() if c not in ("w", "h")})
    res.update(w=np.array(out["w"], dtype=np.int64), h=np.array(out["h"], dtype=np.int64))
    return res


def _from_shipped(key: str, shipped: Sequence[Any], names: Sequence[str | None]) -> Any:
    """Build the detector from checkpoint bytes the driver shipped (object refs), via a private temp folder."""
    import ray      # Ray and torch (via the factory) load only in the actors, never in the read tasks

    from core.models.factory import create_detector
    folder = Path(tempfile.mkdtemp(prefix="dlw-"))
    try:
        paths: list[str | None] = []
        for ref, name in zip(shipped, names):
            p = folder / Path(name or "weights.bin").name if ref is not None else None
            if p is not None:
                p.write_bytes(ray.get(ref))
            paths.append(None if p is None else str(p))
        return create_detector(key, weights=paths[0], backbone_weights=paths[1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)       # the model holds the weights now


def load_detector(key: str, expected: tuple[str | None, str | None], paths: Sequence[str | None],
                  shipped: Sequence[Any], names: Sequence[str | None] = (None, None)) -> tuple[Any, str]:
    """Build detector ``key`` on this node with exactly the driver's weights (compared by sha256).

    Tries, in order: the node's own weights folder / Hugging Face cache; the files the user named on the driver
    (``paths``, when this node sees them: shared storage); the bytes the driver shipped through the object store.

    Returns:
        (the detector, how its weights were found).

    Raises:
        DeepfakeLensError: none of the three gave the driver's weights (the sentence lists why).
    """
    from core.models.factory import create_detector
    why: list[str] = []
    attempts: list[tuple[str, Callable[[], Any]]] = [("found on the node (weights folder or Hub cache)",
                                                      lambda: create_detector(key))]
    if any(p and os.path.isfile(p) for p in paths):
        attempts.append(("found on the node at the driver's file paths (shared storage)",
                         lambda: create_detector(key, weights=paths[0], backbone_weights=paths[1])))
    if any(r is not None for r in shipped):
        attempts.append(("shipped by the driver", lambda: _from_shipped(key, shipped, names)))
    for how, build in attempts:
        try:
            det = build()
        except DeepfakeLensError as exc:
            why.append(str(exc))
            continue
        if (det.weights_sha256, det.backbone_sha256) == tuple(expected):
            return det, how
        why.append(f"{how}: other weights than the driver's")
    raise DeepfakeLensError(f"{key}: the driver's weights are not available on this node ({'; '.join(why)}).")


class Scorer:
    """One actor of a detector's pool: the model is loaded once, then scores batch after batch.

    Adds the columns ``v<d>`` (the detector's value as JSON, "" for rows that are not ok), ``c<d>`` (1 = computed
    here, 0 = from this node's score cache) and ``w<d>`` (node id and how the weights were found).
    """

    def __init__(self, d: int, key: str, fingerprint: tuple[str, str, str], expected: tuple[str | None, str | None],
                 paths: Sequence[str | None], shipped: Sequence[Any], names: Sequence[str | None], batch_size: int,
                 threads: int, use_cache: bool, last: bool) -> None:
        import ray
        import torch
        torch.set_num_threads(threads)
        self.d, self.fp, self.batch_size, self.last = d, tuple(fingerprint), batch_size, last
        self.det, how = load_detector(key, expected, paths, shipped, names)
        self.where = f"{ray.get_runtime_context().get_node_id()[:8]}|{how}"
        self.store = ScoreCache() if use_cache else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Score the ok rows of one batch (cache first), leaving the other rows' values empty."""
        n = len(batch["i"])
        ok = [k for k in range(n) if batch["status"][k] == "ok"]
        shas = [str(batch["sha"][k]) for k in ok]
        hit = self.store.get_many(self.fp, shas) if self.store else {}
        miss = [k for k, s in zip(ok, shas) if s not in hit]
        images = [Image.frombytes("RGB", (int(batch["w"][k]), int(batch["h"][k])), bytes(batch["pix"][k]))
                  for k in miss]
        fresh = dict(zip(miss, _score_one(self.det, images, self.batch_size))) if miss else {}
        if self.store and fresh:
            self.store.put_many(self.fp, {str(batch["sha"][k]): v for k, v in fresh.items()
                                          if not v.get("transient")})
        values, computed = [""] * n, np.zeros(n, dtype=np.int8)
        for k, s in zip(ok, shas):
            values[k] = json.dumps(fresh[k] if k in fresh else hit[s])
            computed[k] = 1 if k in fresh else 0
        out = {c: v for c, v in batch.items() if not (self.last and c in PIXELS)}
        out.update({f"v{self.d}": np.array(values, dtype=object), f"c{self.d}": computed,
                    f"w{self.d}": np.array([self.where] * n, dtype=object)})
        return out


__all__ = ["read_error", "read_decode", "load_detector", "Scorer", "PIXELS"]
