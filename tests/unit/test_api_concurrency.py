"""The API on a real uvicorn server over loopback: 8 concurrent clients share the cached detectors with no error,
and every answer equals the sequential one; a full queue answers 503 with Retry-After; ``serve`` binds 127.0.0.1.
"""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from core.api import create_app
from core.api.server import background_server
from tests.helpers import ROOT, install_tiny_detectors, png_bytes

CLIENTS = 8
PER_CLIENT = 4


@pytest.fixture()
def installed(tiny_config, weights_home, monkeypatch):
    monkeypatch.delenv("DEEPFAKE_LENS_API_TOKEN", raising=False)
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.3, 3.0), "TB": (0.25, -1.0), "TC": (0.2, 0.5)})


def _scores(doc: dict) -> list:
    """What must not depend on concurrency: every result but its timing, the vote's verdict, the assessment."""
    results = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in doc["results"]]
    return [results, doc["vote"]["verdict"], doc["vote"]["confidence"], doc["assessment"], doc["not_run"]]


def test_eight_concurrent_clients_get_the_sequential_answers(installed):
    images = [png_bytes((96 + 8 * i, 80), seed=i) for i in range(PER_CLIENT)]
    app = create_app(workers=2, queue=CLIENTS * PER_CLIENT)
    with background_server(app) as base:
        with httpx.Client(base_url=base, timeout=60) as c:
            expected = [_scores(c.post("/v1/detect", files={"image": (f"{i}.png", im)}).json())
                        for i, im in enumerate(images)]
        errors: list[str] = []

        def client(n: int) -> list:
            out = []
            with httpx.Client(base_url=base, timeout=60) as c:
                for i in range(PER_CLIENT):
                    k = (n + i) % PER_CLIENT
                    r = c.post("/v1/detect", files={"image": (f"{k}.png", images[k])})
                    if r.status_code != 200:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                        continue
                    out.append((k, _scores(r.json())))
            return out

        t0 = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            answers = [a for part in pool.map(client, range(CLIENTS)) for a in part]
        elapsed = time.monotonic() - t0
        loaded = httpx.get(f"{base}/v1/health").json()["loaded"]
    assert errors == []
    assert len(answers) == CLIENTS * PER_CLIENT and elapsed < 60
    assert all(doc == expected[k] for k, doc in answers)
    assert sorted(loaded) == ["TA:original", "TB:original", "TC:original"]       # one shared model each


def test_a_full_queue_answers_503_with_retry_after(installed):
    app = create_app(workers=1, queue=0)
    gate = app.state.gate
    release = threading.Event()
    with background_server(app) as base:
        holder = threading.Thread(target=lambda: asyncio.run(gate.run(lambda: release.wait(20))))
        holder.start()
        t0 = time.monotonic()
        while gate.admitted < 1 and time.monotonic() - t0 < 10:
            time.sleep(0.01)
        try:
            r = httpx.post(f"{base}/v1/detect", files={"image": ("x.png", png_bytes())}, timeout=30)
            assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
            assert r.json()["status"] == 503 and "busy" in r.json()["error"]
            assert httpx.get(f"{base}/v1/health", timeout=30).status_code == 200    # health is never queued
        finally:
            release.set()
            holder.join(20)
        ok = httpx.post(f"{base}/v1/detect", files={"image": ("x.png", png_bytes())}, timeout=30)
        assert ok.status_code == 200


@pytest.mark.slow
def test_serve_binds_loopback_by_default(installed):
    """``python -m core serve`` answers on 127.0.0.1 (its default host) and stops on SIGTERM."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--port", str(port), "--log-level", "warning"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        t0, health = time.monotonic(), None
        while time.monotonic() - t0 < 60 and health is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).json()
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None and health["status"] == "ready"
        assert "TA:original" in health["installed"]
    finally:
        proc.terminate()
        proc.wait(20)
    err = proc.stderr.read().decode()
    # uvicorn shuts down gracefully, then re-raises the signal it caught: exit by SIGTERM, no traceback
    assert proc.returncode in (0, -15) and "Traceback" not in err, err[-2000:]
