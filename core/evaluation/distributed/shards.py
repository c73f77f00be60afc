"""Results written incrementally on the driver: one small JSON-lines shard per finished batch.

A run is identified by the dataset's rows and the detectors' cache fingerprints, so a shard is only reused by the
same evaluation. Whichever node computed a batch, its rows are on the driver's disk once they arrive: an
interrupted run (Ctrl-C, a lost driver connection, a dead cluster) resumes by skipping every row found in the
shards. The folder is removed when a run completes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from core.evaluation.items import Item

SHARDS_FOLDER = ".ray-shards"


def run_key(dataset_name: str, items: Sequence[Item], fingerprints: Sequence[tuple[str, str, str]]) -> str:
    """A short hash naming one evaluation (rows: path, size, status; detectors: cache fingerprints)."""
    h = hashlib.sha256(json.dumps([dataset_name, [(it.path, it.size, it.status) for it in items],
                                   [list(fp) for fp in fingerprints]]).encode())
    return h.hexdigest()[:20]


class ShardStore:
    """The shards of one run under ``root/<run key>/``; each shard is written whole (temp file, then rename).

    Example:
        >>> store = ShardStore(Path("out/.ray-shards"), key)
        >>> done = store.load()                 # row index → record, from an interrupted run
        >>> store.write([{"i": 3, "sha": "…", "status": "ok", "reason": "", "values": {...}}])
    """

    def __init__(self, root: Path, key: str) -> None:
        self.root = Path(root)
        self.folder = self.root / key
        self._count = 0

    def load(self) -> dict[int, dict[str, Any]]:
        """Every row recorded by earlier attempts of this run (a damaged shard is skipped, its rows redone)."""
        done: dict[int, dict[str, Any]] = {}
        if not self.folder.is_dir():
            return done
        for shard in sorted(self.folder.glob("part-*.jsonl")):
            try:
                rows = [json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines() if line]
            except (OSError, ValueError):
                continue
            for r in rows:
                if isinstance(r, dict) and isinstance(r.get("i"), int):
                    done.setdefault(r["i"], r)
            self._count += 1
        return done

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Append one shard (a batch's rows)."""
        records = list(records)
        if not records:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        while (self.folder / f"part-{self._count:06d}.jsonl").exists():
            self._count += 1
        path = self.folder / f"part-{self._count:06d}.jsonl"
        tmp = path.with_name(path.name + ".part")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in records)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        self._count += 1

    def remove(self) -> None:
        """Delete this run's shards (and the shards folder when nothing else is in it)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.root.rmdir()
        except OSError:
            pass


__all__ = ["SHARDS_FOLDER", "run_key", "ShardStore"]
