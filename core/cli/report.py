"""``python -m core report IMAGE --out DIR``: write report.json and report.html for one image.

``add_report_command(subparsers)`` registers the sub-command on core/cli.py's parser; ``main(argv)`` runs it
stand-alone (``python -m core.cli.report IMAGE --out DIR``). User errors exit with code 2 and one sentence.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from core.errors import DeepfakeLensError, WeightsError

EXIT_USER_ERROR = 2


class UsageError(DeepfakeLensError):
    """A malformed command-line value (one sentence)."""


def _pairs(values: Sequence[str] | None, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values or ():
        det, sep, path = v.partition("=")
        if not sep or not det or not path:
            raise UsageError(f"{flag} expects ID=PATH (e.g. {flag} NPR=~/NPR.pth), got {v!r}.")
        out[det.strip()] = str(Path(path).expanduser())
    return out


def _lookup(mapping: dict[str, str], spec) -> str | None:  # noqa: ANN001 - DetectorSpec
    return mapping.get(spec.key) or mapping.get(spec.id)


def _installed(spec) -> bool:  # noqa: ANN001
    from core.models import weights as W
    return all(W.status(spec, part).state == "installed" for part, _ in W.parts(spec))


def select_detectors(names: Sequence[str] | None, weights: dict[str, str], backbones: dict[str, str]):
    """Load the detectors for a report.

    Args:
        names: ``ID`` or ``ID:variant`` to use (errors are fatal); None = every detector whose weights are
            installed or given with ``--weights`` (the others are listed as not run).
        weights / backbones: ``ID`` or ``ID:variant`` → checkpoint path.

    Returns:
        (detectors, {id: why not run}).
    """
    from core.models.factory import create_detector
    from core.models.registry import get_spec, list_detectors
    for k in list(weights) + list(backbones):
        get_spec(k)                                    # unknown ids fail with the list of known ones
    dets, missing = [], {}
    if names:
        for name in names:
            spec = get_spec(name)
            dets.append(create_detector(spec.key, weights=_lookup(weights, spec),
                                        backbone_weights=_lookup(backbones, spec)))
        return dets, missing
    explicit = {get_spec(k).id: get_spec(k) for k in list(weights) + list(backbones)}
    for det_id in list_detectors():
        spec = explicit.get(det_id) or get_spec(det_id)
        w, b = _lookup(weights, spec), _lookup(backbones, spec)
        if w is None and b is None and not _installed(spec):
            missing[det_id] = "weights not installed"
            continue
        try:
            dets.append(create_detector(spec.key, weights=w, backbone_weights=b))
        except WeightsError as exc:
            if w is not None or b is not None:
                raise
            missing[det_id] = str(exc)
    return dets, missing


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The report command's arguments (shared by the sub-command and the stand-alone entry point)."""
    p.add_argument("image", help="image file to report on")
    p.add_argument("--out", required=True, help="output folder (created); gets report.json and report.html")
    p.add_argument("--detectors", help="comma-separated ID or ID:variant (default: every installed detector)")
    p.add_argument("--weights", action="append", metavar="ID=PATH", help="checkpoint for a detector (repeatable)")
    p.add_argument("--backbone", action="append", metavar="ID=PATH",
                   help="backbone checkpoint for CLIP-D / P2G (repeatable)")
    p.add_argument("--no-probe", action="store_true", help="skip the robustness probe (7 scorings per detector)")
    p.add_argument("--ela-quality", type=int, default=90, help="JPEG quality of the error level analysis (90)")
    p.add_argument("--include-gps", action="store_true", help="include the EXIF GPS position (left out by default)")


def cmd_report(args: argparse.Namespace) -> int:
    """Run the report command (raises DeepfakeLensError for user errors)."""
    from core.report.build import build_report
    image = Path(args.image).expanduser()
    if not 1 <= args.ela_quality <= 100:
        raise UsageError(f"--ela-quality must be between 1 and 100, got {args.ela_quality}.")
    names = [n.strip() for n in args.detectors.split(",") if n.strip()] if args.detectors else None
    dets, missing = select_detectors(names, _pairs(args.weights, "--weights"), _pairs(args.backbone, "--backbone"))
    rep = build_report(image, dets, missing=missing, probe=not args.no_probe, ela_quality=args.ela_quality,
                       include_gps=args.include_gps, progress=lambda m: print(m, file=sys.stderr))
    pj, ph = rep.write(args.out)
    ens = rep.data.get("ensemble")
    verdict = ens["result"]["verdict"] if ens else "no detector ran"
    print(f"{ph}\n{pj}")
    print(f"verdict: {verdict}; {len(rep.data['abstention'])} reason(s) to doubt; "
          f"{len(rep.data['metadata']['findings'])} metadata finding(s)")
    return 0


def add_report_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``report`` on core/cli.py's sub-parsers (its main() catches DeepfakeLensError → exit 2)."""
    p = subparsers.add_parser("report", help="write a case report (report.json + self-contained report.html)")
    add_arguments(p)
    p.set_defaults(func=cmd_report)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m core.cli.report IMAGE --out DIR [...]``; returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m core report", description="Write a case report for one image.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_report(args)
    except DeepfakeLensError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
