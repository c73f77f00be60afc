"""HTTP API speed: requests/s and p50/p95 latency of ``POST /v1/detect`` over loopback on a real uvicorn server.

    python bench/api_bench.py [--size 512] [--npr-requests 20] [--ensemble-requests 4] [--clients 4]

Writes bench/results_api.json and prints a table. Two settings: NPR alone, and the five-detector ensemble of the
original app (R50_TF, R50_nodown, CLIP-D, P2G, NPR). Checkpoints are made with the real architectures and random
weights (bench/speed.py's ``make_weights``; speed does not depend on weight values) and installed as each detector's
``custom`` variant into a temporary weights folder, so the server runs exactly as for a user who imported them.
Each setting is measured after two warm-up requests, first by one client (sequential latency), then by
``--clients`` clients at once (throughput under load; the server runs ``--workers`` analyses at a time).
The scores of random weights mean nothing; only the times are reported.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fidelity import P2G_CKPT
from bench.speed import AIGI, make_weights, synthetic
from core.api import create_app
from core.api.server import background_server
from core.models import install
from core.models.registry import get_spec


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def install_random(tmp: Path, ids: list[str]) -> None:
    """Random checkpoints for ``ids`` installed as their ``custom`` variants (backbones for CLIP-D and P2G)."""
    files = make_weights(tmp, P2G_CKPT)
    for det_id in ids:
        weights, backbone = files[det_id]
        install.import_custom(weights, det_id, name="random weights (bench)")
        if backbone:
            install.import_file(backbone, get_spec(f"{det_id}:custom"), part="backbone")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _post(client: httpx.Client, image: bytes, detectors: str) -> tuple[float, float]:
    """(request latency, the detectors' own time in it: the sum of the results' ``elapsed_s``)."""
    t0 = time.perf_counter()
    r = client.post("/v1/detect", params={"detectors": detectors}, files={"image": ("bench.png", image)})
    elapsed = time.perf_counter() - t0
    if r.status_code != 200 or not r.json()["results"]:
        raise RuntimeError(f"/v1/detect answered {r.status_code}: {r.text[:300]}")
    return elapsed, sum(x["elapsed_s"] for x in r.json()["results"])


def _stats(runs: list[tuple[float, float]], wall: float) -> dict:
    lat = [t for t, _ in runs]
    overhead = [t - m for t, m in runs]          # HTTP, upload parsing, decoding, vote and JSON: all but networks
    return {"requests_per_s": len(runs) / wall, "p50_s": statistics.median(lat), "p95_s": percentile(lat, 95),
            "max_s": max(lat), "detectors_p50_s": statistics.median(m for _, m in runs),
            "other_p50_s": statistics.median(overhead)}


def measure(base: str, image: bytes, detectors: str, n: int, clients: int) -> dict:
    """Sequential latency (one client) and throughput with ``clients`` concurrent clients, ``n`` requests each way."""
    with httpx.Client(base_url=base, timeout=600) as c:
        for _ in range(2):
            _post(c, image, detectors)                       # warm-up: models loaded and allocator warm
        t0 = time.perf_counter()
        seq = [_post(c, image, detectors) for _ in range(n)]
        seq_wall = time.perf_counter() - t0

    def one_client(k: int) -> list[tuple[float, float]]:
        with httpx.Client(base_url=base, timeout=600) as c:
            return [_post(c, image, detectors) for _ in range(k)]

    shares = [n // clients + (1 if i < n % clients else 0) for i in range(clients)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        conc = [v for part in pool.map(one_client, shares) for v in part]
    conc_wall = time.perf_counter() - t0
    return {"detectors": detectors.split(","), "requests": n, "sequential": _stats(seq, seq_wall),
            f"concurrent_{clients}_clients": _stats(conc, conc_wall)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512, help="side of the square test image (default 512)")
    ap.add_argument("--npr-requests", type=int, default=20)
    ap.add_argument("--ensemble-requests", type=int, default=4)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1, help="analyses the server runs at once (default 1)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="deepfake-lens-api-bench-") as tmp:
        os.environ.update(DEEPFAKE_LENS_WEIGHTS=str(Path(tmp) / "weights"), HF_HUB_OFFLINE="1",
                          DEEPFAKE_LENS_OFFLINE="1", HF_HUB_CACHE=str(Path(tmp) / "hub"),
                          DEEPFAKE_LENS_PROFILES=str(Path(tmp) / "profiles"))
        log("making and installing random checkpoints…")
        install_random(Path(tmp), AIGI)
        buf = io.BytesIO()
        synthetic(args.size).save(buf, format="PNG")
        image = buf.getvalue()
        app = create_app(workers=args.workers, queue=64, timeout=600)
        res: dict = {"machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                 "platform": platform.platform(), "torch": torch.__version__},
                     "image": f"{args.size}×{args.size} PNG ({len(image)} bytes)", "server_workers": args.workers,
                     "transport": "HTTP/1.1 over 127.0.0.1, uvicorn in the same process as the client threads",
                     "weights": "random, real architectures, installed as each detector's custom variant",
                     "load_average_at_start": os.getloadavg()}
        with background_server(app) as base:
            log("NPR alone…")
            res["npr"] = measure(base, image, "NPR:custom", args.npr_requests, args.clients)
            log(json.dumps(res["npr"]))
            log("ensemble of the five AIGI detectors…")
            res["ensemble"] = measure(base, image, ",".join(f"{d}:custom" for d in AIGI), args.ensemble_requests,
                                      args.clients)
    res["load_average_at_end"] = os.getloadavg()          # the machine may be shared: read the times with these
    res["total_bench_s"] = time.perf_counter() - t_start
    out = ROOT / "bench" / "results_api.json"
    out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    for name in ("npr", "ensemble"):
        r = res[name]
        s, c = r["sequential"], r[f"concurrent_{args.clients}_clients"]
        print(f"{name:<9} sequential {s['requests_per_s']:.2f} req/s  p50 {s['p50_s'] * 1000:.0f} ms  "
              f"p95 {s['p95_s'] * 1000:.0f} ms  (networks {s['detectors_p50_s'] * 1000:.0f} ms, rest "
              f"{s['other_p50_s'] * 1000:.0f} ms) | {args.clients} clients {c['requests_per_s']:.2f} req/s  "
              f"p50 {c['p50_s'] * 1000:.0f} ms  p95 {c['p95_s'] * 1000:.0f} ms")
    print(f"total {res['total_bench_s']:.0f}s; wrote {out}")


if __name__ == "__main__":
    main()
