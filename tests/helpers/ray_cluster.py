"""A Ray cluster of N nodes on 127.0.0.1 for tests and benchmarks, with token authentication.

Each node is ``ray start --block`` in its own process group with a private ``--temp-dir``; :meth:`stop` signals
those groups (never ``ray stop``, which would end every Ray process on the machine, other users' included).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers import ROOT

RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_with(text: str) -> list[int]:
    """Processes whose command line or environment contains ``text`` (read from /proc).

    Ray renames its workers (``ray::IDLE``), so a private token in their environment is what identifies ours.
    """
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                if any(text.encode() in (p / f).read_bytes() for f in ("cmdline", "environ")):
                    out.append(int(p.name))
            except OSError:
                continue
    return out


class LoopbackCluster:
    """``nodes`` Ray nodes on loopback, ``cpus`` CPUs each; ``node_env[k]`` adds environment to node ``k``.

    Example:
        >>> with LoopbackCluster(2, env={"DEEPFAKE_LENS_WEIGHTS": "/w"}) as c:
        ...     subprocess.run([..., "--address", c.address], env={**os.environ, **c.driver_env})
    """

    def __init__(self, nodes: int = 2, cpus: int = 1, env: dict[str, str] | None = None,
                 node_env: list[dict[str, str]] | None = None, token: str | None = None) -> None:
        self.nodes, self.cpus = nodes, cpus
        self.token = token or secrets.token_hex(32)
        self.tmp = Path(tempfile.mkdtemp(prefix="dlt-", dir="/tmp"))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.driver_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, "RAY_USAGE_STATS_ENABLED": "0"}
        self.env = {**os.environ, **(env or {}), **self.driver_env,
                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self.node_env = node_env or [{} for _ in range(nodes)]
        self.procs: list[subprocess.Popen] = []

    def _cmd(self, k: int) -> list[str]:
        ports = ["--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
                 "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                 "--metrics-export-port", str(free_port()), "--runtime-env-agent-port", str(free_port())]
        common = ["--num-cpus", str(self.cpus), "--block", "--disable-usage-stats", "--temp-dir",
                  str(self.tmp / f"n{k}"), "--node-ip-address", "127.0.0.1", "--object-store-memory",
                  str(300 << 20), *ports]
        if k == 0:
            return [RAY, "start", "--head", "--port", str(self.port), "--include-dashboard=false", *common]
        return [RAY, "start", "--address", self.address, *common]

    def start(self, timeout: float = 120.0) -> LoopbackCluster:
        """Start the head, then the other nodes; return when every node is alive (else stop them and raise)."""
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        for k in range(self.nodes):
            log = open(self.tmp / f"node{k}.log", "wb")  # noqa: SIM115 - kept open for the node's lifetime
            self.procs.append(subprocess.Popen(self._cmd(k), env={**self.env, **self.node_env[k]}, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT))
            if k == 0:
                self._wait(1, timeout)
        self._wait(self.nodes, timeout)

    def alive_nodes(self) -> int:
        """How many nodes the head reports alive (-1 when it does not answer)."""
        code = ("import ray, sys; ray.init(address=sys.argv[1], include_dashboard=False, logging_level='ERROR',"
                " log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))")
        try:
            res = subprocess.run([sys.executable, "-c", code, self.address], env=self.env, capture_output=True,
                                 text=True, timeout=30)
        except subprocess.TimeoutExpired:
            return -1
        lines = res.stdout.strip().splitlines()
        return int(lines[-1]) if res.returncode == 0 and lines and lines[-1].isdigit() else -1

    def _wait(self, n: int, timeout: float) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(p.poll() is not None for p in self.procs):
                raise RuntimeError(f"a Ray node exited early:\n{self.logs()}")
            if self.alive_nodes() >= n:
                return
            time.sleep(1.0)
        raise RuntimeError(f"the cluster did not reach {n} node(s) in {timeout:.0f} s:\n{self.logs()}")

    def logs(self) -> str:
        """The nodes' terminal output (for failure messages)."""
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.tmp.glob("node*.log")))

    def stop(self) -> None:
        """Signal each node's own process group, then remove the temp folder; no Ray process is left."""
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        end = time.monotonic() + 10
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        end = time.monotonic() + 15
        while pids_with(self.token) and time.monotonic() < end:     # workers exiting after their raylet
            time.sleep(0.5)
        for pid in pids_with(self.token):                           # ours: only our nodes carry this token
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> LoopbackCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
