"""Joining a Ray cluster (or starting a private local instance) and sizing the work to its resources.

Token authentication stays on. A local instance started here gets a random token for its own lifetime (kept in
this process's environment, never written to ``~/.ray``) unless the user set ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN``
themselves. Joining a cluster (``--address``) needs the cluster's token in ``RAY_AUTH_TOKEN`` (or the token file)
with ``RAY_AUTH_MODE=token``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DeepfakeLensError

# Shared with the workers so they find the same detector declarations and stay offline like the driver.
_FORWARDED_ENV = ("DEEPFAKE_LENS_CONFIG_DIRS", "DEEPFAKE_LENS_OFFLINE", "HF_HUB_OFFLINE")
_READ_CPUS = 0.25                 # one read/decode task; what is left on every node after the actors
_DATA_THREADS = ("iter_threaded",)     # Ray Data's batch iterator thread (name as of Ray 2.60)
_LOCAL_OBJECT_STORE = 2 << 30     # bytes; a private instance needs little (batches stream through it)
TOKEN_HELP = ("a cluster with token authentication needs RAY_AUTH_MODE=token and RAY_AUTH_TOKEN set to its token "
              "(`ray get-auth-token` on the head prints it) in the driver's environment.")


class ClusterError(DeepfakeLensError):
    """The Ray cluster cannot be reached, refused us, or Ray is not installed (one sentence)."""


@dataclass(frozen=True)
class Plan:
    """How the run uses the cluster: actors per detector, CPUs per actor and per read task, torch threads."""

    nodes: int
    cpus: float
    pool: int                  # actors per detector variant
    actor_cpus: float          # CPUs reserved by each actor
    read_cpus: float           # CPUs reserved by each read/decode task
    threads: int               # torch intra-op threads per actor

    def describe(self) -> str:
        """One line for the terminal."""
        return (f"Ray: {self.nodes} node(s), {self.cpus:g} CPU(s); per detector {self.pool} actor(s) × "
                f"{self.actor_cpus:.2f} CPU, read/decode tasks {self.read_cpus:.2f} CPU each")


def plan_resources(cpus: float, nodes: int, n_detectors: int, workers: int | None = None) -> Plan:
    """Size the actor pools so that reads always keep room (a pool holding every CPU stalls the pipeline).

    Args:
        cpus: CPUs in the cluster.
        nodes: alive nodes.
        n_detectors: detector variants (one actor pool each).
        workers: actors per detector asked by the user; None = one per whole CPU, shared among the detectors.

    Returns:
        A :class:`Plan`. Each node keeps at least one read task's share free.

    Example:
        >>> plan_resources(2, 1, 1).pool, plan_resources(2, 1, 1).actor_cpus
        (2, 0.875)
    """
    n_detectors = max(1, n_detectors)
    pool = workers if workers else max(1, int(cpus) // n_detectors)
    free = max(cpus - _READ_CPUS * max(1, nodes), _READ_CPUS)
    actor_cpus = min(1.0, free / (pool * n_detectors))
    actor_cpus = max(0.01, math.floor(actor_cpus * 1000) / 1000)
    threads = max(1, int(round(actor_cpus)))
    return Plan(max(1, nodes), float(cpus), pool, actor_cpus, _READ_CPUS, threads)


def project_root() -> Path:
    """The folder holding the ``core`` package (put on the workers' ``PYTHONPATH``)."""
    return Path(__file__).resolve().parents[3]


def _worker_env() -> dict[str, str]:
    """Environment the workers need: the detector declarations, offline flags, and ``core`` importable."""
    env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    paths = [str(project_root())] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the pipeline API
    except ImportError as exc:
        raise ClusterError("the Ray engine needs Ray: pip install -r requirements-scale.txt "
                           f"(ray[data]==2.60.0); {exc}.") from None
    return ray


def _local_token() -> dict[str, str]:
    """Token auth for a private local instance: the user's settings if any, else a random token for this run."""
    if "RAY_AUTH_MODE" in os.environ:
        return {}
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return {"RAY_AUTH_MODE": "token"}
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}


