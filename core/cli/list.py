"""``python -m core list``: one line per detector variant with its weights status."""
from __future__ import annotations

import argparse

from core.cli.common import EXIT_OK
from core.models.install import custom_label
from core.models.registry import list_specs
from core.models.selection import variant_state


def cmd_list(args: argparse.Namespace) -> int:
    """Print ``ID variant state`` per variant (a partial variant also names its parts' states)."""
    for spec in list_specs():
        vs = variant_state(spec)
        extra = f" ({vs.problems()})" if vs.state == "partial" else ""
        label = custom_label(spec) if vs.installed else None
        extra += f"  {label}" if label else ""
        print(f"{spec.id:<11} {spec.variant:<20} {vs.state}{extra}")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``list``."""
    s = subparsers.add_parser("list", help="one line per detector variant with its weights status")
    s.set_defaults(func=cmd_list)
