"""``python -m core weights status | import | download | download-all | delete``: manage checkpoints.

``weights download-all`` lists every missing checkpoint of the detectors that have no installed variant (file,
size, licence, source), asks, then downloads each with its own progress bar.

``weights import FILE --detector ID --as custom [--name NAME]`` installs your own checkpoint as ``ID:custom``
(strict fit to the architecture, name and sha256 recorded); a zip or folder without ``--detector`` is the Truebees
bundle.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli.common import EXIT_OK, EXIT_USER_ERROR, ByteProgress, err
from core.errors import DeepfakeLensError
from core.models import install
from core.models import weights as W
from core.models.registry import get_spec, list_specs
from core.models.selection import DownloadItem, download_plan


def status_rows(verify: bool = False) -> list[dict]:
    """One row per checkpoint of every variant (the ``weights status --json`` records)."""
    rows = []
    for spec in list_specs():
        for part, _ in W.parts(spec):
            st = W.status(spec, part, verify=verify)
            rows.append({"detector": spec.id, "variant": spec.variant, "part": part, "state": st.state,
                         "path": str(st.path) if st.path else None, "sha256": st.sha256, "message": st.message,
                         "label": install.custom_label(spec) if st.state == "installed" else None})
    return rows


def cmd_weights_status(args: argparse.Namespace) -> int:
    """Print the table (or JSON) of every checkpoint: where it is and its sha256, or how to get it."""
    rows = status_rows(verify=args.verify)
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    print(f"{'detector':<11} {'variant':<20} {'part':<9} {'state':<10} where / how to fix")
    for r in rows:
        info = f"{r['path']}  sha256 {r['sha256'][:16]}…" if r["state"] == "installed" else r["message"]
        if r["label"]:
            info = f"{r['label']}  {info}"
        print(f"{r['detector']:<11} {r['variant']:<20} {r['part']:<9} {r['state']:<10} {info}")
    return EXIT_OK


def _import_custom(args: argparse.Namespace, path: Path) -> int:
    if args.part != "weights":
        return err("--as custom installs a detector's own weights; a backbone is imported with --part backbone "
                   "and without --as.")
    r = install.import_custom(path, args.detector, name=args.name)
    print(f'imported {r.key} ({r.part}) as custom "{r.name}" → {r.path}  sha256 {r.sha256}')
    return EXIT_OK


def cmd_weights_import(args: argparse.Namespace) -> int:
    """Import one checkpoint file (``--detector``, ``--as custom`` for your own) or the Truebees bundle."""
    path = Path(args.path).expanduser()
    if not path.exists():
        return err(f"{path}: not found.")
    if (args.as_ or args.name is not None) and args.detector is None:
        return err("--as custom and --name need --detector ID (the architecture your checkpoint was trained for).")
    if args.name is not None and args.as_ is None:
        return err("--name names your own checkpoint: use it with --as custom.")
    if args.as_ == install.CUSTOM:
        return _import_custom(args, path)
    if args.detector is None:
        if not (path.is_dir() or path.suffix.lower() == ".zip"):
            return err("a single checkpoint file needs --detector ID[:variant] (a zip or folder is imported as "
                       "the Truebees bundle).")
        reports, notes = install.import_bundle(path)
        if not reports:
            return err(f"{path}: nothing imported ({' '.join(notes)})")
        for r in reports:
            print(f"imported {r.key} ({r.part}) → {r.path}  sha256 {r.sha256}")
        for n in notes:
            print(f"note: {n}", file=sys.stderr)
        return EXIT_OK
    spec = get_spec(args.detector)
    if spec.variant == install.CUSTOM and args.part == "weights":
        return _import_custom(args, path)
    r = install.import_file(path, spec, part=args.part)
    print(f"imported {r.key} ({r.part}) → {r.path}  sha256 {r.sha256}")
    return EXIT_OK


def cmd_weights_download(args: argparse.Namespace) -> int:
    """Download a variant's checkpoint(s) from the sources its YAML declares, with a progress bar per file."""
    spec = get_spec(args.detector)
    parts = [args.part] if args.part else [p for p, _ in W.parts(spec)]
    for part in parts:
        bar = ByteProgress(f"{spec.key} {part}")
        try:
            path = W.download(spec, part=part, progress=bar.update)
        finally:
            bar.close()
        print(f"downloaded {spec.key} ({part}) → {path}")
    return EXIT_OK


