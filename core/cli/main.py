"""Command line: ``python -m core list | weights ... | detect ... | evaluate ...``.

User errors (unknown id, missing/corrupt/refused weights, unreadable image) exit with code 2 and one sentence on
stderr — never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from core.errors import DeepfakeLensError

EXIT_USER_ERROR = 2


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USER_ERROR


def _status_rows(verify: bool = False) -> list[dict]:
    from core.models import weights as W
    from core.models.registry import list_specs
    rows = []
    for spec in list_specs():
        for part, _ in W.parts(spec):
            st = W.status(spec, part, verify=verify)
            rows.append({"detector": spec.id, "variant": spec.variant, "part": part, "state": st.state,
                         "path": str(st.path) if st.path else None, "sha256": st.sha256, "message": st.message})
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    from core.models.registry import list_specs
    rows = _status_rows()
    for spec in list_specs():
        mine = [r for r in rows if r["detector"] == spec.id and r["variant"] == spec.variant]
        if not mine:
            state = "installed"           # nothing to install (e.g. a weight-free detector)
        elif all(r["state"] == "installed" for r in mine):
            state = "installed"
        elif any(r["state"] == "corrupt" for r in mine):
            state = "corrupt"
        else:
            state = "missing" if all(r["state"] == "missing" for r in mine) else "partial"
        extra = "" if state == "installed" else " (" + ", ".join(f"{r['part']} {r['state']}" for r in mine) + ")"
        print(f"{spec.id:<11} {spec.variant:<20} {state}{extra if state == 'partial' else ''}")
    return 0


def cmd_weights_status(args: argparse.Namespace) -> int:
    rows = _status_rows(verify=args.verify)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'detector':<11} {'variant':<20} {'part':<9} {'state':<10} where / how to fix")
    for r in rows:
        info = f"{r['path']}  sha256 {r['sha256'][:16]}…" if r["state"] == "installed" else r["message"]
        print(f"{r['detector']:<11} {r['variant']:<20} {r['part']:<9} {r['state']:<10} {info}")
    return 0


def cmd_weights_import(args: argparse.Namespace) -> int:
    from core.models import install
    from core.models.registry import get_spec
    path = Path(args.path).expanduser()
    if not path.exists():
        return _err(f"{path}: not found.")
    if args.detector is None:
        if not (path.is_dir() or path.suffix.lower() == ".zip"):
            return _err("a single checkpoint file needs --detector ID[:variant] (a zip or folder is imported as "
                        "the Truebees bundle).")
        reports, notes = install.import_bundle(path)
        for r in reports:
            print(f"imported {r.key} ({r.part}) → {r.path}  sha256 {r.sha256}")
        for n in notes:
            print(f"note: {n}", file=sys.stderr)
        return 0 if reports else EXIT_USER_ERROR
    spec = get_spec(args.detector)
    r = install.import_file(path, spec, part=args.part)
    print(f"imported {r.key} ({r.part}) → {r.path}  sha256 {r.sha256}")
    return 0


def cmd_weights_download(args: argparse.Namespace) -> int:
    from core.models import weights as W
    from core.models.registry import get_spec
    spec = get_spec(args.detector)
    parts = [args.part] if args.part else [p for p, _ in W.parts(spec)]
    for part in parts:
        bar = _progress_bar(f"{spec.key} {part}")
        try:
            path = W.download(spec, part=part, progress=bar.update if bar else None)
        finally:
            if bar:
                bar.close()
        print(f"downloaded {spec.key} ({part}) → {path}")
    return 0


def cmd_weights_delete(args: argparse.Namespace) -> int:
    from core.models import weights as W
    from core.models.registry import get_spec
    spec = get_spec(args.detector)
    removed = W.delete(spec, args.part)
    print(f"{'deleted' if removed else 'nothing installed for'} {spec.key} ({args.part})")
    return 0


class _Bar:
    def __init__(self, desc: str) -> None:
        from tqdm import tqdm
        self._bar = tqdm(desc=desc, unit="B", unit_scale=True, file=sys.stderr)

    def update(self, done: int, total: int | None) -> None:
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _progress_bar(desc: str) -> _Bar | None:
    try:
        return _Bar(desc)
    except ImportError:
        return None


def cmd_detect(args: argparse.Namespace) -> int:
    from core.io import load_image
    from core.models.factory import create_detector
    image = load_image(args.image)
    det = create_detector(args.detector, weights=args.weights, backbone_weights=args.backbone)
    result = det.predict(image)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        if not result.ok:
            print(f"{result.detector_id}:{result.variant}: {result.details.get('message', result.label)}")
        else:
            print(f"{result.detector_id}:{result.variant}: {result.label.upper()}  p_fake={result.p_fake:.4f}  "
                  f"logit={result.logit:+.4f}  threshold={result.threshold}  input={result.input_size[0]}×"
                  f"{result.input_size[1]}  {result.elapsed_s:.2f}s")
    return 0


def _pairs(values: Sequence[str], flag: str, keys: Sequence[str]) -> dict[str, str]:
    """``ID=PATH`` options → detector key → path (ID may be the id or the full ID:variant)."""
    out: dict[str, str] = {}
    for v in values:
        ident, sep, path = v.partition("=")
        if not sep or not ident or not path:
            raise _UserError(f"{flag} expects ID=PATH, got {v!r}.")
        match = [k for k in keys if k == ident or k.split(":", 1)[0] == ident]
        if len(match) != 1:
            raise _UserError(f"{flag} {ident}: not one of the chosen --detectors ({', '.join(keys) or 'none'}).")
        out[match[0]] = path
    return out


class _UserError(Exception):
    """A mistake in the command line (exit 2, one sentence)."""


def _print_summary(report) -> None:
    cols = ("accuracy", "balanced_accuracy", "roc_auc", "average_precision", "eer", "tpr_at_fpr_5", "ece")
    print(f"{'source':<28} {'n':>6} " + " ".join(f"{c[:17]:>17}" for c in cols))
    for key, sr in report.sources.items():
        m = sr.overall
        cells = [("n/a" if m.value(c) is None else f"{m.value(c):.4f}") for c in cols]
        print(f"{key[:28]:<28} {m.n:>6} " + " ".join(f"{c:>17}" for c in cells))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from core.evaluation import datasets as D
    from core.evaluation import runner as E
    from core.models.factory import create_detector
    from core.models.registry import get_spec
    path = Path(args.path).expanduser()
    if not path.exists():
        return _err(f"{path}: not found.")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        return _err(f"--threshold must be strictly between 0 and 1 (got {args.threshold}).")
    if args.batch_size < 1:
        return _err("--batch-size must be at least 1.")
    out_dir = Path(args.out).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        return _err(f"--out {out_dir}: exists and is not a folder.")
    wanted = [d.strip() for d in (args.detectors or "").split(",") if d.strip()]
    try:
        keys = [get_spec(d).key for d in wanted]
        if len(set(keys)) != len(keys):
            raise _UserError("a detector variant is listed twice in --detectors.")
        weights = _pairs(args.weights, "--weights", keys)
        backbones = _pairs(args.backbone, "--backbone", keys)
    except _UserError as exc:
        return _err(str(exc))
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
    if not keys and external is None:
        dataset.close()
        return _err("choose detectors with --detectors ID[,ID...] (or give a predictions CSV with score columns).")
    if not dataset.items:
        dataset.close()
        return _err(f"{path}: no files found.")
    with dataset:
        dets = [create_detector(k, weights=weights.get(k), backbone_weights=backbones.get(k)) for k in keys]
        try:                               # fail before a long run, not after it
            out_dir.mkdir(parents=True, exist_ok=True)
            writable = os.access(out_dir, os.W_OK)
        except OSError as exc:
            return _err(f"--out {out_dir}: cannot create the folder ({exc.strerror or exc}).")
        if not writable:
            return _err(f"--out {out_dir}: the folder is not writable.")
        print(dataset.summary(), file=sys.stderr)
        from tqdm import tqdm
        bars: list = []

        def progress(done: int, total: int, eta: float | None) -> None:
            if not bars:
                bars.append(tqdm(total=total, unit="img", desc="evaluate", file=sys.stderr, dynamic_ncols=True))
            bars[0].n = done
            bars[0].refresh()

        try:
            run = E.evaluate(dataset, dets, batch_size=args.batch_size, progress=progress,
                             cache=False if args.no_cache else True,
                             ensemble=False if args.no_ensemble else None, external=external)
        except KeyboardInterrupt:
            return _err("interrupted; the scores computed so far are cached, so the same command resumes.")
        finally:
            for b in bars:
                b.close()
    report = E.compute_report(run, args.threshold)
    pred_path, metrics_path = out_dir / "predictions.csv", out_dir / "metrics.json"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = pred_path.with_name(pred_path.name + ".part")
        E.predictions_frame(run).to_csv(tmp, index=False)
        tmp.replace(pred_path)
        tmp = metrics_path.with_name(metrics_path.name + ".part")
        tmp.write_text(json.dumps(E.metrics_json(run, report), indent=1, allow_nan=False), encoding="utf-8")
        tmp.replace(metrics_path)
    except OSError as exc:
        return _err(f"cannot write the results to {out_dir} ({exc.strerror or exc}).")
    _print_summary(report)
    c = run.counts()
    print(f"{len(run.rows)} files: {c['ok']} scored, {c['error']} unreadable, {c['skipped']} skipped, "
          f"{c['unlabelled']} unlabelled; {run.computed} scores computed, {run.from_cache} from the cache.")
    print(f"wrote {pred_path} and {metrics_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree (kept stable: later issues add subcommands)."""
    p = argparse.ArgumentParser(prog="python -m core", description="Deepfake Lens: detectors of AI-generated images.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="one line per detector variant with its weights status")
    s.set_defaults(func=cmd_list)

    w = sub.add_parser("weights", help="status / import / download / delete checkpoints")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    s = wsub.add_parser("status", help="table of every checkpoint")
    s.add_argument("--verify", action="store_true", help="re-hash every file instead of trusting the record")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_weights_status)
    s = wsub.add_parser("import", help="import a checkpoint file (with --detector) or the Truebees bundle (zip/folder)")
    s.add_argument("path")
    s.add_argument("--detector", help="ID or ID:variant the file belongs to")
    s.add_argument("--part", choices=("weights", "backbone"), default="weights")
    s.set_defaults(func=cmd_weights_import)
    s = wsub.add_parser("download", help="download a detector's checkpoint(s) from the official sources")
    s.add_argument("detector", help="ID or ID:variant")
    s.add_argument("--part", choices=("weights", "backbone"))
    s.set_defaults(func=cmd_weights_download)
    s = wsub.add_parser("delete", help="remove an installed checkpoint")
    s.add_argument("detector")
    s.add_argument("--part", choices=("weights", "backbone"), default="weights")
    s.set_defaults(func=cmd_weights_delete)

    s = sub.add_parser("detect", help="score one image with one detector")
    s.add_argument("image")
    s.add_argument("--detector", required=True, help="ID or ID:variant")
    s.add_argument("--weights", help="checkpoint path (default: the installed one)")
    s.add_argument("--backbone", help="backbone checkpoint path (CLIP-D, P2G)")
    s.add_argument("--json", action="store_true", help="print the result object as JSON")
    s.set_defaults(func=cmd_detect)

    s = sub.add_parser("evaluate", help="score a labelled folder / zip / CSV; write predictions.csv and metrics.json")
    s.add_argument("path", help="a folder (labels from real/ fake/ 0_real/ 1_fake/ folders), a .zip, a labels CSV "
                                "(path,label[,group]) or a predictions CSV (path,label,score columns)")
    s.add_argument("--detectors", help="ID[,ID...] (each ID or ID:variant)")
    s.add_argument("--weights", action="append", default=[], metavar="ID=PATH", help="checkpoint for one detector")
    s.add_argument("--backbone", action="append", default=[], metavar="ID=PATH",
                   help="backbone checkpoint for one detector (CLIP-D, P2G)")
    s.add_argument("--threshold", type=float, help="p_fake threshold for every detector (default: each one's own)")
    s.add_argument("--predictions", metavar="CSV", help="scores from another tool to evaluate alongside")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--no-cache", action="store_true", help="neither read nor write the score cache")
    s.add_argument("--no-ensemble", action="store_true", help="do not add the ensemble of the chosen detectors")
    s.add_argument("--out", required=True, help="folder for predictions.csv and metrics.json")
    s.set_defaults(func=cmd_evaluate)
    from core.cli.report import add_report_command
    add_report_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DeepfakeLensError as exc:
        return _err(str(exc))
    except KeyboardInterrupt:
        return _err("interrupted.")
