"""Performance benchmark (never timed assertions in tests): writes bench/results.json and prints a table.

    python bench/run.py [--quick] [--skip SECTION ...]

Everything is measured in ONE invocation and every ratio is taken against the GEMM peaks measured in that same
invocation (bench/machine.py: best of repeated large fp32 and bf16 GEMMs, sampled at the start, the middle and the
end, so the peak is never one measured while the machine was busy). Weights are random in the real architectures
(speed does not depend on values); the fidelity table uses the golden seed-0 fills. Sections:

  machine      CPU model, avx512*/amx* flags, cores, torch and oneDNN facts; GEMM peaks fp32 and bf16
  detectors    network time of each AIGI detector at 512² and 1024², fp32 (faithful) and bf16 (fast mode), as a
               fraction of the fp32 and the bf16 peak
  ensemble     the six detectors on a 1024² photo end to end, fp32 and fast mode, against the FLOP limit
               (total FLOPs ÷ peak)
  engines      R50_TF at 512² under each way of running it: eager unfolded / folded fp32, autocast, resident bf16,
               torch.compile of both (with compile times)
  fidelity     fast mode vs fp32: max |Δp_fake| and verdict flips per detector, golden images and examples
  throughput   evaluation throughput (predict_batch vs a per-image loop) for CLIP-D, P2G and NPR at 512²
  cold         time to a first result in a fresh process, and peak RSS with all six detectors loaded

The machine may be shared: each time is the fastest of its repetitions, and the load average is recorded.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fidelity import DETECTORS as FIDELITY_DETECTORS  # noqa: E402
from bench.fidelity import P2G_CKPT, fidelity_rows  # noqa: E402
from bench.machine import PeakMeter, machine_facts  # noqa: E402
from bench.speed import (  # noqa: E402
    SIX,
    detector_rows,
    engines_row,
    ensemble_row,
    load_six,
    make_weights,
    synthetic,
)
from core.examples import list_examples, load_example  # noqa: E402

SECTIONS = ["detectors", "ensemble", "engines", "fidelity", "throughput", "cold"]


def log(msg: str) -> None:
    """Progress on stderr (stdout carries the table)."""
    print(msg, file=sys.stderr, flush=True)


def photo(size: int):
    """The astronaut example (a camera photo with one face) resized to size² (so FACE has a face to score)."""
    example = next(e for e in list_examples() if "Astronaut" in e.name)
    return load_example(example).resize((size, size))


def throughput(dets: dict, n: int) -> dict[str, Any]:
    """Images/s of predict_batch vs a per-image loop on n synthetic 512² images (CLIP-D, P2G, NPR)."""
    out = {}
    for det_id in ("CLIP-D", "P2G", "NPR"):
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
        out[det_id] = {"images": n, "loop_img_per_s": n / loop, "batched_img_per_s": n / batched,
                       "ratio": loop / batched}
        log(f"  {det_id}: loop {n / loop:.2f} img/s, batched {n / batched:.2f} img/s")
    return out


def cold(files: dict, tmp: Path) -> dict[str, Any]:
    """Seed-style fresh processes (build, load, score once) per detector, and peak RSS with all six loaded."""
    image = tmp / "img_512.png"
    synthetic(512).save(image)
    out: dict[str, Any] = {"cold_start_s": {}}
    for det_id in SIX:
        t = time.perf_counter()
        run = subprocess.run([sys.executable, str(ROOT / "bench" / "seed_style.py"), det_id, files[det_id][0],
                              files[det_id][1] or "-", str(image)], capture_output=True, text=True, cwd=ROOT,
                             timeout=900)
        out["cold_start_s"][det_id] = time.perf_counter() - t if run.returncode == 0 else \
            f"failed: {run.stderr[-300:]}"
    spec_file = tmp / "all.json"
    spec_file.write_text(json.dumps({d: list(files[d]) for d in SIX}))
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "rss_all.py"), str(spec_file), str(image)],
                         capture_output=True, text=True, cwd=ROOT, timeout=900)
    if run.returncode == 0:
        rss = json.loads(run.stdout.strip().splitlines()[-1])
        out["peak_rss_all_six_mb"], out["steady_rss_all_six_mb"] = rss["peak_rss_mb"], rss["steady_rss_mb"]
    else:
        out["peak_rss_all_six_mb"] = out["steady_rss_all_six_mb"] = f"failed: {run.stderr[-300:]}"
    return out


def run_sections(args: argparse.Namespace, res: dict[str, Any], meter: PeakMeter) -> None:
    """Every section not skipped, in order; the peak is sampled again between the heavy ones."""
    reps = 1 if args.quick else 2
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmpd:
        tmp = Path(tmpd)
        need_six = {"detectors", "ensemble", "engines", "throughput", "cold"} - set(args.skip)
        files = make_weights(tmp, P2G_CKPT, args.detectors) if need_six else {}
        dets = load_six(files) if need_six - {"cold"} else {}
        if "detectors" not in args.skip:
            log("detectors…")
            res["detectors"] = detector_rows(dets, [512] if args.quick else [512, 1024], meter.peak, reps, log)
            meter.sample()
        if "ensemble" not in args.skip:
            log("ensemble at 1024²…")
            res["ensemble_1024"] = ensemble_row(dets, photo(1024), 1)
        if "engines" not in args.skip:
            log("engines (R50_TF at 512²)…")
            res["engines_r50_tf_512"] = engines_row(dets["R50_TF"], synthetic(512), reps, not args.quick, log)
            meter.sample()
        if "throughput" not in args.skip:
            log("evaluation throughput…")
            res["throughput_512"] = throughput(dets, 8 if args.quick else 16)
        dets.clear()
        gc.collect()
        if "cold" not in args.skip:
            log("cold start and RSS…")
            res["cold"] = cold(files, tmp)
    if "fidelity" not in args.skip:
        log("fidelity (bf16 vs fp32, golden seed-0 weights + examples)…")
        res["fidelity"] = {}
        for det_id, row in fidelity_rows([d for d in FIDELITY_DETECTORS if d in args.detectors]):
            res["fidelity"][det_id] = row
            log(f"  {det_id}: {row['reason']}")


def derive(res: dict[str, Any], peak: dict[str, float]) -> None:
    """Every ratio against the final peaks, and the issue's targets next to what was measured."""
    for rows in res.get("detectors", {}).values():
        for r in rows.values():
            r["fp32_of_fp32_peak"] = r["gflop"] / r["fp32_s"] / peak["fp32"]
            r["bf16_of_bf16_peak"] = r["gflop"] / r["bf16_s"] / peak["bf16"]
    ens = res.get("ensemble_1024")
    if ens:
        total = ens["total_gflop"]
        ens["fp32_limit_s"] = total / peak["fp32"]
        ens["bf16_limit_s"] = total / peak["bf16"]
        ens["fp32_over_limit"] = ens["fp32"]["seconds"] / ens["fp32_limit_s"]
        ens["fast_over_bf16_limit"] = ens["fast"]["seconds"] / ens["bf16_limit_s"]
    eng = res.get("engines_r50_tf_512")
    if eng and "detectors" in res:
        gflop = res["detectors"]["512"]["R50_TF"]["gflop"]
        eng["of_peak"] = {k[:-2]: gflop / v / (peak["bf16"] if k.startswith("bf16") else peak["fp32"])
                          for k, v in eng.items() if k.endswith("_s") and not k.endswith("compile_s")
                          and isinstance(v, float)}
    d = res.get("detectors", {})
    res["targets"] = {
        "fast_R50_nodown_of_bf16_peak (≥0.45)": {s: d[s].get("R50_nodown", {}).get("bf16_of_bf16_peak") for s in d},
        "fp32_of_fp32_peak (≥0.65)": {s: {k: d[s][k]["fp32_of_fp32_peak"] for k in ("R50_nodown", "R50_TF")
                                          if k in d[s]} for s in d},
        "ensemble_fast_over_bf16_limit (≤2.5)": ens["fast_over_bf16_limit"] if ens else None,
        "ensemble_fp32_over_fp32_limit (≤2)": ens["fp32_over_limit"] if ens else None,
        "fast_offered": {k: v.get("meets_bar") for k, v in res.get("fidelity", {}).items()},
    }


