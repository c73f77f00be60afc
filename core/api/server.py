"""Running the API on uvicorn: in the foreground (``python -m core serve``) or on a background thread (tests, bench).

Both use one configuration: connections beyond what the queue can hold are refused by uvicorn itself (503), so
uploads waiting to be read stay bounded too, and idle keep-alive connections are closed after 5 s.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def server_config(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> uvicorn.Config:
    """The uvicorn configuration of an app made by :func:`core.api.app.create_app`."""
    gate = app.state.gate
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5,
                          limit_concurrency=2 * (gate.workers + gate.queue) + 8)


def serve_forever(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Serve ``app`` until interrupted (Ctrl-C or SIGTERM)."""
    uvicorn.Server(server_config(app, host, port, log_level)).run()


@contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0,
                      start_timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` on a thread while the block runs; yields the base URL (port 0: a free port).

    Raises:
        RuntimeError: the server did not start within ``start_timeout`` seconds.
    """
    server = uvicorn.Server(server_config(app, host, port, "warning"))
    thread = threading.Thread(target=server.run, name="deepfake-lens-api-server", daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - t0 > start_timeout:
            server.should_exit = True
            raise RuntimeError(f"the API server did not start on {host}:{port}.")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


__all__ = ["background_server", "serve_forever", "server_config"]
