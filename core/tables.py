"""CSV exports that are safe to open in a spreadsheet: the one policy for every CSV this tool writes.

Two classes of problem come from untrusted text (file names, metadata) in a CSV:

* **Formula injection** (OWASP "CSV injection"): a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return is run as a formula by Excel, LibreOffice and Google Sheets. Such *text* cells get a leading apostrophe,
  which spreadsheets show as plain text. Numbers (a negative logit) are left as numbers.
* **Split rows**: a carriage return or line feed inside a file name must not start a new row. Rows end in CRLF
  (RFC 4180), so every cell holding either character is quoted and each input stays exactly one row.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["FORMULA_PREFIXES", "spreadsheet_safe", "frame_to_csv", "rows_to_csv"]

#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would run as a formula; then prefixed with ``'``.

    Example:
        >>> spreadsheet_safe("=HYPERLINK(\\"http://x\\")")
        '\\'=HYPERLINK("http://x")'
        >>> spreadsheet_safe(-0.5)
        -0.5
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def frame_to_csv(frame: Any, path: Any = None) -> str | None:
    """Write a pandas DataFrame as a spreadsheet-safe CSV (to ``path``, or return the text).

    Text cells are neutralised (:func:`spreadsheet_safe`), rows end in CRLF so that a CR or LF inside a cell is
    quoted, and the index is not written.
    """
    safe = frame.copy()
    for col in safe.columns:
        if not (safe[col].dtype.kind in "biufc"):        # text (object or string dtype); numbers stay numbers
            safe[col] = safe[col].map(spreadsheet_safe)
    safe.columns = [spreadsheet_safe(str(c)) for c in safe.columns]
    return safe.to_csv(path, index=False, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)


def rows_to_csv(fieldnames: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """Dict rows as a spreadsheet-safe CSV text (same policy as :func:`frame_to_csv`)."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=[spreadsheet_safe(f) for f in fieldnames], lineterminator="\r\n",
                       extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({spreadsheet_safe(k): spreadsheet_safe(v) for k, v in row.items()})
    return buf.getvalue()
