"""Names and labels of evaluation inputs: sanitising untrusted names, labels from folder names and label cells,
and reading labels / predictions CSVs (bounded, text-only, one sentence on any problem).

A CSV is untrusted input: it is read only if it is a regular file within the byte limit, must be UTF-8 text
without NUL bytes, and a field longer than the CSV module's limit is refused with a sentence (never a traceback).
"""
from __future__ import annotations

import csv
import io
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from core import archive, settings
from core.errors import DeepfakeLensError

__all__ = ["DatasetError", "REAL_NAMES", "FAKE_NAMES", "ID_COLUMNS", "LABEL_COLUMNS", "sanitize_name",
           "parse_label", "label_from_name", "read_csv_rows", "find_column", "labels_from_csv", "unique_basenames",
           "norm_folder"]

REAL_NAMES = frozenset({"real", "reals", "0_real", "nature", "authentic", "pristine"})
FAKE_NAMES = frozenset({"fake", "fakes", "1_fake", "ai", "ai_generated", "generated", "synthetic"})
_LABEL_VALUES = {**{k: 0 for k in REAL_NAMES | {"0", "false", "camera", "no"}},
                 **{k: 1 for k in FAKE_NAMES | {"1", "true", "yes"}}}


class DatasetError(DeepfakeLensError, ValueError):
    """The input as a whole cannot be used (not found, not a zip, too many files); a complete sentence."""


# --------------------------------------------------------------------------------------------- names and labels

CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def sanitize_name(name: str) -> tuple[str | None, str]:
    """Turn an untrusted relative name (zip member, uploaded file name) into a clean '/'-separated path.

    Returns:
        (clean path, "") or (None, why it was refused): absolute paths, drive letters, UNC paths, ``..``
        components and control characters are refused, never repaired.

    Example:
        >>> sanitize_name("data\\\\real/./a.png")
        ('data/real/a.png', '')
        >>> sanitize_name("../../etc/passwd")
        (None, 'path traversal (..) in the name')
    """
    return archive.clean_name(name)


def norm_folder(part: str) -> str:
    return re.sub(r"[\s\-_]+", "_", part.strip().lower()).strip("_")


def parse_label(value: object) -> int | None:
    """A label cell → 1 (fake), 0 (real) or None (empty / unknown): ``fake``, ``1``, ``1_fake``, ``real``, …"""
    if value is None:
        return None
    text = norm_folder(str(value))
    if text.endswith(".0") and text[:-2] in ("0", "1"):
        text = text[:-2]
    return _LABEL_VALUES.get(text)


def label_from_name(path: str) -> tuple[int | None, str]:
    """(label, group) from the folders of a clean relative path.

    The deepest folder named like a label decides; the remaining folders (above and below it) form the group.

    Example:
        >>> label_from_name("progan/airplane/1_fake/001.png")
        (1, 'progan/airplane')
        >>> label_from_name("Fake/Stable Diffusion/x.jpg")
        (1, 'Stable Diffusion')
    """
    folders = path.split("/")[:-1]
    for i in range(len(folders) - 1, -1, -1):
        norm = norm_folder(folders[i])
        if norm in REAL_NAMES or norm in FAKE_NAMES:
            return (1 if norm in FAKE_NAMES else 0), "/".join(folders[:i] + folders[i + 1:])
    return None, "/".join(folders)


def unique_basenames(labels: Mapping[str, tuple[int | None, str]]) -> dict[str, tuple[int | None, str]]:
    seen: dict[str, tuple[int | None, str] | None] = {}
    for k, v in labels.items():
        b = PurePosixPath(k).name
        seen[b] = None if b in seen else v
    return {k: v for k, v in seen.items() if v is not None}


# --------------------------------------------------------------------------------------------- labels CSV

ID_COLUMNS = ("path", "file", "filename", "image", "id", "name")
LABEL_COLUMNS = ("label", "y", "target", "is_fake", "class")
_KNOWN_COLUMNS = frozenset(ID_COLUMNS + LABEL_COLUMNS + ("group", "status", "reason", "sha256"))


def _read_csv_bytes(src: str | Path) -> bytes:
    """The bytes of a CSV named by path: a regular file (never a FIFO or device, which would block) within the
    byte limit."""
    path = Path(src).expanduser()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (OSError, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a valid path"
        raise DatasetError(f"{path}: cannot be read ({why}).") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DatasetError(f"{path}: not a regular file (a CSV must be a file, not a pipe, device or folder).")
        if st.st_size > settings.max_bytes():
            raise DatasetError(f"{path}: the CSV is {st.st_size / 1e6:.0f} MB, above the "
                               f"{settings.max_bytes() / 1e6:.0f} MB limit.")
        return f.read(settings.max_bytes() + 1)


def read_csv_rows(src: str | Path | bytes) -> list[dict[str, str]]:
    """Rows of a CSV (bytes or path) as dicts keyed by the stripped header (known column names lower-cased).

    Raises:
        DatasetError: unreadable, not a regular file, too large, not UTF-8 text (NUL bytes included), a field over
            the CSV module's field limit, malformed quoting, or empty.
    """
    raw = bytes(src) if isinstance(src, (bytes, bytearray, memoryview)) else _read_csv_bytes(src)
    if len(raw) > settings.max_bytes():
        raise DatasetError(f"the CSV is above the {settings.max_bytes() / 1e6:.0f} MB limit.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError("the CSV is not UTF-8 text.") from None
    if "\x00" in text:
        raise DatasetError("the CSV contains NUL bytes, so it is not a text CSV (re-export it as UTF-8 CSV).")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text, newline=""), dialect=dialect)

    def key(k: str) -> str:
        k = k.strip()
        return k.lower() if k.lower() in _KNOWN_COLUMNS else k      # score columns keep their case
    rows = []
    try:
        if not reader.fieldnames:
            raise DatasetError("the CSV is empty (no header row).")
        for row in reader:
            rows.append({key(k): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()
                         if k is not None})
    except csv.Error as exc:
        limit = csv.field_size_limit()
        if "field larger than field limit" in str(exc):
            raise DatasetError(f"the CSV has a field longer than {limit} characters (line "
                               f"{reader.line_num}); a labels CSV holds short paths and labels.") from None
        raise DatasetError(f"the CSV is malformed at line {reader.line_num} ({exc}).") from None
    return rows


def find_column(columns: Iterable[str], candidates: Iterable[str]) -> str | None:
    """The first of ``candidates`` present in ``columns``."""
    cols = list(columns)
    return next((c for c in candidates if c in cols), None)


def labels_from_csv(src: str | Path | bytes) -> dict[str, tuple[int | None, str]]:
    """A labels CSV (path,label[,group]) → clean path → (label, group).

    Raises:
        DatasetError: no path/label column.
    """
    rows = read_csv_rows(src)
    cols = list(rows[0]) if rows else []
    id_col, label_col = find_column(cols, ID_COLUMNS), find_column(cols, LABEL_COLUMNS)
    if id_col is None or label_col is None:
        raise DatasetError(f"the labels CSV needs a path column and a label column (found: {', '.join(cols)}).")
    out = {}
    for r in rows:
        clean, _ = sanitize_name(r.get(id_col, ""))
        if clean:
            out[clean] = (parse_label(r.get(label_col)), r.get("group", ""))
    return out


