"""Video speed: frames/s at 720p for reading alone, faces (MTCNN + tracks) and faces scored by FACE (+ Grad-CAM).

    python bench/video_bench.py [--seconds 20] [--repeats 2]

Writes bench/results_video.json and prints a table. The clip is made here with PyAV (the golden face photo panned
across a 1280×720 gradient, mpeg4, keyframe every second); FACE uses deterministic random classifier weights (the
speed does not depend on weight values). Each figure is the best of ``--repeats`` runs, measured after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.models.factory import create_detector
from core.video.analyse import analyse_video
from core.video.reader import ReadStats, probe
from core.video.sampling import SamplingPlan, sample_frames
from tests.unit.videogen import panned, write_video

SIZE = (1280, 720)


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    """Run the measurements and write bench/results_video.json."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=20, help="clip length (10 frame/s)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_video(Path(tmp) / "720p.mp4", panned([1, 2], size=SIZE, side=300), n=10 * args.seconds,
                           size=SIZE, gop=10)
        plan = SamplingPlan(fps=2, max_frames=1000)
        n = len(list(sample_frames(str(clip), probe(clip), plan, ReadStats())))
        face = create_detector("FACE", pretrained=False)
        analyse_video(str(clip), plan=SamplingPlan(fps=1, max_frames=2), face=face)        # warm-up
        rows = {
            "read_and_sample": _best(lambda: list(sample_frames(str(clip), probe(clip), plan, ReadStats())),
                                     args.repeats),
            "faces_mtcnn_tracks": _best(lambda: analyse_video(str(clip), plan=plan), args.repeats),
            "faces_scored_FACE": _best(lambda: analyse_video(str(clip), plan=plan, face=face, with_cam=False),
                                       args.repeats),
            "faces_scored_FACE_gradcam": _best(lambda: analyse_video(str(clip), plan=plan, face=face),
                                               args.repeats),
        }
        last = analyse_video(str(clip), plan=plan, face=face, with_cam=False)
    out = {"machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
           "clip": {"size": list(SIZE), "seconds": args.seconds, "video_fps": 10, "sampled_fps": 2,
                    "frames_analysed": n, "faces_per_frame": 2, "tracks_found": len(last.tracks)},
           "frames_per_s": {k: round(n / v, 2) for k, v in rows.items()},
           "seconds": {k: round(v, 3) for k, v in rows.items()}}
    path = ROOT / "bench" / "results_video.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{n} sampled 720p frames, {len(last.tracks)} tracks")
    for k, v in out["frames_per_s"].items():
        print(f"  {k:28s} {v:8.2f} frame/s")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
