"""Speed, part B: Grad-CAM vs forward, the ensemble robustness probe, peak RSS, evaluation throughput.

    python bench/speed_b.py [--images 96] [--before-images 32] [--out bench/results_speed_b.json]

Everything runs in ONE invocation so that ratios are fair on a noisy machine; each "before" is the old path of the
same code, switched on by its flag (``gradcam(from_layer=False)``, ``run_probe(batch=False)``,
``evaluate(prefetch=False)`` with P2G's text cache off). Weights are generated with the real architectures by
``bench/speed.py``'s ``make_weights`` (speed does not depend on their values); images are its synthetic ones.
 4. Grad-CAM time / forward time per explainable detector at 512² (the library's old path too, where cheap),
    and the robustness probe of the six-detector ensemble at 512², batched vs one by one;
 5. peak RSS with all six loaded (a fresh process: bench/rss_all.py);
 6. evaluation images/s for CLIP-D and P2G on --images PNGs of 512² (the "before" rate on the first
    --before-images of them): old path, new path in fp32, and new path in the bf16 fast mode. The defaults keep the
    whole run near 6 minutes on an idle 2-core machine; ``--images 200`` is the issue's setting (rates, so the
    ratios compare).
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fidelity import P2G_CKPT  # noqa: E402
from bench.speed import SIX, make_weights, synthetic  # noqa: E402
from core import create_detector  # noqa: E402
from core.evaluation import datasets as D  # noqa: E402
from core.evaluation import runner as E  # noqa: E402
from core.models.explain import gradcam, get_submodule_by_path, input_gradients_only  # noqa: E402
from core.verdict.robustness import run_probe  # noqa: E402

CAM = ["NPR", "R50_TF", "R50_nodown"]          # the explainable detectors of the six that see a whole image
OLD_CAM = {"NPR", "R50_TF"}                    # the library path is slow: measured where it stays cheap


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def clock(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def old_gradcam(det, image) -> object:
    """Detector.explain's map through the old path: pytorch-grad-cam with the graph from the input."""
    with torch.inference_mode(False):
        x = det.prepare(image).tensor.unsqueeze(0).to(det.device, memory_format=det.memory_format)
        with det.lock, input_gradients_only(det.model):
            layer = get_submodule_by_path(det.model, det.spec.explain_layer)
            return gradcam(det.model, layer, x, forward=det.forward, from_layer=False)


def bench_gradcam(dets: dict, image) -> dict:
    """Forward (warm predict) and Grad-CAM (first and second call) per detector, and the old path's time."""
    out = {}
    for det_id in CAM:
        det = dets[det_id]
        det.predict(image)
        fwd, _ = clock(lambda: det.predict(image))
        first, _ = clock(lambda: det.explain(image))
        second, exp = clock(lambda: det.explain(image))
        rec = {"forward_s": fwd, "gradcam_first_s": first, "gradcam_s": second, "ratio": second / fwd,
               "ratio_first_call": first / fwd, "target_ratio": 3.0}
        if det_id in OLD_CAM:
            old_s, old = clock(lambda: old_gradcam(det, image))
            rec.update(old_gradcam_s=old_s, old_ratio=old_s / fwd,
                       max_abs_diff_vs_old=float(abs(exp.heatmap - old).max()))
        out[det_id] = rec
        log(f"  {det_id}: forward {fwd:.2f}s, Grad-CAM {second:.2f}s (first {first:.2f}s)"
            + (f", old path {rec['old_gradcam_s']:.2f}s" if det_id in OLD_CAM else ""))
    return out


def bench_probe(dets: dict, image) -> dict:
    ens = [dets[d] for d in SIX]
    for d in ens:
        d.predict(image)
    after, a = clock(lambda: run_probe(image, ens))
    log(f"  probe batched: {after:.1f}s")
    before, b = clock(lambda: run_probe(image, ens, batch=False))
    log(f"  probe one by one: {before:.1f}s")
    diff = max(abs(x.p_fake - y.p_fake) for x, y in zip(a.rows, b.rows) if x.label in ("real", "fake"))
    return {"detectors": SIX, "image": "512x512", "before_s": before, "after_s": after, "speedup": before / after,
            "target_s": 60.0, "max_abs_dp_fake_batched_vs_one_by_one": diff}


