"""Where the API's work runs: a bounded queue of worker threads, and the detectors they share.

:class:`WorkGate` admits at most ``workers + queue`` requests at once; one more is answered 503 with a
``Retry-After`` estimated from recent run times. Each admitted request has a time limit (waiting included); a
request past it is answered 504, and its slot stays taken until the thread really finishes, so the bound holds
even then (a thread cannot be killed).

:class:`DetectorCache` keeps one loaded detector per (variant, installed checkpoint identity, precision) for the
whole process, like the app's ``st.cache_resource``: every request uses the same model under the detector's own
lock (:attr:`core.models.detectors.base.Detector.lock`). A checkpoint imported or replaced changes the identity, so
a stale model is never served; a detector whose weights are not installed is never built.
"""
from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from core.api.errors import ApiError
from core.models.detectors.base import Detector
from core.models.factory import create_detector
from core.models.selection import variant_state
from core.models.specs import DetectorSpec

T = TypeVar("T")


class WorkGate:
    """A fixed pool of worker threads behind a bounded queue, with a per-request time limit.

    Args:
        workers: analyses run at once.
        queue: requests that may wait for a worker.
        timeout: seconds a request may take from admission to answer.
    """

    def __init__(self, workers: int, queue: int, timeout: float) -> None:
        self.workers, self.queue, self.timeout = max(1, workers), max(0, queue), timeout
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="deepfake-lens-api")
        self._lock = threading.Lock()
        self._admitted = 0
        self._mean_s = 1.0              # running mean of run times, for Retry-After

    @property
    def admitted(self) -> int:
        """Requests running or waiting now."""
        with self._lock:
            return self._admitted

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue ahead of it divided among the workers."""
        with self._lock:
            ahead = self._admitted
        return int(min(300, max(1, math.ceil(self._mean_s * ahead / self.workers))))

    def _admit(self) -> None:
        with self._lock:
            if self._admitted >= self.workers + self.queue:
                full = True
            else:
                self._admitted += 1
                full = False
        if full:
            wait = self.retry_after()
            raise ApiError(503, f"the server is busy ({self.workers + self.queue} requests running or waiting); "
                                f"retry in {wait} s.", {"Retry-After": str(wait)})

    def _release(self, elapsed: float) -> None:
        with self._lock:
            self._admitted -= 1
            self._mean_s = 0.8 * self._mean_s + 0.2 * elapsed

    def _timed(self, fn: Callable[[], T]) -> T:
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self._release(time.perf_counter() - t0)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on a worker thread and return its result.

        Raises:
            ApiError: 503 (+ Retry-After) when the queue is full, 504 past the time limit.
        """
        self._admit()
        try:
            fut = asyncio.get_running_loop().run_in_executor(self._pool, self._timed, fn)
        except BaseException:
            self._release(0.0)
            raise
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout)
        except asyncio.TimeoutError:
            raise ApiError(504, f"the analysis took longer than the {self.timeout:g} s limit of one request "
                                "(DEEPFAKE_LENS_API_TIMEOUT); try fewer detectors or a job.") from None

    def close(self) -> None:
        """Stop accepting work (running threads finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def checkpoint_stamp(spec: DetectorSpec) -> str | None:
    """The identity of a variant's installed checkpoint(s) (``path:sha256`` per part), or None if not installed."""
    vs = variant_state(spec)
    if not vs.installed:
        return None
    return "|".join(f"{p.path}:{p.sha256}" for p in vs.parts)


class DetectorCache:
    """Loaded detectors shared by every request of the process (least recently used dropped beyond ``size``).

    Args:
        size: most detector instances kept (a model in use by a request stays alive until it is done).
    """

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str, str], Detector] = OrderedDict()
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()   # one load at a time: two requests never build the same model twice

    def loaded(self) -> list[str]:
        """Keys (``ID:variant``, with ``@bf16`` for the fast path) of the detectors in memory now."""
        with self._lock:
            return [k if p == "fp32" else f"{k}@{p}" for k, _, p in self._items]

    def get(self, spec: DetectorSpec, precision: str = "fp32") -> Detector:
        """The shared detector of ``spec`` at ``precision`` ("fp32", or "bf16" where the YAML validated it).

        Raises:
            WeightsError: the checkpoint is missing, corrupt or refused (nothing is built with random weights).
        """
        stamp = checkpoint_stamp(spec) or ""
        key = (spec.key, stamp, precision)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        with self._load_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            det = create_detector(spec.key)        # raises WeightsUnavailable when nothing is installed
            det.set_precision(precision)
            with self._lock:
                self._items[key] = det
                for stale in [k for k in self._items if k[0] == spec.key and k[1] != stamp]:
                    del self._items[stale]          # a replaced checkpoint: drop the old model
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return det


__all__ = ["DetectorCache", "WorkGate", "checkpoint_stamp"]
