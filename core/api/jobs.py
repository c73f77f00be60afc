"""Long work as jobs: ``202`` with an id now, ``GET /v1/jobs/{id}`` for status, progress and result later.

Jobs run one at a time (by default) on their own thread, apart from the short requests, so a long video never
holds up ``/v1/detect``. At most ``DEEPFAKE_LENS_API_MAX_JOBS`` jobs are kept; a finished job's result is kept for
``DEEPFAKE_LENS_API_JOB_TTL`` seconds, then forgotten (404). When every slot holds unfinished work, a new job is
refused with 503 and ``Retry-After``. A job past ``DEEPFAKE_LENS_API_JOB_TIMEOUT`` is asked to stop
(:meth:`JobContext.should_stop`, :meth:`JobContext.progress` raises :class:`JobTimeout`).
"""
from __future__ import annotations

import datetime as _dt
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.api.errors import ApiError, sentence
from core.errors import DeepfakeLensError

log = logging.getLogger("deepfake_lens.api")


class JobTimeout(DeepfakeLensError):
    """A job ran past its time limit and was stopped."""


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass
class Job:
    """One job's state (mutated only under the store's lock)."""

    id: str
    kind: str
    status: str = "queued"                 # queued | running | done | failed
    progress: float = 0.0                  # 0 … 1
    message: str = "waiting for a worker"
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    deadline: float = 0.0                  # monotonic time at which the job is asked to stop

    def to_dict(self, ttl: float) -> dict[str, Any]:
        """The JSON of ``GET /v1/jobs/{id}``."""
        return {"id": self.id, "kind": self.kind, "status": self.status, "progress": round(self.progress, 4),
                "message": self.message, "created_at": _iso(self.created), "started_at": _iso(self.started),
                "finished_at": _iso(self.finished),
                "expires_at": _iso(self.finished + ttl) if self.finished is not None else None,
                "result": self.result, "error": self.error}


class JobContext:
    """What a running job may do: report progress and ask whether it must stop."""

    def __init__(self, store: JobStore, job: Job) -> None:
        self._store, self._job = store, job

    def should_stop(self) -> bool:
        """True once the job is past its time limit."""
        return time.monotonic() > self._job.deadline

    def progress(self, done: float, total: float, message: str = "") -> None:
        """Record progress (``done`` of ``total``).

        Raises:
            JobTimeout: the job is past its time limit.
        """
        with self._store.lock:
            self._job.progress = min(1.0, max(0.0, done / total)) if total else 0.0
            if message:
                self._job.message = message
        if self.should_stop():
            raise JobTimeout(f"the job ran past its {self._store.timeout:g} s limit (DEEPFAKE_LENS_API_JOB_TIMEOUT) "
                             "and was stopped.")


class JobStore:
    """Bounded, expiring jobs run on a small thread pool.

    Args:
        max_jobs: most jobs kept at once. ttl: seconds a finished job is kept. timeout: seconds a job may run.
        workers: jobs run at once.
    """

    def __init__(self, max_jobs: int, ttl: float, timeout: float, workers: int = 1) -> None:
        self.max_jobs, self.ttl, self.timeout = max_jobs, ttl, timeout
        self.lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._todo: queue.Queue = queue.Queue()
        # daemon threads: a long video never keeps the server process alive after it is told to stop
        self._threads = [threading.Thread(target=self._loop, name=f"deepfake-lens-job-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for t in self._threads:
            t.start()

    def _loop(self) -> None:
        while (item := self._todo.get()) is not None:
            self._run(*item)

    def _purge(self, now: float, room: bool = False) -> None:
        """Forget expired jobs; with ``room``, also the oldest finished ones while the store is full (lock held)."""
        for jid in [j.id for j in self._jobs.values() if j.finished is not None and j.finished + self.ttl < now]:
            del self._jobs[jid]
        finished = sorted((j for j in self._jobs.values() if j.finished is not None), key=lambda j: j.finished or 0)
        while room and len(self._jobs) >= self.max_jobs and finished:
            del self._jobs[finished.pop(0).id]

    def submit(self, kind: str, work: Callable[[JobContext], Any], cleanup: Callable[[], None] | None = None) -> Job:
        """Queue ``work(ctx)``; its return value (JSON-ready) becomes the job's result.

        Args:
            kind: what the job does ("video", "robustness").
            work: the function run on a job thread.
            cleanup: run after ``work`` whatever happens (e.g. removing the upload's temporary folder).

        Raises:
            ApiError: 503 when every slot holds an unfinished job (``cleanup`` has been run).
        """
        with self.lock:
            self._purge(time.time(), room=True)
            if len(self._jobs) >= self.max_jobs:
                if cleanup:
                    cleanup()
                raise ApiError(503, f"{self.max_jobs} jobs are queued or running; retry later.",
                               {"Retry-After": "30"})
            job = Job(secrets.token_hex(16), kind)
            self._jobs[job.id] = job
        self._todo.put((job, work, cleanup))
        return job

    def _run(self, job: Job, work: Callable[[JobContext], Any], cleanup: Callable[[], None] | None) -> None:
        with self.lock:
            job.status, job.started, job.message = "running", time.time(), "started"
            job.deadline = time.monotonic() + self.timeout
        try:
            result = work(JobContext(self, job))
            with self.lock:
                job.result, job.status, job.progress = result, "done", 1.0
                job.message = "done" if job.message in ("started", "") else job.message
        except DeepfakeLensError as exc:
            with self.lock:
                job.status, job.error, job.message = "failed", sentence(str(exc)), "failed"
        except Exception as exc:
            log.error("job %s (%s) failed", job.id, job.kind, exc_info=exc)
            with self.lock:
                job.status, job.message = "failed", "failed"
                job.error = "the job failed on the server; the server log has the details."
        finally:
            if cleanup:
                cleanup()
            with self.lock:
                job.finished = time.time()

    def get(self, job_id: str) -> dict[str, Any]:
        """The job's JSON.

        Raises:
            ApiError: 404 for an unknown or expired id.
        """
        with self.lock:
            self._purge(time.time())
            job = self._jobs.get(job_id)
            if job is None:
                raise ApiError(404, "no such job (unknown id, or its result expired).")
            return job.to_dict(self.ttl)

    def close(self) -> None:
        """End the job threads once the jobs already queued are done."""
        for _ in self._threads:
            self._todo.put(None)


__all__ = ["Job", "JobContext", "JobStore", "JobTimeout"]
