"""Performance benchmarks (never timed assertions in tests): writes bench/results.json and prints a table.

    python bench/run.py [--quick]

All measurements run in ONE invocation so that ratios are fair on a noisy machine. Weights are generated with the
real architectures (speed does not depend on weight values); the P2G prompts come from the real CDDB checkpoint in
../shared/weights when it is there. Measurements:
 1. seed-style baseline (a fresh process per detector that builds, loads and scores once) vs our warm cached
    detectors, for all five AIGI detectors at 512² and 1024²;
 2. achieved FLOP/s of each forward (torch's FLOP counter) over the machine's measured fp32 matmul peak;
 3. evaluation throughput: batched predict_batch vs a per-image loop, images/s per detector;
 4. cold start (time to first result in a fresh process) and peak RSS with all six detectors loaded;
 5. the bf16 fast path: speed-up on each detector and max |Δlogit| vs fp32 on the golden images (seed-0 filled
    weights, as the parity tests) and on the example images.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core import create_detector, load_image  # noqa: E402
from core.examples import list_examples, load_example  # noqa: E402

AIGI = ["R50_TF", "R50_nodown", "CLIP-D", "P2G", "NPR"]
GOLDEN = Path(os.environ.get("DEEPFAKE_LENS_GOLDEN", ROOT.parent / "shared" / "golden"))
P2G_CKPT = GOLDEN.parent / "weights" / "p2g_cddb_best_results.tar"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def synthetic(size: int, seed: int = 0) -> Image.Image:
    """A photo-like test image: smooth gradients, shapes and mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.5 + 0.4 * np.sin(5 * x + 3 * y), 0.3 + 0.5 * y, 0.6 - 0.4 * x], -1)
    img += rng.normal(0, 0.03, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def make_weights(tmp: Path) -> dict[str, tuple[str, str | None]]:
    """Checkpoint files in each detector's official container, with random weights."""
    out: dict[str, tuple[str, str | None]] = {}
    for det_id in AIGI + ["FACE"]:
        det = create_detector(det_id, pretrained=False)
        w, b = tmp / f"{det_id}.pth", None
        sd = det.model.state_dict()
        if det_id in ("R50_TF", "NPR"):
            torch.save(sd, w)
        elif det_id == "R50_nodown":
            torch.save({"model": sd}, w)
        elif det_id == "FACE":
            torch.save({"model_state_dict": sd}, w)
        elif det_id == "CLIP-D":
            torch.save({"model": sd}, w)
            b = tmp / "clipd_backbone.bin"
            torch.save(det.model.backbone_state_dict(), b)
        elif det_id == "P2G":
            b = tmp / "p2g_backbone.bin"
            torch.save(det.model.clip.state_dict(), b)
            if P2G_CKPT.is_file():
                w = P2G_CKPT
            else:
                prompts = {k: v for k, v in sd.items() if k.startswith("prompt_learner.")}
                keys = torch.nn.functional.normalize(torch.randn(5, 512), dim=-1)
                torch.save({"tasks": 4, "model_state_dict": prompts, "K": 7, "topk_classes": 5,
                            "keys": {"all_keys": torch.randn(5, 5, 512), "all_keys_one_cluster": keys,
                                     "real_keys_one_cluster": keys, "fake_keys_one_cluster": keys},
                            "ensembling_flags": [False, False, True, False]}, w)
        out[det_id] = (str(w), str(b) if b else None)
        del det
        gc.collect()
    return out


def matmul_peak(dtype: torch.dtype, n: int = 4096, reps: int = 3) -> float:
    """Best achieved GFLOP/s of an n×n matmul (the machine's practical peak for that dtype)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def timed(fn, reps: int) -> float:
    """Median wall time of ``reps`` calls (after the caller's warm-up)."""
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def forward_flops(det, image: Image.Image) -> float:
    """FLOPs of one predict() (the network part), counted by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        det.predict(image)
    return float(counter.get_total_flops())


def seed_style(det_id: str, files: tuple[str, str | None], image: Path) -> dict:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "seed_style.py"), det_id, files[0], files[1] or "-",
                          str(image)], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"{det_id} seed-style run failed: {out.stderr[-1000:]}")
    return {"wall_s": wall, **json.loads(out.stdout.strip().splitlines()[-1])}


def golden_models():
    """(det_id, detector with seed-0 filled weights, golden image paths) when the fixtures are present."""
    if not (GOLDEN / "fill.py").is_file():
        return
    spec = importlib.util.spec_from_file_location("golden_fill", GOLDEN / "fill.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    imgs = [GOLDEN / "images" / n for n in ("a_256.png", "b_odd.png", "c_640x480.png", "d_q75.jpg")]
    for det_id in ["R50_nodown", "R50_TF", "NPR", "CLIP-D"]:
        det = create_detector(det_id, pretrained=False)
        det.model.load_state_dict(mod.fill_state_dict(det.model.state_dict(), seed=0))
        if det_id == "CLIP-D":
            det.model.load_backbone_state_dict(mod.fill_state_dict(det.model.backbone_state_dict(), seed=0))
        yield det_id, det, imgs
        del det
        gc.collect()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and repetitions (a few minutes)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = ap.parse_args()
    q = args.quick
    sizes = [512, 1024]
    reps = 1 if q else 2
    n_eval = {"NPR": 48 if q else 200, "default": 8 if q else 24}
    torch.set_num_threads(os.cpu_count() or 1)
    res: dict = {"quick": q, "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                         "platform": platform.platform(), "torch": torch.__version__}}
    t_start = time.perf_counter()
    res["peak_gflops"] = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    log(f"matmul peak: {res['peak_gflops']}")

    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmpd:
        tmp = Path(tmpd)
        log("generating weights files…")
        files = make_weights(tmp)
        image_paths = {}
        for s in sizes:
            image_paths[s] = tmp / f"img_{s}.png"
            synthetic(s).save(image_paths[s])

        # 1 + 4a. seed-style process per detector vs warm cached detectors
        log("1. seed-style vs warm…")
        seed = {s: {} for s in sizes}
        for s in sizes:
            for det_id in AIGI:
                seed[s][det_id] = seed_style(det_id, files[det_id], image_paths[s])
                log(f"  seed {s} {det_id}: {seed[s][det_id]['wall_s']:.1f}s")
        warm = {s: {} for s in sizes}
        flops = {s: {} for s in sizes}
        dets = {}
        for det_id in AIGI:
            dets[det_id] = create_detector(det_id, weights=files[det_id][0], backbone_weights=files[det_id][1])
            for s in sizes:
                img = load_image(image_paths[s])
                dets[det_id].predict(img)                                     # warm-up (P2G: class features)
                warm[s][det_id] = timed(lambda: dets[det_id].predict(img), reps)
                flops[s][det_id] = forward_flops(dets[det_id], img)
                log(f"  warm {s} {det_id}: {warm[s][det_id]:.2f}s  {flops[s][det_id] / 1e12:.3f} TFLOP")
        res["1_seed_vs_ours"] = {
            str(s): {"seed_style_s": {d: seed[s][d]["wall_s"] for d in AIGI}, "ours_warm_s": warm[s],
                     "seed_total_s": sum(seed[s][d]["wall_s"] for d in AIGI), "ours_total_s": sum(warm[s].values()),
                     "ratio": sum(seed[s][d]["wall_s"] for d in AIGI) / sum(warm[s].values()),
                     "target": 3.0 if s == 512 else 1.5} for s in sizes}

        # 2. efficiency vs the physical limit
        peak = res["peak_gflops"]["fp32"]
        res["2_efficiency"] = {str(s): {d: {"tflop": flops[s][d] / 1e12, "seconds": warm[s][d],
                                            "gflops": flops[s][d] / warm[s][d] / 1e9,
                                            "fraction_of_peak": flops[s][d] / warm[s][d] / 1e9 / peak}
                                        for d in AIGI} for s in sizes}
        res["2_efficiency"]["target"] = {"R50_nodown": 0.7, "R50_TF": 0.7, "CLIP-D": 0.7}

        # 3. evaluation throughput: batched vs per-image loop
        log("3. evaluation throughput…")
        thr = {}
        for det_id in AIGI:
            n = n_eval.get(det_id, n_eval["default"])
            imgs = [synthetic(512, seed=i) for i in range(n)]
            det = dets[det_id]
            det.predict_batch(imgs[:2], batch_size=2)
            t = time.perf_counter()
            for im in imgs:
                det.predict(im)
            loop = time.perf_counter() - t
            t = time.perf_counter()
            det.predict_batch(imgs, batch_size=8)
            batched = time.perf_counter() - t
            thr[det_id] = {"images": n, "loop_img_per_s": n / loop, "batched_img_per_s": n / batched,
                           "ratio": loop / batched}
            log(f"  {det_id}: loop {n / loop:.2f} img/s, batched {n / batched:.2f} img/s")
        res["3_eval_throughput_512"] = thr
        del dets
        gc.collect()

        # 4. cold start and peak RSS with all six loaded
        log("4. cold start and RSS…")
        res["4_cold_start_s"] = {d: seed[512][d]["wall_s"] for d in AIGI}
        face = seed_style("FACE", files["FACE"], image_paths[512])
        res["4_cold_start_s"]["FACE"] = face["wall_s"]
        spec_file = tmp / "all.json"
        spec_file.write_text(json.dumps({d: list(files[d]) for d in AIGI + ["FACE"]}))
        out = subprocess.run([sys.executable, str(ROOT / "bench" / "rss_all.py"), str(spec_file),
                              str(image_paths[512])], capture_output=True, text=True, cwd=ROOT, timeout=1800)
        res["4_peak_rss_all_six_mb"] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"] \
            if out.returncode == 0 else f"failed: {out.stderr[-500:]}"

    # 5. bf16 fast path
    log("5. bf16 fast path…")
    fast: dict = {}
    examples = [load_example(e) for e in list_examples()]
    for det_id, det, gimgs in golden_models():
        rec = {"golden_max_abs_dlogit": 0.0, "golden_flips": 0, "example_max_abs_dlogit": 0.0, "example_flips": 0}
        for kind, images in (("golden", [load_image(p) for p in gimgs]), ("example", examples)):
            for im in images:
                det.set_precision("fp32")
                a = det.predict(im)
                det.set_precision("bf16")
                b = det.predict(im)
                rec[f"{kind}_max_abs_dlogit"] = max(rec[f"{kind}_max_abs_dlogit"], abs(a.logit - b.logit))
                rec[f"{kind}_flips"] += int(a.label != b.label)
        img = synthetic(512)
        det.set_precision("fp32")
        det.predict(img)
        t32 = timed(lambda: det.predict(img), reps)
        det.set_precision("bf16")
        det.predict(img)
        t16 = timed(lambda: det.predict(img), reps)
        rec.update(fp32_s=t32, bf16_s=t16, speedup=t32 / t16)
        rec["meets_bar"] = rec["speedup"] >= 2 and rec["golden_flips"] == 0 and rec["example_flips"] == 0 and \
            rec["golden_max_abs_dlogit"] <= 0.05
        fast[det_id] = rec
        log(f"  {det_id}: x{rec['speedup']:.2f}, golden |Δ| {rec['golden_max_abs_dlogit']:.4f}")
    res["5_bf16_fast_path_512"] = fast
    res["total_bench_s"] = time.perf_counter() - t_start
    Path(args.out).write_text(json.dumps(res, indent=1))
    print_table(res)


def print_table(res: dict) -> None:
    print(f"\nmatmul peak fp32 {res['peak_gflops']['fp32']:.0f} GFLOP/s, bf16 {res['peak_gflops']['bf16']:.0f}")
    for s, r in res["1_seed_vs_ours"].items():
        print(f"[1] {s}²: seed-style {r['seed_total_s']:.1f}s vs ours {r['ours_total_s']:.1f}s → ×{r['ratio']:.2f} "
              f"(target ×{r['target']})")
    for s, r in res["2_efficiency"].items():
        if s == "target":
            continue
        print(f"[2] {s}²: " + ", ".join(f"{d} {v['fraction_of_peak'] * 100:.0f}% ({v['tflop']:.2f} TFLOP in "
                                        f"{v['seconds']:.1f}s)" for d, v in r.items()))
    for d, v in res["3_eval_throughput_512"].items():
        print(f"[3] {d}: loop {v['loop_img_per_s']:.2f} img/s, batched {v['batched_img_per_s']:.2f} img/s → "
              f"×{v['ratio']:.2f} ({v['images']} images)")
    print("[4] cold start: " + ", ".join(f"{d} {t:.1f}s" for d, t in res["4_cold_start_s"].items()))
    print(f"[4] peak RSS with all six loaded: {res['4_peak_rss_all_six_mb']} MB")
    for d, v in res["5_bf16_fast_path_512"].items():
        print(f"[5] {d}: bf16 ×{v['speedup']:.2f}, golden max|Δlogit| {v['golden_max_abs_dlogit']:.4f} "
              f"(flips {v['golden_flips']}), examples {v['example_max_abs_dlogit']:.4f} (flips {v['example_flips']})"
              f" → {'meets' if v['meets_bar'] else 'misses'} the bar")


if __name__ == "__main__":
    main()