@contextlib.contextmanager
def scoped_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the run (Ray's processes inherit them), then restore the old values.

    Args:
        values: variable → value, e.g. a cluster's ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN`` for one driver run.
    """
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    _reload_auth()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reload_auth()


def _reload_auth() -> None:
    """Make this process's Ray core see the current RAY_AUTH_* settings (they are cached at first use)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config
    except ImportError:
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _quiet(verbose: bool) -> None:
    """Ray's own loggers and progress bars stay quiet unless ``--verbose``."""
    level = logging.INFO if verbose else logging.ERROR
    for name in ("ray", "ray.data", "ray._private", "ray.util"):
        logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Ray's C++ core writes start-up lines straight to file descriptor 2; hide them (errors still raise)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _init(ray: Any, address: str | None, verbose: bool, temp_dir: str | None) -> None:
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=verbose,
                                  logging_level=logging.INFO if verbose else logging.ERROR)
    if address is None:         # the instance's processes inherit this process's environment (see connect)
        kwargs.update(_temp_dir=temp_dir, object_store_memory=_LOCAL_OBJECT_STORE)
    else:                       # nodes started elsewhere get what the workers need through the job's runtime env
        kwargs.update(runtime_env={"env_vars": _worker_env()})
    try:
        with contextlib.nullcontext() if verbose else _stderr_silenced():
            # "local": always a new private instance, even when RAY_ADDRESS names a cluster
            ray.init(address=address or "local", **kwargs)
    except ConnectionError as exc:
        raise ClusterError(f"no Ray cluster answered at {address}, or it refused this driver's token "
                           f"({str(exc).splitlines()[0][:200]}); {TOKEN_HELP}") from None
    except Exception as exc:  # noqa: BLE001 - Ray raises many types; the user gets one sentence
        text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        if "auth" in type(exc).__name__.lower() or "token" in text.lower():
            raise ClusterError(f"the Ray cluster refused this driver ({text}); {TOKEN_HELP}") from None
        raise ClusterError(f"could not start or join Ray ({text}).") from None


def _join_data_threads(timeout: float = 15.0) -> None:
    """Wait for Ray Data's iterator threads of a stopped run: one that touches Ray after ``ray.shutdown()`` makes
    Ray's core end the whole process (seen after a cancelled run)."""
    end = time.monotonic() + timeout
    for t in threading.enumerate():
        if t is not threading.current_thread() and t.name in _DATA_THREADS:
            t.join(max(0.0, end - time.monotonic()))


def _ray_descendants() -> list[int]:
    """Ray processes below this one (the local instance's GCS, raylet and workers), read from /proc (Linux)."""
    parent: dict[int, int] = {}
    for p in Path("/proc").glob("[0-9]*"):
        try:
            parent[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, pp in parent.items() if pp in frontier and pid not in mine}
        mine |= frontier
    out = []
    for pid in mine:
        try:
            if b"ray" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            continue
    return out


def _reap(pids: list[int], grace: float = 10.0) -> None:
    """Wait for the local instance's processes to exit after shutdown; kill the ones that linger (workers may
    take a minute to notice their raylet is gone)."""
    end = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < end:
        time.sleep(0.2)
        alive = [p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)]
    for pid in alive:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@contextlib.contextmanager
def connect(address: str | None = None, *, verbose: bool = False) -> Iterator[Any]:
    """Join the cluster at ``address`` (``auto`` or ``HOST:PORT``), or start a private local instance.

    The local instance has no dashboard, no usage statistics, a private short temp folder (Ray's socket paths
    must stay under 108 characters) and a per-run token; it is shut down and its folder removed on exit.

    Yields:
        The ``ray`` module, initialised.

    Raises:
        ClusterError: Ray missing, the cluster unreachable, or its token refused.
    """
    ray = _import_ray()
    _quiet(verbose)
    env = {"RAY_USAGE_STATS_ENABLED": os.environ.get("RAY_USAGE_STATS_ENABLED", "0")}
    if not verbose:      # Ray's C++ core prints warnings on the terminal (e.g. about actor arguments)
        env["RAY_BACKEND_LOG_LEVEL"] = os.environ.get("RAY_BACKEND_LOG_LEVEL", "fatal")
    temp_dir = tempfile.mkdtemp(prefix="dlray-", dir="/tmp") if address is None else None
    stack = contextlib.ExitStack()
    try:
        if address is None:
            env.update(_local_token(), PYTHONPATH=_worker_env()["PYTHONPATH"])
        stack.enter_context(scoped_env(env))
        if not verbose:
            stack.enter_context(warnings.catch_warnings())
            warnings.filterwarnings("ignore", module=r"ray(\.|$)")
        _init(ray, address, verbose, temp_dir)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = verbose
        ctx.print_on_execution_start = verbose
        yield ray
    finally:
        _join_data_threads()
        ours = _ray_descendants() if address is None else []
        with contextlib.suppress(Exception):
            ray.shutdown()
        _reap(ours)
        stack.close()
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def current_plan(ray: Any, n_detectors: int, workers: int | None) -> Plan:
    """:func:`plan_resources` for the cluster this process is connected to."""
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    cpus = float(ray.cluster_resources().get("CPU", 0.0))
    if cpus <= 0:
        raise ClusterError("the Ray cluster has no CPU to run on.")
    return plan_resources(cpus, nodes, n_detectors, workers)


__all__ = ["ClusterError", "Plan", "plan_resources", "connect", "current_plan", "project_root", "scoped_env"]
