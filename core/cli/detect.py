"""``python -m core detect IMAGE --detector ID[:variant]``: score one image with one detector.

``--detector ALL`` runs every installed detector and prints the graded assessment above the original app's
weighted vote (:mod:`core.cli.detect_all`).
"""
from __future__ import annotations

import argparse
import json
import sys

from core.cli import detect_all
from core.cli.common import EXIT_OK
from core.io import load_image
from core.models.factory import create_detector


def cmd_detect(args: argparse.Namespace) -> int:
    """Print one line (or the result as JSON) for the image."""
    if args.detector.upper() == detect_all.ALL:
        return detect_all.cmd_detect_all(args)
    weights, backbone = detect_all.single_paths(args)
    image = load_image(args.image)
    det = create_detector(args.detector, weights=weights, backbone_weights=backbone)
    if args.fast and not det.use_fast_mode():
        print(f"{det.spec.key}: the fast mode is not offered for this detector (its bf16 scores missed the "
              "fidelity bar); scored in fp32.", file=sys.stderr)
    result = det.predict(image)
    calibrated = detect_all.calibrated_line(result, args.profile)
    if args.json:
        print(json.dumps({**result.to_dict(), **({"calibrated": calibrated} if args.profile else {})}, indent=1))
    elif not result.ok:
        print(f"{result.detector_id}:{result.variant}: {result.details.get('message', result.label)}")
    else:
        own = f"  [{result.details['weights']}]" if result.details.get("weights") else ""   # the user's own file
        own = ("  bf16" if result.details.get("precision") == "bf16" else "") + own
        print(f"{result.detector_id}:{result.variant}: {result.label.upper()}  p_fake={result.p_fake:.4f}  "
              f"logit={result.logit:+.4f}  threshold={result.threshold}  input={result.input_size[0]}×"
              f"{result.input_size[1]}  {result.elapsed_s:.2f}s{own}")
        if args.profile:
            print(calibrated["text"])
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``detect``."""
    s = subparsers.add_parser("detect", help="score one image with one detector, or with ALL installed ones")
    s.add_argument("image")
    s.add_argument("--detector", required=True, help="ID or ID:variant, or ALL (every installed detector)")
    s.add_argument("--weights", action="append", default=[], metavar="[ID=]PATH",
                   help="checkpoint path (default: the installed one); with ALL: ID=PATH, repeatable")
    s.add_argument("--backbone", action="append", default=[], metavar="[ID=]PATH",
                   help="backbone checkpoint path (CLIP-D, P2G); with ALL: ID=PATH, repeatable")
    s.add_argument("--profile", metavar="PROFILE.json", help="calibration profile from `python -m core calibrate`")
    s.add_argument("--rule", choices=("graded", "vote", "stacked"),
                   help="the rule of the headline (default: configs/ensemble.yaml)")
    s.add_argument("--json", action="store_true", help="print the result object as JSON")
    s.add_argument("--fast", action="store_true",
                   help="bf16 fast mode for the detectors that offer it (same verdicts on the fidelity set, "
                        "|Δp_fake| ≤ 0.01); results say details.precision = bf16")
    s.set_defaults(func=cmd_detect)
