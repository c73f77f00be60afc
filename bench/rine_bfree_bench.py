"""Speed of RINE and B-Free (never timed assertions in tests): writes bench/results_rine_bfree.json.

    python bench/rine_bfree_bench.py [--reps N]   (about 4 minutes on 2 loaded cores)

One invocation measures, on the same machine state: the fp32 and bf16 matmul peak (as bench/run.py does), then
seconds per image of warm detectors at 512² and 1024² for RINE:4class (one 224-px centre crop), RINE:4class_tencrop
(ten 224-px crops), B-Free:original (1024 centre crop, then five 504-px crops on the patch grid) and, at 1024², the
bf16 autocast path of B-Free with its |Δlogit| against fp32. Weights are random (built with the real architectures
by ``create_detector(..., pretrained=False)``: speed does not depend on weight values), so the bf16 |Δlogit| is only
indicative. The machine is shared: the 1-minute load average is recorded before and after.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from run import log, matmul_peak, synthetic, timed

from core import create_detector

SIZES = (512, 1024)
# variant → (sizes measured, timed repetitions or None for --reps). The ten-crop cost does not depend on the image
# size beyond 224 px and is ten single-crop forwards: 512² only, one timed run, to keep the whole run under 5 min.
CASES = {"RINE:4class": (SIZES, None), "RINE:4class_tencrop": ((512,), 1), "B-Free:original": (SIZES, None)}


def _crops(details: dict) -> int:
    """How many distinct crops the network ran on (B-Free: identical placements are computed once)."""
    if details.get("crop_boxes"):
        return len({tuple(b) for b in details["crop_boxes"]})
    return len(details.get("crop_logits", [None]))


def measure(key: str, sizes: tuple[int, ...], reps: int) -> dict[str, dict]:
    """Warm seconds per image of one variant at each size: the median of ``reps`` timed runs after one warm-up
    (with ``reps`` 1, the warm-up run itself)."""
    t = time.perf_counter()
    det = create_detector(key, pretrained=False)
    out: dict[str, dict] = {"build_s": round(time.perf_counter() - t, 2)}
    for s in sizes:
        img = synthetic(s)
        t = time.perf_counter()
        first = det.predict(img)                       # warm-up (its time stands in when reps is 1)
        sec = time.perf_counter() - t if reps == 1 else timed(lambda d=det, im=img: d.predict(im), reps)
        out[str(s)] = {"s_per_image": round(sec, 3), "images_per_s": round(1 / sec, 3),
                       "crops_computed": _crops(first.details)}
        log(f"  {key} {s}²: {sec:.2f} s/image")
        if key.startswith("B-Free") and s == 1024:
            det.set_precision("bf16")
            fast = det.predict(img)
            sec16 = timed(lambda d=det, im=img: d.predict(im), reps)
            det.set_precision("fp32")
            out[str(s)]["bf16"] = {"s_per_image": round(sec16, 3), "speedup": round(sec / sec16, 2),
                                   "abs_dlogit_random_weights": abs(fast.logit - first.logit)}
            log(f"  {key} {s}² bf16: {sec16:.2f} s/image ({sec / sec16:.2f}×)")
    del det
    gc.collect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions per case (median reported)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results_rine_bfree.json"))
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "platform": platform.platform(), "torch": torch.__version__,
                             "loadavg_1_5_15_before": [round(v, 2) for v in os.getloadavg()]},
                 "reps": args.reps, "reps_tencrop": 1,
                 "weights": "random (create_detector pretrained=False); speed only"}
    res["peak_gflops"] = {"fp32": round(matmul_peak(torch.float32)), "bf16": round(matmul_peak(torch.bfloat16))}
    log(f"matmul peak: {res['peak_gflops']}")
    res["detectors"] = {}
    for key, (sizes, reps) in CASES.items():
        res["detectors"][key] = measure(key, sizes, reps or args.reps)
    res["machine"]["loadavg_1_5_15_after"] = [round(v, 2) for v in os.getloadavg()]
    res["total_s"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {args.out} in {res['total_s']} s")


if __name__ == "__main__":
    main()
