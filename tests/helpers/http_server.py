"""A real HTTP server on 127.0.0.1 for download tests (plain files and a minimal Hugging Face Hub endpoint)."""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes
    mode: str = "ok"            # ok | truncate (promise the full length, send half, close) | 404 | 500
    hub: bool = False           # answer like the Hub: X-Repo-Commit + ETag headers


@dataclass
class Served:
    base: str
    routes: dict[str, Route]
    hits: list[str] = field(default_factory=list)


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[Served]:
    """Start a threaded HTTP server on a free 127.0.0.1 port serving ``routes`` (path → Route)."""
    served = Served("", routes)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _answer(self, with_body: bool) -> None:
            served.hits.append(f"{self.command} {self.path}")
            route = routes.get(self.path.split("?")[0])
            if route is None or route.mode == "404":
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if route.mode == "500":
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(route.body)))
            self.send_header("Content-Type", "application/octet-stream")
            if route.hub:
                self.send_header("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567")
                self.send_header("ETag", '"' + hashlib.sha256(route.body).hexdigest() + '"')
            self.end_headers()
            if not with_body:
                return
            if route.mode == "truncate":
                self.wfile.write(route.body[: len(route.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(route.body)

        def do_HEAD(self) -> None:
            self._answer(False)

        def do_GET(self) -> None:
            self._answer(True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
