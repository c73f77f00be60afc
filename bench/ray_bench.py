"""Throughput of evaluation: the local engine vs the Ray engine on 1 node and on 2 nodes (loopback), with NPR.

    python bench/ray_bench.py [--images 200] [--size 512] [--out bench/results_ray.json]

NPR (test.py's 256×256 variant) gets random weights on its real architecture (speed does not depend on weight
values). The images are generated JPEGs in a labelled folder (half real/, half fake/). Per engine: wall time of the
whole call, images/s over it, and when the first batch came back. The Ray overhead is the extra time before the
first result (starting the instance, the actors and their models; Ray Data hands results back in bursts, so a rate
measured between batches says little). The 2-node cluster runs on this machine (two `ray start` nodes of 1 CPU each
on loopback), so it shows the overhead and the correctness of the distribution, not a speed-up: both nodes share
the same 2 cores.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.evaluation import datasets as D  # noqa: E402
from core.evaluation import runner as E  # noqa: E402
from core.evaluation.distributed.cluster import scoped_env  # noqa: E402
from core.evaluation.distributed.engine import evaluate_ray  # noqa: E402
from core.models.factory import create_detector  # noqa: E402
from tests.helpers.ray_cluster import LoopbackCluster  # noqa: E402


# test.py's setting (resize to 256×256): the cheapest NPR variant, so the engines' overheads show
DETECTOR = "NPR:original_resize256"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_folder(root: Path, n: int, size: int) -> None:
    """``n`` smooth random JPEGs of size² pixels, half under real/ and half under fake/."""
    rng = np.random.default_rng(0)
    for i in range(n):
        coarse = rng.random((size // 32, size // 32, 3)) * 255
        img = Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        path = root / ("real" if i % 2 == 0 else "fake") / f"img{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())


class Clock:
    """A progress callback that records when each batch came back."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.marks: list[tuple[float, int]] = []

    def __call__(self, done: int, total: int, eta: float | None) -> None:
        if done:
            self.marks.append((time.perf_counter() - self.t0, done))

    def result(self, n: int) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        return {"wall_s": round(wall, 2), "images_per_s": round(n / wall, 2),
                "first_result_s": round(self.marks[0][0], 2)}


def bench_local(ds: D.Dataset, det: object, n: int, batch: int) -> dict:
    clock = Clock()
    E.evaluate(ds, [det], batch_size=batch, cache=False, progress=clock)
    return clock.result(n)


def bench_ray(ds: D.Dataset, det: object, n: int, batch: int, address: str | None = None) -> dict:
    clock = Clock()
    lines: list[str] = []
    run = evaluate_ray(ds, [det], batch_size=batch, cache=False, progress=clock, address=address,
                       log=lines.append)
    assert run.computed == n, (run.computed, n)
    return {**clock.result(n), "plan": lines[0] if lines else "", "weights": lines[1:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results_ray.json"))
    args = ap.parse_args()
    n, batch = args.images, args.batch_size
    res: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                             "load_avg_at_start": os.getloadavg(), "note": "shared machine: other jobs were running"},
                 "images": n, "size": args.size, "batch_size": batch, "detector": f"{DETECTOR} (random weights)"}
    with tempfile.TemporaryDirectory(prefix="dl-raybench-") as tmpd:
        tmp = Path(tmpd)
        make_folder(tmp / "data", n, args.size)
        weights = tmp / "NPR.pth"
        torch.save(create_detector(DETECTOR, pretrained=False).model.state_dict(), weights)
        det = create_detector(DETECTOR, weights=weights)
        ds = D.from_path(tmp / "data")
        log("local engine…")
        res["local"] = bench_local(ds, det, n, batch)
        log("Ray, private local instance (1 node, 2 CPUs)…")
        res["ray_1_node"] = bench_ray(ds, det, n, batch)
        log("Ray, 2 loopback nodes of 1 CPU…")
        with LoopbackCluster(2, cpus=1) as cluster:
            with scoped_env(cluster.driver_env):          # the cluster's token, for this driver only
                res["ray_2_nodes"] = bench_ray(ds, det, n, batch, address=cluster.address)
    res["machine"]["load_avg_at_end"] = os.getloadavg()
    res["ray_overhead_s"] = {k: round(res[k]["first_result_s"] - res["local"]["first_result_s"], 2)
                             for k in ("ray_1_node", "ray_2_nodes")}
    Path(args.out).write_text(json.dumps(res, indent=1))
    for k in ("local", "ray_1_node", "ray_2_nodes"):
        r = res[k]
        log(f"{k:12} wall {r['wall_s']:7.1f} s  {r['images_per_s']:6.2f} img/s  first result {r['first_result_s']:5.1f} s")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
