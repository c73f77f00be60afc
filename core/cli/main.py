"""Command line: ``python -m core list | weights ... | detect ... | evaluate ... | report ...``.

Each command lives in its own module with ``add_parser(subparsers)``; what they share (exit codes, ``ID=PATH``
options, the error printer) is in :mod:`core.cli.common`. To add a command: a new module here with
``add_parser`` that sets ``func``, and one line in :data:`COMMANDS`.

User errors (unknown id, missing/corrupt/refused weights, unreadable image, a bad option value, an unusable output
path) exit with code 2 and one sentence on stderr — never a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from core.cli import calibrate, detect, evaluate, list as list_cmd, report, serve, video, weights
from core.cli.common import EXIT_OK, Parser, err, os_error_sentence
from core.errors import DeepfakeLensError

COMMANDS = (list_cmd, weights, detect, evaluate, calibrate, report, video, serve)


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree: one sub-command per module in :data:`COMMANDS`."""
    p = Parser(prog="python -m core", description="Deepfake Lens: detectors of AI-generated images.")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0, or 2 for a user error; argparse's own errors exit 2 too)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or EXIT_OK)
    except DeepfakeLensError as exc:
        return err(str(exc))
    except BrokenPipeError:                 # `python -m core list | head`: the reader left early; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:                  # a path the user gave that the system refused (permissions, a folder…)
        return err(os_error_sentence(exc))
    except KeyboardInterrupt:
        return err("interrupted.")
