"""The user's remembered choices, kept across sessions in one small JSON file (:func:`core.settings.preferences_file`).

Today it holds the detector variant picked for each detector id, so the app (every new session) and the command
line start on the variant the analyst chose last time. The file is untrusted like any other input: anything that
is not a small JSON object of short printable strings is ignored (the defaults apply) and never raises. Writes
are atomic (a temporary file in the same folder, then a rename), so a crash never leaves half a file.

Example:
    >>> save_variants({"R50_TF": "truefake"})
    True
    >>> load_variants()
    {'R50_TF': 'truefake'}
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from core import settings

MAX_FILE_BYTES = 64 * 1024      # a preferences file is a few hundred bytes; a larger one is not ours
_MAX_NAME = 64                  # detector ids and variant names are short
_MAX_ENTRIES = 256


def _clean_name(value: object) -> str | None:
    """``value`` when it is a short one-line printable string, else None."""
    if not isinstance(value, str) or not value or len(value) > _MAX_NAME or not value.isprintable():
        return None
    return value


def _read() -> dict:
    """The file as a dict, or {} when it is absent, too large, unreadable or not a JSON object."""
    path = settings.preferences_file()
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            return {}
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def load_variants() -> dict[str, str]:
    """The remembered ``{detector id: variant}``; entries that are not short printable strings are dropped.

    The names are not checked against the registry here: the caller (:func:`core.models.selection.default_variant`)
    ignores a detector or variant that no longer exists.
    """
    entries = _read().get("variants")
    if not isinstance(entries, dict):
        return {}
    out: dict[str, str] = {}
    for key, value in list(entries.items())[:_MAX_ENTRIES]:
        det_id, variant = _clean_name(key), _clean_name(value)
        if det_id and variant:
            out[det_id] = variant
    return out


def _write(data: dict) -> bool:
    """Write ``data`` atomically; False (nothing changed) when the folder cannot be written."""
    path = settings.preferences_file()
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".preferences-", suffix=".json", dir=path.parent)
        tmp = Path(name)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        return False


def save_variants(changes: Mapping[str, str]) -> bool:
    """Remember the variant chosen for some detector ids (merged with what is remembered already).

    Args:
        changes: ``{detector id: variant}``; entries that are not short printable strings are ignored.

    Returns:
        True when the file was written; False when the preferences folder is not writable (a preference is a
        convenience: failing to save it never stops the work).
    """
    data = _read()
    variants = load_variants()
    for key, value in changes.items():
        det_id, variant = _clean_name(key), _clean_name(value)
        if det_id and variant:
            variants[det_id] = variant
    data["variants"] = variants
    return _write(data)


__all__ = ["MAX_FILE_BYTES", "load_variants", "save_variants"]
