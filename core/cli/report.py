"""``python -m core report IMAGE --out DIR``: write report.json and report.html for one image.

Without ``--detectors`` the report uses every detector that can run here: the default variant of each id when it
is installed (:func:`core.models.selection.default_keys`: the remembered choice, else the original when several
are installed) plus any detector given a file with ``--weights``/``--backbone``; the others are listed under
"Not run".
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from core.cli.common import (EXIT_OK, UsageError, add_id_path_options, assign_id_paths, chosen_keys,
                             create_detectors, os_error_sentence, parse_id_paths)
from core.errors import WeightsError
from core.models.detectors.base import Detector
from core.models.factory import create_detector
from core.models.registry import get_spec, list_detectors
from core.models.selection import default_keys, resolve_key, variant_state
from core.report.build import CaseReport, build_report
from core.verdict.calibration import load_profile


def _default_keys(named: Sequence[str]) -> list[str]:
    """Installed default variant per id; an id named with ``ID:variant`` in ``named`` uses that variant instead."""
    by_id = {key.split(":", 1)[0]: key for key in default_keys(installed_only=True)}
    for ident in named:
        spec = get_spec(ident)
        if ":" in ident or spec.id not in by_id:
            by_id[spec.id] = resolve_key(ident)
    return [by_id[d] for d in list_detectors() if d in by_id]


def why_not_installed(det_id: str) -> str:
    """Why a detector (``ID`` or ``ID:variant``) did not run: "weights not installed" with its parts' states."""
    vs = variant_state(get_spec(det_id))
    return "weights not installed" + ("" if vs.state == "missing" else f" ({vs.problems()})")


def select_detectors(names: str | None, weight_opts: Sequence[str] | None = None,
                     backbone_opts: Sequence[str] | None = None) -> tuple[list[Detector], dict[str, str]]:
    """Load the detectors for a report.

    Args:
        names: the ``--detectors`` value (``ID`` or ``ID:variant``, comma-separated; every failure is fatal), or
            None for the default: every installed detector plus those given a file (see the module docstring).
        weight_opts / backbone_opts: the ``--weights`` / ``--backbone`` ``ID=PATH`` values.

    Returns:
        (detectors, {detector id: why it did not run}).
    """
    wpairs, bpairs = parse_id_paths(weight_opts, "--weights"), parse_id_paths(backbone_opts, "--backbone")
    explicit = names is not None and bool(names.strip())
    keys = chosen_keys(names) if explicit else _default_keys([i for i, _ in wpairs + bpairs])
    weights = assign_id_paths(wpairs, keys, "--weights")
    backbones = assign_id_paths(bpairs, keys, "--backbone")
    if explicit:
        return create_detectors(keys, weights, backbones), {}
    chosen_ids = {k.split(":", 1)[0] for k in keys}
    not_run = {d: why_not_installed(d) for d in list_detectors() if d not in chosen_ids}
    dets: list[Detector] = []
    for key in keys:
        w, b = weights.get(key), backbones.get(key)
        try:
            dets.append(create_detector(key, weights=w, backbone_weights=b))
        except WeightsError as exc:
            if w is not None or b is not None:
                raise                                   # the user's own file: a user error
            not_run[key.split(":", 1)[0]] = str(exc)    # installed but unusable (changed since the check)
    return dets, dict(sorted(not_run.items()))


def check_out_dir(out: Path) -> None:
    """Refuse an output folder that cannot be created or written, before any slow work.

    Raises:
        UsageError: ``out`` (or the first existing folder above it) is a file or is not writable.
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder (give a folder for report.json and report.html).")
    probe = out
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"--out {out}: {probe} is a file, so the folder cannot be created.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {probe} is not writable.")


def _write(rep: CaseReport, out: Path) -> tuple[Path, Path]:
    try:
        return rep.write(out)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot write the report ({os_error_sentence(exc).rstrip('.')}).") from exc


def cmd_report(args: argparse.Namespace) -> int:
    """Run the report command (user errors raise DeepfakeLensError: exit 2 and one sentence)."""
    image = Path(args.image).expanduser()
    out = Path(args.out).expanduser()
    if not 1 <= args.ela_quality <= 100:
        raise UsageError(f"--ela-quality must be between 1 and 100, got {args.ela_quality}.")
    check_out_dir(out)
    profile = load_profile(args.profile) if args.profile else None     # a bad profile fails before any work
    dets, missing = select_detectors(args.detectors, args.weights, args.backbone)
    for det in dets if args.fast else []:
        det.use_fast_mode()                 # bf16 only where offered (options.fast_bf16); results say so
    rep = build_report(image, dets, name=image.name, missing=missing, probe=not args.no_probe,
                       ela_quality=args.ela_quality, include_gps=args.include_gps, profile=profile, rule=args.rule,
                       progress=lambda m: print(m, file=sys.stderr))
    pj, ph = _write(rep, out)
    ens = rep.data.get("ensemble")
    verdict = ens["result"]["verdict"] if ens else "no detector ran"
    print(f"{ph}\n{pj}")
    print(f"assessment: {rep.data['assessment']['headline']}")
    print(f"weighted vote of the original app, verdict: {verdict}; {len(rep.data['abstention'])} reason(s) to doubt; "
          f"{len(rep.data['metadata']['findings'])} metadata finding(s)")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``report``."""
    p = subparsers.add_parser("report", help="write a case report (report.json + self-contained report.html)")
    p.add_argument("image", help="image file to report on")
    p.add_argument("--out", required=True, help="output folder (created); gets report.json and report.html")
    p.add_argument("--detectors", help="comma-separated ID or ID:variant (default: every installed detector)")
    add_id_path_options(p)
    p.add_argument("--no-probe", action="store_true", help="skip the robustness probe (7 scorings per detector)")
    p.add_argument("--ela-quality", type=int, default=90, help="JPEG quality of the error level analysis (90)")
    p.add_argument("--include-gps", action="store_true", help="include the EXIF GPS position (left out by default)")
    p.add_argument("--fast", action="store_true", help="bf16 fast mode for the detectors that offer it")
    p.add_argument("--profile", metavar="PROFILE.json", help="calibration profile for the assessment")
    p.add_argument("--rule", choices=("graded", "vote", "stacked"), help="the assessment's rule (default: "
                                                                         "configs/ensemble.yaml)")
    p.set_defaults(func=cmd_report)
    return p
