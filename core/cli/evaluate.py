"""``python -m core evaluate PATH --out DIR``: score a labelled folder / zip / CSV; write predictions.csv and
metrics.json."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from core.cli.common import (
    EXIT_OK,
    UsageError,
    add_id_path_options,
    assign_id_paths,
    chosen_keys,
    create_detectors,
    err,
    parse_id_paths,
)
from core.evaluation import datasets as D
from core.evaluation import runner as E
from core.evaluation.distributed.engine import DetectorInfo, evaluate_ray
from core.evaluation.distributed.shards import SHARDS_FOLDER
from core.evaluation.profiled import apply_profile
from core.tables import frame_to_csv
from core.verdict.calibration import load_profile


SUMMARY_COLUMNS = ("accuracy", "balanced_accuracy", "tpr", "tnr", "roc_auc", "average_precision", "eer",
                   "tpr_at_fpr_5", "ece")


def _print_summary(report) -> None:  # noqa: ANN001 - runner.Report
    """One line per source with the headline metrics (TPR = fake recall, TNR = real recall)."""
    widths = [max(len(c), 6) for c in SUMMARY_COLUMNS]
    print(f"{'source':<28} {'n':>6} " + " ".join(f"{c:>{w}}" for c, w in zip(SUMMARY_COLUMNS, widths)))
    for key, sr in report.sources.items():
        m = sr.overall
        cells = [("n/a" if m.value(c) is None else f"{m.value(c):.4f}") for c in SUMMARY_COLUMNS]
        print(f"{key[:28]:<28} {m.n:>6} " + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))


def _check_options(args: argparse.Namespace) -> tuple[Path, Path]:
    """The input path and the output folder, after the checks that need no detector (raises UsageError)."""
    path = Path(args.path).expanduser()
    if not path.exists():
        raise UsageError(f"{path}: not found.")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise UsageError(f"--threshold must be strictly between 0 and 1 (got {args.threshold}).")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1.")
    if args.engine != "ray" and (args.address or args.workers is not None):
        raise UsageError("--address and --workers go with --engine ray.")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1.")
    out_dir = Path(args.out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: exists and is not a folder.")
    return path, out_dir


def _load_inputs(path: Path, args: argparse.Namespace, keys: list[str]):  # noqa: ANN202
    """(dataset, external scores or None) from a folder / zip / labels CSV / predictions CSV."""
    external = None
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt"):
        try:
            ds_csv, ext = E.read_predictions(path, name=path.name)
        except D.DatasetError:
            ds_csv = ext = None          # a labels CSV (no score column)
        if ext is not None:
            external = ext
            dataset = D.from_labels_csv(path) if keys else ds_csv
        else:
            dataset = D.from_labels_csv(path)
    else:
        dataset = D.from_path(path)
    if args.predictions:
        _, external = E.read_predictions(Path(args.predictions).expanduser(), name=Path(args.predictions).name)
    return dataset, external


def _ensure_out_dir(out_dir: Path) -> None:
    """Create the output folder now: fail before a long run, not after it."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(out_dir, os.W_OK)
    except OSError as exc:
        raise UsageError(f"--out {out_dir}: cannot create the folder ({exc.strerror or exc}).") from exc
    if not writable:
        raise UsageError(f"--out {out_dir}: the folder is not writable.")


def _run(dataset, dets: list, external, args: argparse.Namespace):  # noqa: ANN001, ANN202
    """Score the dataset with a progress bar on stderr."""
    bars: list = []

    def progress(done: int, total: int, eta: float | None) -> None:
        if not bars:                    # drawn once at creation; update() (not refresh) avoids a second 0/N line
            bars.append(tqdm(total=total, unit="img", desc="evaluate", file=sys.stderr, dynamic_ncols=True))
        bars[0].update(done - bars[0].n)

    common = dict(batch_size=args.batch_size, progress=progress, cache=not args.no_cache,
                  ensemble=False if args.no_ensemble else None, external=external)
    ray = getattr(args, "engine", "local") == "ray"      # `calibrate` shares this and always scores locally
    try:
        if ray:
            return evaluate_ray(dataset, dets, address=args.address, workers=args.workers, verbose=args.verbose,
                                shards_dir=Path(args.out).expanduser() / SHARDS_FOLDER,
                                log=lambda line: tqdm.write(line, file=sys.stderr), **common)
        return E.evaluate(dataset, dets, **common)
    except KeyboardInterrupt:
        kept = ("the finished batches are kept in the shards under --out" if ray else
                "the scores computed so far are cached")
        raise UsageError(f"interrupted; {kept}, so the same command resumes.") from None
    finally:
        for b in bars:
            b.close()


