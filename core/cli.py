"""Command line: ``python -m core list | weights ... | detect ...``.

User errors (unknown id, missing/corrupt/refused weights, unreadable image) exit with code 2 and one sentence on
stderr — never a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from core.errors import DeepfakeLensError

EXIT_USER_ERROR = 2


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USER_ERROR


def _status_rows(verify: bool = False) -> list[dict]:
    from core import weights as W
    from core.registry import list_specs
    rows = []
    for spec in list_specs():
        for part in ("weights", "backbone"):
            if (spec.weights if part == "weights" else spec.backbone) is None:
                continue
            st = W.status(spec, part, verify=verify)
            rows.append({"detector": spec.id, "variant": spec.variant, "part": part, "state": st.state,
                         "path": str(st.path) if st.path else None, "sha256": st.sha256, "message": st.message})
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    from core.registry import list_specs
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
    from core import weights as W
    from core.registry import get_spec
    path = Path(args.path).expanduser()
    if not path.exists():
        return _err(f"{path}: not found.")
    if args.detector is None:
        if not (path.is_dir() or path.suffix.lower() == ".zip"):
            return _err("a single checkpoint file needs --detector ID[:variant] (a zip or folder is imported as "
                        "the Truebees bundle).")
        reports, notes = W.import_bundle(path)
        for r in reports:
            print(f"imported {r.key} ({r.part}) → {r.path}  sha256 {r.sha256}")
        for n in notes:
            print(f"note: {n}", file=sys.stderr)
        return 0 if reports else EXIT_USER_ERROR
    spec = get_spec(args.detector)
    r = W.import_file(path, spec, part=args.part)
    print(f"imported {r.key} ({r.part}) → {r.path}  sha256 {r.sha256}")
    return 0


def cmd_weights_download(args: argparse.Namespace) -> int:
    from core import weights as W
    from core.registry import get_spec
    spec = get_spec(args.detector)
    parts = [args.part] if args.part else [p for p in ("weights", "backbone")
                                           if (spec.weights if p == "weights" else spec.backbone) is not None]
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
    from core import weights as W
    from core.registry import get_spec
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
    from core.registry import create_detector
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
