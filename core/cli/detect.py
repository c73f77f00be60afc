"""``python -m core detect IMAGE --detector ID[:variant]``: score one image with one detector."""
from __future__ import annotations

import argparse
import json

from core.cli.common import EXIT_OK
from core.io import load_image
from core.models.factory import create_detector


def cmd_detect(args: argparse.Namespace) -> int:
    """Print one line (or the result as JSON) for the image."""
    image = load_image(args.image)
    det = create_detector(args.detector, weights=args.weights, backbone_weights=args.backbone)
    result = det.predict(image)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    elif not result.ok:
        print(f"{result.detector_id}:{result.variant}: {result.details.get('message', result.label)}")
    else:
        print(f"{result.detector_id}:{result.variant}: {result.label.upper()}  p_fake={result.p_fake:.4f}  "
              f"logit={result.logit:+.4f}  threshold={result.threshold}  input={result.input_size[0]}×"
              f"{result.input_size[1]}  {result.elapsed_s:.2f}s")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``detect``."""
    s = subparsers.add_parser("detect", help="score one image with one detector")
    s.add_argument("image")
    s.add_argument("--detector", required=True, help="ID or ID:variant")
    s.add_argument("--weights", help="checkpoint path (default: the installed one)")
    s.add_argument("--backbone", help="backbone checkpoint path (CLIP-D, P2G)")
    s.add_argument("--json", action="store_true", help="print the result object as JSON")
    s.set_defaults(func=cmd_detect)
