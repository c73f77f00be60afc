"""Predictions made elsewhere: a CSV with one or more score columns, evaluated like our own detectors.
"""

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from core.convert import safe_logit, sigmoid
from core.evaluation.datasets import Dataset, Item
from core.evaluation.labels import (
    ID_COLUMNS,
    LABEL_COLUMNS,
    DatasetError,
    find_column,
    parse_label,
    read_csv_rows,
    sanitize_name,
)
from core.evaluation.records import ENSEMBLE_KEY, ExternalScores, SourceInfo


_META_COLUMNS = {"group", "status", "reason", "sha256", "verdict", "ensemble_verdict"}


def _score_columns(cols: Sequence[str], rows: list[dict[str, str]], skip: set[str]) -> list[tuple[str, str | None, str | None]]:
    """(source name, p column, logit column) for every numeric column (pairs ``X_logit``/``X_p_fake`` join)."""
    def numeric(c: str) -> bool:
        vals = [r.get(c, "") for r in rows]
        ok = 0
        for v in vals:
            if v == "":
                continue
            try:
                float(v)
                ok += 1
            except ValueError:
                return False
        return ok > 0
    cand = [c for c in cols if c not in skip and c not in _META_COLUMNS and numeric(c)]
    out: list[tuple[str, str | None, str | None]] = []
    used: set[str] = set()
    for c in cand:
        if c in used:
            continue
        for suf in ("_p_fake", " p_fake", ".p_fake"):
            if c.endswith(suf):
                stem = c[: -len(suf)]
                lg = next((stem + s for s in ("_logit", " logit", ".logit") if stem + s in cand), None)
                out.append((stem, c, lg))
                used.update({c, lg} - {None})
                break
        else:
            for suf in ("_logit", " logit", ".logit"):
                if c.endswith(suf):
                    stem = c[: -len(suf)]
                    pc = next((stem + s for s in ("_p_fake", " p_fake", ".p_fake") if stem + s in cand), None)
                    out.append((stem, pc, c))
                    used.update({c, pc} - {None})
                    break
            else:
                out.append((c, c, None))
                used.add(c)
    return out


def read_predictions(src: str | Path | bytes, *, name: str = "predictions CSV") -> tuple[Dataset, ExternalScores]:
    """A predictions CSV from any tool → (rows as a dataset without image data, its score columns).

    Columns: an id (``path``/``id``/``file``/…), a ``label`` (real/fake/0/1), optionally ``group``, and one or
    more numeric score columns (higher = more likely fake). ``X_p_fake``/``X_logit`` pairs (this tool's own
    predictions.csv) form one source. A column with values only in [0, 1] is read as P(fake); any other column
    as a logit-like score (sigmoid applied; its ECE is n/a).

    Raises:
        DatasetError: no id/label column, or no numeric score column.
    """
    rows = read_csv_rows(src)
    if not rows:
        raise DatasetError("the predictions CSV has no rows.")
    cols = list(rows[0])
    id_col, label_col = find_column(cols, ID_COLUMNS), find_column(cols, LABEL_COLUMNS)
    if id_col is None or label_col is None:
        raise DatasetError("the predictions CSV needs an id/path column and a label column "
                           f"(found: {', '.join(cols)}).")
    specs = _score_columns(cols, rows, {id_col, label_col})
    if not specs:
        raise DatasetError("the predictions CSV has no numeric score column.")
    items, ids = [], []
    for i, r in enumerate(rows):
        clean, _ = sanitize_name(r.get(id_col, ""))
        shown = clean or r.get(id_col, "") or f"row {i + 2}"
        label = parse_label(r.get(label_col))
        status = r.get("status", "") if r.get("status", "") in ("skipped", "error", "unlabelled", "cancelled") \
            else ("ok" if label is not None else "unlabelled")
        reason = r.get("reason", "") if status != "ok" else ""
        if status == "unlabelled" and not reason:
            reason = f"label {r.get(label_col)!r} is not real/fake/0/1" if r.get(label_col) else "no label"
        items.append(Item(shown, label, r.get("group", ""), status, reason))
        ids.append(shown)
    sources, logits, probs = [], {}, {}

    def col(c: str | None) -> np.ndarray | None:
        if c is None:
            return None
        out = np.full(len(rows), np.nan)
        for i, r in enumerate(rows):
            try:
                out[i] = float(r.get(c, "")) if r.get(c, "") != "" else np.nan
            except ValueError:
                pass
        out[~np.isfinite(out)] = np.nan
        return out

    for stem, pc, lc in specs:
        p, z = col(pc), col(lc)
        note, prob = "", True
        if p is not None and z is None:
            fin = p[np.isfinite(p)]
            if fin.size and (fin.min() < 0 or fin.max() > 1):
                z, p = p, sigmoid(p)
                prob = False
                note = "values outside [0, 1]: read as a logit-like score (sigmoid applied); ECE not defined"
        elif p is None and z is not None:
            p = sigmoid(z)
        key = stem if stem not in (ENSEMBLE_KEY,) else f"{stem} (CSV)"
        sources.append(SourceInfo(key=key, kind="external", name=f"{stem} (CSV)", threshold=0.5,
                                  probabilistic=prob, note=note))
        probs[key] = np.asarray(p, dtype=np.float64)
        logits[key] = np.asarray(z, dtype=np.float64) if z is not None else \
            np.where(np.isfinite(p), safe_logit(np.nan_to_num(p, nan=0.5)), np.nan)
    ds = Dataset(name, "predictions", tuple(items), ())
    return ds, ExternalScores(tuple(sources), tuple(ids), logits, probs)


def _match_external(rows: Sequence[Item], ext: ExternalScores) -> tuple[np.ndarray, str]:
    """Index into the CSV rows for every dataset row (-1 = not in the CSV), by path, else by unique file name."""
    by_path = {}
    for j, i in enumerate(ext.ids):
        by_path.setdefault(i, j)
    base_count: dict[str, int] = {}
    for i in ext.ids:
        b = PurePosixPath(i).name
        base_count[b] = base_count.get(b, 0) + 1
    by_base = {PurePosixPath(i).name: j for j, i in enumerate(ext.ids) if base_count[PurePosixPath(i).name] == 1}
    idx = np.full(len(rows), -1, dtype=np.int64)
    for k, r in enumerate(rows):
        j = by_path.get(r.path)
        if j is None:
            j = by_base.get(PurePosixPath(r.path).name)
        if j is not None:
            idx[k] = j
    n_ok = sum(1 for r in rows if r.status == "ok")
    n_hit = sum(1 for k, r in enumerate(rows) if r.status == "ok" and idx[k] >= 0)
    note = f"predictions CSV matched {n_hit} of {n_ok} images" if n_hit < n_ok else ""
    return idx, note


