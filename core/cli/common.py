"""What every command shares: exit codes, the one-sentence error printer, ``ID=PATH`` options, detector creation.

``--weights ID=PATH`` / ``--backbone ID=PATH`` mean the same in every command: the checkpoint file for the chosen
variant of detector ``ID`` (``ID:variant`` names the variant). ``ID`` must be a known detector, the path is
``~``-expanded, and each chosen variant gets at most one file per option.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from core.errors import DeepfakeLensError
from core.models.detectors.base import Detector
from core.models.factory import create_detector
from core.models.registry import get_spec
from core.models.selection import resolve_key

EXIT_OK = 0
EXIT_USER_ERROR = 2


class UsageError(DeepfakeLensError):
    """A mistake in the command line (exit 2, one sentence)."""


class Parser(argparse.ArgumentParser):
    """argparse with the house error format: one ``error: …`` line and exit 2 (no usage block above it)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the mistake as one sentence and exit with :data:`EXIT_USER_ERROR`."""
        self.exit(EXIT_USER_ERROR, f"error: {message} (see `{self.prog} --help`).\n")


def err(msg: str) -> int:
    """Print ``error: <msg>`` as one line on stderr and return :data:`EXIT_USER_ERROR`."""
    print("error: " + " ".join(str(msg).split()), file=sys.stderr)
    return EXIT_USER_ERROR


def os_error_sentence(exc: OSError) -> str:
    """One sentence for a file-system error: the path and the system's reason, never a traceback."""
    where = exc.filename if exc.filename is not None else "a file"
    why = exc.strerror or type(exc).__name__
    return f"{where}: {why[0].lower() + why[1:] if why else why}."


def split_ids(text: str | None) -> list[str]:
    """``"NPR, CLIP-D:original"`` → ``["NPR", "CLIP-D:original"]`` (empty items dropped)."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def chosen_keys(text: str | None, flag: str = "--detectors") -> list[str]:
    """The ``ID:variant`` keys named by a ``--detectors`` value, in order.

    Raises:
        UnknownDetector: an id or variant that is not registered.
        UsageError: one variant named twice.
    """
    keys = [resolve_key(name) for name in split_ids(text)]      # a bare ID: its installed / remembered variant
    if len(set(keys)) != len(keys):
        raise UsageError(f"a detector variant is listed twice in {flag}.")
    return keys


def parse_id_paths(values: Sequence[str] | None, flag: str) -> list[tuple[str, str]]:
    """Check the syntax of repeated ``ID=PATH`` options.

    Returns:
        ``(ID or ID:variant, expanded path)`` per option, in order.

    Raises:
        UsageError: a value without ``=``, an id or a path.
        UnknownDetector: ``ID`` is not a registered detector (or variant).
    """
    out: list[tuple[str, str]] = []
    for value in values or ():
        ident, sep, path = value.partition("=")
        ident, path = ident.strip(), path.strip()
        if not sep or not ident or not path:
            raise UsageError(f"{flag} expects ID=PATH (e.g. {flag} NPR=~/NPR.pth), got {value!r}.")
        get_spec(ident)
        out.append((ident, str(Path(path).expanduser())))
    return out


def _matches(ident: str, key: str) -> bool:
    return key == ident or (":" not in ident and key.split(":", 1)[0] == ident)


def assign_id_paths(pairs: Sequence[tuple[str, str]], keys: Sequence[str], flag: str) -> dict[str, str]:
    """Give each ``(ID, path)`` from :func:`parse_id_paths` to the one chosen variant it names.

    Raises:
        UsageError: an id that names none of ``keys`` (or more than one), or one variant given two files.
    """
    out: dict[str, str] = {}
    for ident, path in pairs:
        match = [k for k in keys if _matches(ident, k)]
        if len(match) != 1:
            raise UsageError(f"{flag} {ident}: not one of the chosen detectors ({', '.join(keys) or 'none'}).")
        if match[0] in out:
            raise UsageError(f"{flag} gives {match[0]} two files.")
        out[match[0]] = path
    return out


def add_id_path_options(parser) -> None:  # noqa: ANN001 - argparse.ArgumentParser
    """The repeatable ``--weights ID=PATH`` and ``--backbone ID=PATH`` options (evaluate, report)."""
    parser.add_argument("--weights", action="append", default=[], metavar="ID=PATH",
                        help="checkpoint for one detector (repeatable; ID or ID:variant)")
    parser.add_argument("--backbone", action="append", default=[], metavar="ID=PATH",
                        help="backbone checkpoint for one detector (CLIP-D, P2G; repeatable)")


def create_detectors(keys: Sequence[str], weights: dict[str, str] | None = None,
                     backbones: dict[str, str] | None = None) -> list[Detector]:
    """Build the chosen variants, each with its explicit checkpoint(s) or the installed ones.

    Raises:
        WeightsError: a checkpoint is missing, corrupt or refused (one sentence naming the detector).
    """
    weights, backbones = weights or {}, backbones or {}
    return [create_detector(k, weights=weights.get(k), backbone_weights=backbones.get(k)) for k in keys]


class ByteProgress:
    """A tqdm bar on stderr for byte counts (downloads), fed as ``update(done, total)``."""

    def __init__(self, desc: str) -> None:
        self._desc = desc
        self._bar: tqdm | None = None       # drawn at the first byte: a download that fails at once prints no bar

    def update(self, done: int, total: int | None) -> None:
        """Move the bar to ``done`` bytes of ``total``."""
        if self._bar is None:
            self._bar = tqdm(desc=self._desc, unit="B", unit_scale=True, file=sys.stderr, total=total)
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)     # tqdm's own rate limit: one line per refresh, not per chunk

    def close(self) -> None:
        """End the bar's line (nothing when no byte arrived)."""
        if self._bar is not None:
            self._bar.close()


__all__ = ["EXIT_OK", "EXIT_USER_ERROR", "UsageError", "Parser", "err", "os_error_sentence", "split_ids", "chosen_keys",
           "parse_id_paths", "assign_id_paths", "add_id_path_options", "create_detectors", "ByteProgress"]