def bench_rss(files: dict, image_path: Path, tmp: Path) -> dict:
    spec_file = tmp / "six.json"
    spec_file.write_text(json.dumps({d: list(files[d]) for d in SIX}))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "rss_all.py"), str(spec_file), str(image_path)],
                         capture_output=True, text=True, cwd=ROOT, timeout=1200)
    if out.returncode != 0:
        return {"error": out.stderr[-800:]}
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "target_mb": 3000}


def eval_rate(det, ds, n: int, *, prefetch: bool, text_cache: bool, precision: str) -> float:
    """Images/s of evaluate() over the first ``n`` items (score cache off)."""
    sub = dataclasses.replace(ds, items=ds.items[:n])
    det.set_precision(precision)
    if hasattr(det, "text_cache_size"):
        det.text_cache_size = 512 if text_cache else 0
        det._text_cache.clear()
    dt, run = clock(lambda: E.evaluate(sub, [det], batch_size=8, cache=False, prefetch=prefetch))
    assert run.computed == n, run.computed
    det.set_precision("fp32")
    return n / dt


def bench_eval(dets: dict, n: int, n_before: int) -> dict:
    files = {}
    for i in range(n):
        buf = io.BytesIO()
        synthetic(512, seed=i).save(buf, format="PNG")
        files[f"{'fake' if i % 2 else 'real'}/{i:04d}.png"] = buf.getvalue()
    ds = D.from_uploads(files)
    out = {}
    for det_id in ("CLIP-D", "P2G"):
        det = dets[det_id]
        det.predict_batch([synthetic(512, seed=9999)] * 2, batch_size=2)
        before = eval_rate(det, ds, n_before, prefetch=False, text_cache=False, precision="fp32")
        after = eval_rate(det, ds, n, prefetch=True, text_cache=True, precision="fp32")
        fast = eval_rate(det, ds, n, prefetch=True, text_cache=True, precision="bf16")
        out[det_id] = {"images": n, "before_images": n_before, "before_img_per_s": before,
                       "after_fp32_img_per_s": after, "after_bf16_img_per_s": fast,
                       "speedup_fp32": after / before, "speedup_bf16": fast / before, "target": 1.5}
        log(f"  {det_id}: before {before:.2f} img/s, after fp32 {after:.2f}, bf16 {fast:.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=96, help="evaluation images (512² PNGs)")
    ap.add_argument("--before-images", type=int, default=32, help="of them, scored by the old path too")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results_speed_b.json"))
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    t0 = time.perf_counter()
    res: dict = {"machine": {"cpu_count": os.cpu_count(), "load_avg_at_start": os.getloadavg(),
                             "torch": torch.__version__}}
    with tempfile.TemporaryDirectory(prefix="dl-bench-b-") as tmpd:
        tmp = Path(tmpd)
        log("generating weights…")
        files = make_weights(tmp, P2G_CKPT)
        image = synthetic(512)
        image.save(tmp / "img_512.png")
        log("5. peak RSS with all six loaded (fresh process)…")
        res["5_peak_rss_all_six"] = bench_rss(files, tmp / "img_512.png", tmp)
        log(f"  {res['5_peak_rss_all_six']}")
        dets = {d: create_detector(d, weights=files[d][0], backbone_weights=files[d][1]) for d in SIX}
        log("4a. Grad-CAM vs forward…")
        res["4a_gradcam_512"] = bench_gradcam(dets, image)
        log("4b. robustness probe of the ensemble…")
        res["4b_probe_512"] = bench_probe(dets, image)
        log("6. evaluation throughput…")
        res["6_eval_throughput_512"] = bench_eval(dets, args.images, min(args.before_images, args.images))
        del dets
        gc.collect()
    res["machine"]["load_avg_at_end"] = os.getloadavg()
    res["total_bench_s"] = time.perf_counter() - t0
    Path(args.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
