"""``python -m core video VIDEO --out DIR``: sampled frames, face tracks, whole-frame detectors and a verdict.

Writes ``DIR/video.json``, ``DIR/timeline.csv`` and a self-contained ``DIR/report.html``. An unreadable video
(empty, not a video, no video stream, over a limit) exits 2 with one sentence; a file that breaks part-way is
analysed as far as it can be read and the outputs say how many frames that was.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from core.cli.common import EXIT_OK, UsageError, assign_id_paths, chosen_keys, create_detectors, parse_id_paths
from core.models.detectors.base import Detector
from core.verdict.calibration import load_profile
from core.verdict.present import assessment_lines
from core.video.analyse import analyse_video, default_detector_keys, split_detectors
from core.video.report import write_outputs
from core.video.sampling import DEFAULT_FPS, DEFAULT_MAX_FRAMES, SamplingPlan


def _plan(args: argparse.Namespace) -> SamplingPlan:
    if args.fps is not None and not args.fps > 0:
        raise UsageError(f"--fps must be a positive number, got {args.fps}.")
    if args.max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {args.max_frames}.")
    return SamplingPlan(mode="keyframes" if args.keyframes else "fps", fps=args.fps or DEFAULT_FPS,
                        max_frames=args.max_frames)


def fast_mode(detectors: list[Detector]) -> None:
    """bf16 for the detectors whose YAML validated it (``options.fast_bf16``, as the app's Fast mode)."""
    for det in detectors:
        if det.spec.options.get("fast_bf16"):
            det.set_precision("bf16")


def cmd_video(args: argparse.Namespace) -> int:
    """Analyse one video and write the three outputs; print the headline."""
    video = Path(args.video).expanduser()
    if not video.is_file():
        raise UsageError(f"{args.video}: no such video file.")
    plan = _plan(args)
    keys = chosen_keys(args.detectors) if args.detectors is not None else default_detector_keys()
    weights = assign_id_paths(parse_id_paths(args.weights, "--weights"), keys, "--weights")
    profile = load_profile(args.profile) if args.profile else None
    detectors = create_detectors(keys, weights)
    if args.fast:
        fast_mode(detectors)
    face, others = split_detectors(detectors)
    bar = tqdm(desc="frames", unit="frame", file=sys.stderr, disable=args.quiet)

    def progress(done: int, planned: int, _elapsed: float) -> None:
        bar.total = planned
        bar.n = done
        bar.refresh()

    try:
        analysis = analyse_video(str(video), plan=plan, face=face, detectors=others, with_cam=not args.fast,
                                 progress=progress, profile=profile)
    finally:
        bar.close()
    paths = write_outputs(analysis, args.out, video.name)
    print(f"{video.name}: {analysis.stats.frames_read} frames, {len(analysis.tracks)} face "
          f"track(s){'' if face else ', faces not scored: FACE weights not installed'}")
    print("\n".join(assessment_lines(analysis.assessment)))
    print(f"wrote {paths['json']}, {paths['csv']}, {paths['html']}")
    return EXIT_OK


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``video``."""
    s = subparsers.add_parser("video", help="analyse a video: face tracks, detectors on sampled frames, a report")
    s.add_argument("video")
    s.add_argument("--out", required=True, help="output folder (video.json, timeline.csv, report.html)")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--fps", type=float, default=None, help=f"frames sampled per second (default {DEFAULT_FPS:g})")
    how.add_argument("--keyframes", action="store_true", help="sample the codec's keyframes only")
    s.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES,
                   help=f"most frames analysed (default {DEFAULT_MAX_FRAMES}; capped by "
                        "DEEPFAKE_LENS_MAX_VIDEO_FRAMES)")
    s.add_argument("--detectors", default=None,
                   help="ID[:variant],... (default: every installed detector; FACE scores the faces)")
    s.add_argument("--weights", action="append", default=[], metavar="ID=PATH",
                   help="checkpoint for one chosen detector (repeatable)")
    s.add_argument("--profile", default=None, metavar="P",
                   help="calibration profile (JSON from `python -m core calibrate`) applied to the scores")
    s.add_argument("--fast", action="store_true",
                   help="bfloat16 for the detectors validated for it (as the app's Fast mode) and no Grad-CAM")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_video)
