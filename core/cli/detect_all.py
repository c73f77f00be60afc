"""``python -m core detect IMAGE --detector ALL``: every installed detector, the graded assessment (the headline)
and, beneath it, the original app's weighted vote.

JSON (``--json``): ``{"results": [...], "vote": {...}, "assessment": {"level", "direction", "p_fake", "reasons",
...}, "not_run": {id: why}}``. With ``--profile`` the assessment uses the calibrated scores of the detectors the
profile was fitted on (the others: "not applied", with the reason).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from PIL import Image

from core.cli.common import EXIT_OK, UsageError
from core.cli.report import select_detectors
from core.convert import to_jsonable
from core.errors import DeepfakeLensError
from core.io import load_image
from core.models.detectors.base import Detector
from core.results import DetectionResult
from core.verdict.abstention import facts_from_bytes
from core.verdict.assessment import Assessment, assess
from core.verdict.calibration import Profile, load_profile
from core.verdict.ensemble import EnsembleResult, ensemble
from core.verdict.present import assessment_lines, calibrated_score, fusions_text, vote_line

ALL = "ALL"


def single_paths(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """``--weights`` / ``--backbone`` for one detector: one plain PATH each (``ID=PATH`` is accepted too)."""
    out = []
    for flag, values in (("--weights", args.weights), ("--backbone", args.backbone)):
        if len(values) > 1:
            raise UsageError(f"{flag} is given {len(values)} times; one detector takes one file "
                             f"(use --detector ALL with {flag} ID=PATH for several).")
        value = values[0] if values else None
        if value and "=" in value and not Path(value).expanduser().exists():
            value = value.partition("=")[2]            # "ID=PATH" for the detector being run
        out.append(str(Path(value).expanduser()) if value else None)
    return out[0], out[1]


def _profile(path: str | None) -> Profile | None:
    return load_profile(path) if path else None


def calibrated_line(result: DetectionResult, profile_path: str | None) -> dict[str, Any]:
    """The profile's calibration of one detector's result: {"applied", "p_fake", "threshold", "label", "text"}."""
    return calibrated_score(result, _profile(profile_path))


def analyse(image_path: str, weight_opts: list[str], backbone_opts: list[str], profile: Profile | None,
            rule: str | None = None, fast: bool = False,
            ) -> tuple[list[DetectionResult], dict[str, str], EnsembleResult, Assessment]:
    """Run every installed detector (and those given a file) on the image; combine them both ways.

    With ``fast`` the detectors that offer the bf16 fast mode (``options.fast_bf16``) use it; their results say
    ``details["precision"] == "bf16"``.

    Returns:
        (results, {detector id: why it did not run}, the original weighted vote, the graded assessment).
    """
    path = Path(image_path).expanduser()
    image = load_image(path)
    dets, missing = select_detectors(None, weight_opts, backbone_opts)
    for det in dets if fast else []:
        det.use_fast_mode()
    return combine(image, path.read_bytes(), dets, missing, profile, rule)


def combine(image: Image.Image, data: bytes, dets: list[Detector], missing: dict[str, str], profile: Profile | None,
            rule: str | None = None) -> tuple[list[DetectionResult], dict[str, str], EnsembleResult, Assessment]:
    """:func:`analyse` on an image already decoded from the file's bytes ``data``, with loaded detectors."""
    results: list[DetectionResult] = []
    for det in dets:
        try:
            results.append(det.predict(image))
        except DeepfakeLensError as exc:                  # one failing detector does not lose the others
            missing[det.spec.id] = f"failed on this image ({exc})"
    facts = facts_from_bytes(data)
    specs = {d.spec.key: d.spec for d in dets}
    vote = ensemble(results, missing=missing)
    return results, missing, vote, assess(results, profile=profile, facts=facts, specs=specs, rule=rule)


def _text(results: list[DetectionResult], missing: dict[str, str], vote: EnsembleResult, a: Assessment) -> str:
    lines = assessment_lines(a) + [vote_line(vote)]
    fused = fusions_text(vote)
    lines += [f"  {fused}"] if fused else []
    for r in results:
        if r.ok and not math.isnan(r.p_fake):
            own = f"  [{r.details['weights']}]" if r.details.get("weights") else ""       # the user's own file
            fast = "  bf16" if r.details.get("precision") == "bf16" else ""
            lines.append(f"  {r.key:<24} {r.label:<5} p_fake={r.p_fake:.4f}  logit={r.logit:+.4f}  "
                         f"{r.elapsed_s:.2f}s{fast}{own}")
        else:
            lines.append(f"  {r.key:<24} {r.details.get('message', r.label)}")
    lines += [f"  {d:<24} not run: {why}" for d, why in missing.items()]
    return "\n".join(lines)


def document(results: list[DetectionResult], missing: dict[str, str], vote: EnsembleResult,
             a: Assessment) -> dict[str, Any]:
    """The ``--json`` document (also the HTTP API's ``/v1/detect`` answer): results, vote, assessment, not_run."""
    return to_jsonable({"results": [r.to_dict() for r in results], "vote": vote.to_dict(),
                        "assessment": a.to_dict(), "not_run": missing})


def cmd_detect_all(args: argparse.Namespace) -> int:
    """Print the assessment, the vote and every result (or all of it as JSON)."""
    results, missing, vote, a = analyse(args.image, args.weights, args.backbone, _profile(args.profile), args.rule,
                                        fast=getattr(args, "fast", False))
    if args.json:
        print(json.dumps(document(results, missing, vote, a), indent=1))
    else:
        print(_text(results, missing, vote, a))
    return EXIT_OK


__all__ = ["ALL", "cmd_detect_all", "analyse", "combine", "document", "single_paths", "calibrated_line"]