def _write_results(run, report, out_dir: Path, profile=None) -> tuple[Path, Path]:  # noqa: ANN001
    """predictions.csv and metrics.json, each written whole or not at all."""
    pred_path, metrics_path = out_dir / "predictions.csv", out_dir / "metrics.json"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = pred_path.with_name(pred_path.name + ".part")
        frame_to_csv(E.predictions_frame(run), tmp)
        tmp.replace(pred_path)
        tmp = metrics_path.with_name(metrics_path.name + ".part")
        tmp.write_text(json.dumps(E.metrics_json(run, report, profile), indent=1, allow_nan=False), encoding="utf-8")
        tmp.replace(metrics_path)
    except OSError as exc:
        raise UsageError(f"cannot write the results to {out_dir} ({exc.strerror or exc}).") from exc
    return pred_path, metrics_path


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run the evaluation (user errors raise DeepfakeLensError: exit 2 and one sentence)."""
    path, out_dir = _check_options(args)
    profile = load_profile(args.profile) if args.profile else None      # a bad profile fails before the run
    keys = chosen_keys(args.detectors)
    weights = assign_id_paths(parse_id_paths(args.weights, "--weights"), keys, "--weights")
    backbones = assign_id_paths(parse_id_paths(args.backbone, "--backbone"), keys, "--backbone")
    dataset, external = _load_inputs(path, args, keys)
    if not keys and external is None:
        dataset.close()
        return err("choose detectors with --detectors ID[,ID...] (or give a predictions CSV with score columns).")
    if not dataset.items:
        dataset.close()
        return err(f"{path}: no files found.")
    with dataset:
        dets = create_detectors(keys, weights, backbones)
        if args.engine == "ray":         # the actors load their own models: keep only identities and weights here
            dets = [DetectorInfo.of(d) for d in dets]
        _ensure_out_dir(out_dir)
        print(dataset.summary(), file=sys.stderr)
        run = _run(dataset, dets, external, args)
    if profile is not None:                # adds <key>_calibrated columns and the stacked one
        run, notes = apply_profile(run, profile)
        for note in notes:
            print(f"profile {profile.name}: {note}", file=sys.stderr)
    report = E.compute_report(run, args.threshold)
    pred_path, metrics_path = _write_results(run, report, out_dir, profile)
    _print_summary(report)
    c = run.counts()
    print(f"{len(run.rows)} files: {c['ok']} scored, {c['error']} unreadable, {c['skipped']} skipped, "
          f"{c['unlabelled']} unlabelled; {run.computed} scores computed, {run.from_cache} from the cache.")
    print(f"wrote {pred_path} and {metrics_path}")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``evaluate``."""
    s = subparsers.add_parser("evaluate", help="score a labelled folder / zip / CSV; write predictions.csv and "
                                               "metrics.json")
    s.add_argument("path", help="a folder (labels from real/ fake/ 0_real/ 1_fake/ folders), a .zip, a labels CSV "
                                "(path,label[,group]) or a predictions CSV (path,label,score columns)")
    s.add_argument("--detectors", help="ID[,ID...] (each ID or ID:variant)")
    add_id_path_options(s)
    s.add_argument("--threshold", type=float, help="p_fake threshold for every detector (default: each one's own)")
    s.add_argument("--predictions", metavar="CSV", help="scores from another tool to evaluate alongside")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--no-cache", action="store_true", help="neither read nor write the score cache")
    s.add_argument("--no-ensemble", action="store_true", help="do not add the ensemble of the chosen detectors")
    s.add_argument("--out", required=True, help="folder for predictions.csv and metrics.json")
    s.add_argument("--profile", metavar="PROFILE.json",
                   help="calibration profile: adds calibrated columns and the learned fusion (stacked)")
    s.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: a Ray cluster (pip install -r requirements-scale.txt)")
    s.add_argument("--address", metavar="auto|HOST:PORT",
                   help="join this Ray cluster (needs its token: RAY_AUTH_MODE=token, RAY_AUTH_TOKEN); "
                        "default: start a private local instance")
    s.add_argument("--workers", type=int, metavar="N",
                   help="Ray actors per detector (default: sized from the cluster's CPUs)")
    s.add_argument("--verbose", action="store_true", help="show Ray's own logs and progress bars")
    s.set_defaults(func=cmd_evaluate)
