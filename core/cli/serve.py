"""``python -m core serve [--host 127.0.0.1] [--port 8000] [--workers N]``: the HTTP API on uvicorn.

One process: every request shares the cached detectors (see :mod:`core.api.work`). ``--workers`` is the number of
analyses run at once in that process (threads), not a number of processes — separate processes would each load
every model. Binds 127.0.0.1 unless ``--host`` says otherwise; put a reverse proxy with TLS in front for others.
"""
from __future__ import annotations

import argparse
import sys

from core import settings
from core.cli.common import EXIT_OK, UsageError


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {args.port}.")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}.")
    if args.queue is not None and args.queue < 0:
        raise UsageError(f"--queue must be 0 or more, got {args.queue}.")
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout}.")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API until interrupted."""
    _check(args)
    # imported here, not at the top: every other command starts without loading the web stack
    from core.api.app import create_app
    from core.api.server import serve_forever

    app = create_app(workers=args.workers, queue=args.queue, timeout=args.timeout)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.api_token():
        print(f"warning: serving on {args.host} without DEEPFAKE_LENS_API_TOKEN: anyone who can reach this port "
              "can use the API.", file=sys.stderr)
    serve_forever(app, args.host, args.port, args.log_level)
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve``."""
    s = subparsers.add_parser("serve", help="serve the HTTP API (FastAPI on uvicorn; docs at /docs)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    s.add_argument("--workers", type=int, default=None,
                   help="analyses run at once, sharing the loaded models (default DEEPFAKE_LENS_API_WORKERS or 1)")
    s.add_argument("--queue", type=int, default=None,
                   help="requests that may wait before 503 (default DEEPFAKE_LENS_API_QUEUE or 16)")
    s.add_argument("--timeout", type=float, default=None,
                   help="seconds per request (default DEEPFAKE_LENS_API_TIMEOUT or 120)")
    s.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    s.set_defaults(func=cmd_serve)