def main() -> None:
    """Parse the options, run the sections, write the JSON, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repetition, 512² only in 'detectors', no torch.compile")
    ap.add_argument("--skip", nargs="*", default=[], choices=SECTIONS, help="sections to leave out")
    ap.add_argument("--detectors", type=lambda v: v.split(","), default=SIX,
                    help=f"comma-separated subset of {','.join(SIX)} (the ensemble, throughput and cold sections "
                         "need all six)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = ap.parse_args()
    if set(args.detectors) != set(SIX):
        args.skip = sorted(set(args.skip) | {"ensemble", "throughput", "cold"})
    if "R50_TF" not in args.detectors:
        args.skip = sorted(set(args.skip) | {"engines"})
    torch.set_num_threads(len(os.sched_getaffinity(0)))      # the CPUs this process may use (taskset-aware)
    t_start = time.perf_counter()
    res: dict[str, Any] = {"quick": args.quick, "skipped": args.skip, "detectors_run": args.detectors,
                           "machine": machine_facts()}
    meter = PeakMeter()
    log(f"GEMM peaks: {meter.sample()}")
    run_sections(args, res, meter)
    meter.sample()
    res["peak"] = meter.to_dict()
    derive(res, meter.peak)
    res["machine"]["load_average_at_end"] = os.getloadavg()
    res["total_bench_s"] = time.perf_counter() - t_start
    Path(args.out).write_text(json.dumps(res, indent=1, default=str))
    print_table(res)


def print_table(res: dict[str, Any]) -> None:
    """The results as the README's Performance tables (markdown)."""
    m, p = res["machine"], res["peak"]["gflops"]
    print(f"\n{m['cpu_model']}, {m['cpu_count']} cores, torch {m['torch']}, AMX: {m['has_amx']}, "
          f"avx512_bf16: {m['has_avx512_bf16']}; load {m['load_average_at_start']} → {m['load_average_at_end']}")
    print(f"GEMM peak: fp32 {p['fp32']:.0f} GFLOP/s, bf16 {p['bf16']:.0f} GFLOP/s (by library: "
          f"{json.dumps(res['peak']['by_library'])})\n")
    if "detectors" in res:
        print("| size | detector | GFLOP | fp32 s | of fp32 peak | fast s | of bf16 peak | speed-up |")
        print("|---|---|---|---|---|---|---|---|")
        for s, rows in res["detectors"].items():
            for d, r in rows.items():
                print(f"| {s}² | {d} | {r['gflop']:.0f} | {r['fp32_s']:.2f} | {r['fp32_of_fp32_peak']:.0%} | "
                      f"{r['bf16_s']:.2f} | {r['bf16_of_bf16_peak']:.0%} | ×{r['speedup']:.2f} |")
    ens = res.get("ensemble_1024")
    if ens:
        print(f"\nensemble (six) at 1024²: {ens['total_gflop']:.0f} GFLOP; fp32 {ens['fp32']['seconds']:.1f}s = "
              f"{ens['fp32_over_limit']:.2f}× its fp32 limit ({ens['fp32_limit_s']:.1f}s); fast "
              f"{ens['fast']['seconds']:.1f}s = {ens['fast_over_bf16_limit']:.2f}× its bf16 limit "
              f"({ens['bf16_limit_s']:.1f}s), bf16 on {ens['fast']['bf16_detectors']}")
    eng = res.get("engines_r50_tf_512")
    if eng:
        print("\nR50_TF 512² engines: " + ", ".join(f"{k} {v:.3f}s ({eng['of_peak'].get(k, 0):.0%})"
                                                   for k, v in ((k[:-2], v) for k, v in eng.items()
                                                                if k.endswith("_s") and not k.endswith("compile_s"))))
        print("  compile: " + ", ".join(f"{k} {v:.0f}s" for k, v in eng.items() if k.endswith("compile_s")))
    if "fidelity" in res:
        print("\n| detector | fast path | golden max Δp | golden flips | examples max Δp | examples flips | offered |")
        print("|---|---|---|---|---|---|---|")
        for d, r in res["fidelity"].items():
            if not r.get("measured"):
                print(f"| {d} | not measured: {r['reason']} | | | | | no |")
                continue
            g, e = r["golden"], r["examples"]
            print(f"| {d} | {r['fast_path']} | {g['max_abs_dp']:.4f} | {g['flips']} | {e['max_abs_dp']:.4f} | "
                  f"{e['flips']} | {'yes' if r['meets_bar'] else 'no: ' + r['reason']} |")
    for d, v in res.get("throughput_512", {}).items():
        print(f"throughput {d}: loop {v['loop_img_per_s']:.2f} img/s, batched {v['batched_img_per_s']:.2f} img/s")
    if "cold" in res:
        print(f"cold start: {res['cold']['cold_start_s']}; peak RSS all six: {res['cold']['peak_rss_all_six_mb']} MB, "
              f"steady {res['cold']['steady_rss_all_six_mb']} MB")
    print(f"\ntotal {res['total_bench_s']:.0f}s")


if __name__ == "__main__":
    main()
