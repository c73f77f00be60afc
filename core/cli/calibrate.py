"""``python -m core calibrate PATH --out PROFILE.json``: fit a calibration profile on labelled data.

PATH is anything ``evaluate`` accepts: a labelled folder, a zip, a labels CSV (with ``--detectors``), or a
predictions CSV from any tool (no weights needed). Prints, per score source, the AUC, the ECE before → after
calibration (cross-validated) and the threshold, then the learned fusion and the original weighted vote.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import (EXIT_OK, UsageError, add_id_path_options, assign_id_paths, chosen_keys,
                             create_detectors, err, parse_id_paths)
from core.cli.evaluate import _load_inputs, _run
from core.evaluation.profiled import fit_from_run
from core.evaluation.records import EvalRun
from core.evaluation.runner import evaluate
from core.models.registry import get_spec
from core.models.weights.store import sha256_file
from core.verdict.calibration import Profile
from core.verdict.fitting import profile_table


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def print_table(profile: Profile) -> None:
    """The summary table: AUC, ECE before → after, threshold per source, the fusion and the original vote."""
    print(f"{'source':<44} {'method':<9} {'n':>6} {'AUC':>7} {'ECE before → after':>21} {'threshold':>9}")
    for r in profile_table(profile):
        ece = f"{_fmt(r['ece_before'])} → {_fmt(r['ece_after'])}" if r["ece_before"] is not None else \
            (_fmt(r["ece_after"]) if r["ece_after"] is not None else "n/a")
        print(f"{r['source'][:44]:<44} {r['method']:<9} {r['n']:>6} {_fmt(r['auc']):>7} {ece:>21} "
              f"{_fmt(r['threshold']):>9}")
    for n in profile.notes:
        print(f"note: {n}", file=sys.stderr)


def _sidecar_weights(path: Path, run: EvalRun) -> dict[str, str]:
    """Weights sha256 per column from the metrics.json written next to one of our predictions.csv (if any)."""
    side = path.with_name("metrics.json")
    if not (path.is_file() and side.is_file()):
        return {}
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
        dets = doc["detectors"] if isinstance(doc, dict) else {}
        found = {str(k): v.get("weights_sha256") for k, v in dets.items() if isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}                          # an unrelated or damaged metrics.json: the columns stay unbound
    keys = {s.key for s in run.sources if s.kind == "external"}
    return {k: sha for k, sha in found.items() if k in keys and isinstance(sha, str) and len(sha) == 64}


def _column_weights(pairs: list[tuple[str, str]], run: EvalRun) -> dict[str, str]:
    """``--weights ID=PATH`` for a predictions CSV: bind the column(s) of detector ID to that file's sha256."""
    cols = [s.key for s in run.sources if s.kind == "external"]
    out: dict[str, str] = {}
    for ident, file in pairs:
        key = get_spec(ident).key
        match = [c for c in cols if c in (ident, key)]
        if not match:
            raise UsageError(f"--weights {ident}: the CSV has no score column named {ident} or {key}.")
        if not Path(file).is_file():
            raise UsageError(f"--weights {ident}: {file} is not a file.")
        for c in match:
            out[c] = sha256_file(file)
    return out


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Score the data (or read the CSV's scores), fit the profile, write it and print the table."""
    path = Path(args.path).expanduser()
    if not path.exists():
        raise UsageError(f"{path}: not found.")
    out = Path(args.out).expanduser()
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder; give the profile's file name (e.g. profile.json).")
    keys = chosen_keys(args.detectors)
    pairs = parse_id_paths(args.weights, "--weights")
    weights = assign_id_paths(pairs, keys, "--weights") if keys else {}
    backbones = assign_id_paths(parse_id_paths(args.backbone, "--backbone"), keys, "--backbone")
    args.predictions, args.no_ensemble = None, True       # the options `evaluate`'s helpers read
    dataset, external = _load_inputs(path, args, keys)
    if not keys and external is None:
        dataset.close()
        return err("choose detectors with --detectors ID[,ID...] (or give a predictions CSV with score columns).")
    with dataset:
        dets = create_detectors(keys, weights, backbones)
        print(dataset.summary(), file=sys.stderr)
        # a predictions CSV alone needs no scoring pass (and no progress bar)
        run = _run(dataset, dets, external, args) if dets else evaluate(dataset, (), cache=False, external=external)
    bound = {**_sidecar_weights(path, run), **(_column_weights(pairs, run) if not keys else {})}
    profile = fit_from_run(run, method=args.method, target_fpr=args.target_fpr, column_weights=bound)
    written = profile.save(out)
    print_table(profile)
    prov = profile.provenance
    print(f"fitted on {prov['n']} images ({prov['n_real']} real, {prov['n_fake']} fake) of {prov.get('name')}; "
          f"wrote {written}")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``calibrate``."""
    s = subparsers.add_parser("calibrate", help="fit a calibration profile (per-detector calibration, thresholds, "
                                                "learned fusion) on labelled data")
    s.add_argument("--out", required=True, help="the profile file to write (JSON)")
    s.add_argument("path", help="what `evaluate` accepts: a labelled folder, a .zip, a labels CSV, or a predictions "
                                "CSV from any tool (path,label,score columns)")
    s.add_argument("--detectors", help="ID[,ID...] to run on images (not needed for a predictions CSV)")
    add_id_path_options(s)
    s.add_argument("--method", choices=("auto", "platt", "isotonic"), default="auto",
                   help="auto: the lower cross-validated log-loss of Platt and isotonic (default)")
    s.add_argument("--target-fpr", type=float, default=None, metavar="RATE",
                   help="choose thresholds reaching this false-positive rate (e.g. 0.05) instead of the maximum "
                        "balanced accuracy")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--no-cache", action="store_true", help="neither read nor write the score cache")
    s.set_defaults(func=cmd_calibrate)