def plan_lines(plan: list[DownloadItem]) -> list[str]:
    """The download plan as aligned text lines: detector, part, file, size, licence, then the source."""
    lines = [f"{'detector':<20} {'part':<9} {'file':<34} {'size':<19} licence"]
    for it in plan:
        lines.append(f"{it.spec.key:<20} {it.part:<9} {it.file:<34} {it.size:<19} {it.licence}")
        lines.append(f"{'':<20} from {it.source}")
    return lines


def cmd_weights_download_all(args: argparse.Namespace) -> int:
    """List what is missing (sizes and licences first), ask, then download each file with its own progress bar.

    A file that fails is reported in one sentence and the others still run; the exit code is 2 when any failed.
    """
    plan = download_plan()
    if not plan:
        print("Every detector that can be downloaded has an installed variant: nothing to download.")
        return EXIT_OK
    print("\n".join(plan_lines(plan)))
    print("Read each licence before use: several allow research or non-commercial use only.")
    if args.dry_run:
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            return err("add --yes to download these files without a question (stdin is not a terminal).")
        if input(f"Download these {len(plan)} file(s)? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing downloaded.")
            return EXIT_OK
    failed = 0
    for i, it in enumerate(plan, 1):
        bar = ByteProgress(f"[{i}/{len(plan)}] {it.spec.key} {it.part}")
        try:
            path = W.download(it.spec, part=it.part, progress=bar.update)
            print(f"downloaded {it.spec.key} ({it.part}) → {path}")
        except DeepfakeLensError as exc:
            failed += 1
            print(f"failed: {exc}", file=sys.stderr)
        finally:
            bar.close()
    print(f"{len(plan) - failed} of {len(plan)} file(s) downloaded.")
    return EXIT_OK if not failed else EXIT_USER_ERROR


def cmd_weights_delete(args: argparse.Namespace) -> int:
    """Remove an installed checkpoint from the weights folder."""
    spec = get_spec(args.detector)
    removed = W.delete(spec, args.part)
    print(f"{'deleted' if removed else 'nothing installed for'} {spec.key} ({args.part})")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``weights`` and its sub-commands."""
    w = subparsers.add_parser("weights", help="status / import / download / delete checkpoints")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    s = wsub.add_parser("status", help="table of every checkpoint")
    s.add_argument("--verify", action="store_true", help="re-hash every file instead of trusting the record")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_weights_status)
    s = wsub.add_parser("import", help="import a checkpoint file (with --detector) or the Truebees bundle (zip/folder)")
    s.add_argument("path")
    s.add_argument("--detector", help="ID or ID:variant the file belongs to")
    s.add_argument("--part", choices=("weights", "backbone"), default="weights")
    s.add_argument("--as", dest="as_", choices=(install.CUSTOM,),
                   help="install your own (fine-tuned) file as ID:custom, labelled custom everywhere")
    s.add_argument("--name", help="with --as custom: what to call your checkpoint (default: its file name)")
    s.set_defaults(func=cmd_weights_import)
    s = wsub.add_parser("download", help="download a detector's checkpoint(s) from the official sources")
    s.add_argument("detector", help="ID or ID:variant")
    s.add_argument("--part", choices=("weights", "backbone"))
    s.set_defaults(func=cmd_weights_download)
    s = wsub.add_parser("download-all", help="download the missing weights of every detector (lists sizes and "
                                              "licences first)")
    s.add_argument("--yes", action="store_true", help="do not ask before downloading")
    s.add_argument("--dry-run", action="store_true", help="only list what would be downloaded")
    s.set_defaults(func=cmd_weights_download_all)
    s = wsub.add_parser("delete", help="remove an installed checkpoint")
    s.add_argument("detector")
    s.add_argument("--part", choices=("weights", "backbone"), default="weights")
    s.set_defaults(func=cmd_weights_delete)
