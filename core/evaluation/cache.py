"""The score cache: an sqlite table of scores keyed by image sha256, detector variant, weights and preprocessing.

Re-running an evaluation, adding a detector or changing a threshold never recomputes a forward pass.
"""

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


from core import settings

CACHE_VERSION = 1          # bump when a detector's scoring changes in a way its spec/weights do not show


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


