"""Forward-pass speed against the measured peaks: per detector, the six-detector ensemble, and inference engines.

Times are the fastest of several repetitions (the machine may be shared: the fastest run is the one least
disturbed). A detector's *network time* is its scoring of an already prepared input (``_run_score``: the forward
pass under its lock and precision), so its FLOP/s can be set against the GEMM peak; the ensemble is timed end to
end (``predict``: decoding excluded, preprocessing included), as a user waits for it.
"""
from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from bench.machine import best_seconds
from core import create_detector
from core.models.detectors.base import Detector
from core.models.factory import build_detector
from core.models.fast import bf16_copy

AIGI = ["R50_TF", "R50_nodown", "CLIP-D", "P2G", "NPR"]
SIX = AIGI + ["FACE"]


def synthetic(size: int, seed: int = 0) -> Image.Image:
    """A photo-like test image: smooth gradients, shapes and mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = np.stack([0.5 + 0.4 * np.sin(5 * x + 3 * y), 0.3 + 0.5 * y, 0.6 - 0.4 * x], -1)
    img += rng.normal(0, 0.03, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def make_weights(tmp: Path, p2g_ckpt: Path, detectors: list[str] = SIX) -> dict[str, tuple[str, str | None]]:
    """Checkpoint files in each detector's official container, with random weights (speed ignores values)."""
    out: dict[str, tuple[str, str | None]] = {}
    for det_id in detectors:
        det = create_detector(det_id, pretrained=False)
        w, b = tmp / f"{det_id}.pth", None
        sd = det.model.state_dict()
        wrap = {"R50_nodown": "model", "CLIP-D": "model", "FACE": "model_state_dict"}.get(det_id)
        if det_id != "P2G":
            torch.save({wrap: sd} if wrap else sd, w)
        if det_id == "CLIP-D":
            b = tmp / "clipd_backbone.bin"
            torch.save(det.model.backbone_state_dict(), b)
        elif det_id == "P2G":
            b = tmp / "p2g_backbone.bin"
            torch.save(det.model.clip.state_dict(), b)
            w = p2g_ckpt if p2g_ckpt.is_file() else _p2g_checkpoint(tmp / "p2g.tar", sd)
        out[det_id] = (str(w), str(b) if b else None)
        del det, sd
        gc.collect()
    return out


def _p2g_checkpoint(path: Path, sd: dict[str, torch.Tensor]) -> Path:
    """A Prompt2Guard checkpoint with random prompts and keys (used when the real CDDB one is absent)."""
    prompts = {k: v for k, v in sd.items() if k.startswith("prompt_learner.")}
    keys = torch.nn.functional.normalize(torch.randn(5, 512), dim=-1)
    torch.save({"tasks": 4, "model_state_dict": prompts, "K": 7, "topk_classes": 5,
                "keys": {"all_keys": torch.randn(5, 5, 512), "all_keys_one_cluster": keys,
                         "real_keys_one_cluster": keys, "fake_keys_one_cluster": keys},
                "ensembling_flags": [False, False, True, False]}, path)
    return path


def network_flops(det: Detector, image: Image.Image) -> float:
    """FLOPs of scoring one prepared image in fp32 (torch.utils.flop_counter; the network only).

    An optimised network is counted on its unfolded build (random weights, same convolutions): the counter does
    not know the fused oneDNN ops of core.models.fast.FusedBottleneck. Autograd is on so that attention runs its
    counted path (the inference fast path of nn.MultiheadAttention is invisible to the counter); only networks
    with attention record it. Call it after a
    warm-up: P2G's first call also encodes its class prompts (cached afterwards).
    """
    ref = build_detector(det.spec) if det.folded else det
    prep = ref.prepare(image)
    # Autograd only where attention needs it: with a graph recorded, a full-resolution CNN keeps every activation
    # for a backward pass that never comes (R50_nodown at 1024² would hold ~20 GB).
    attention = any(isinstance(m, torch.nn.MultiheadAttention) for m in ref.model.modules())
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(attention):
        ref._run_score([prep])
    return float(counter.get_total_flops())


def image_flops(det: Detector, image: Image.Image) -> float:
    """FLOPs of one image for the ensemble: the network's, or FACE's whole predict (face finder and crops)."""
    if det.detector_id != "FACE":
        return network_flops(det, image)
    with FlopCounterMode(display=False) as counter:
        det.predict(image)
    return float(counter.get_total_flops())


def network_seconds(det: Detector, image: Image.Image, precision: str, reps: int) -> float:
    """Fastest network time of one prepared image in ``precision``."""
    prep = det.prepare(image)
    det.set_precision(precision)
    try:
        with torch.inference_mode():
            return best_seconds(lambda: det._run_score([prep]), reps)
    finally:
        det.set_precision("fp32")


def detector_rows(dets: dict[str, Detector], sizes: list[int], peak: dict[str, float], reps: int,
                  log) -> dict[str, dict[str, Any]]:
    """Per size and detector: GFLOP, fp32 and bf16 network seconds, and each as a fraction of its peak."""
    out: dict[str, dict[str, Any]] = {}
    for s in sizes:
        img = synthetic(s)
        out[str(s)] = {}
        for det_id, det in dets.items():
            if det_id == "FACE":
                continue
            t32 = network_seconds(det, img, "fp32", reps)
            t16 = network_seconds(det, img, "bf16", reps)
            flops = network_flops(det, img)                  # after the warm-up (P2G's prompt cache)
            out[str(s)][det_id] = {
                "gflop": flops / 1e9, "fp32_s": t32, "bf16_s": t16, "speedup": t32 / t16,
                "fp32_of_fp32_peak": flops / t32 / 1e9 / peak["fp32"],
                "bf16_of_bf16_peak": flops / t16 / 1e9 / peak["bf16"],
                "fast_path": "resident bf16 copy" if det.resident_bf16 else "autocast bf16"}
            r = out[str(s)][det_id]
            log(f"  {s}² {det_id}: {r['gflop']:.0f} GFLOP fp32 {t32:.2f}s ({r['fp32_of_fp32_peak']:.0%}) "
                f"bf16 {t16:.2f}s ({r['bf16_of_bf16_peak']:.0%})")
    return out


def ensemble_row(dets: dict[str, Detector], image: Image.Image, reps: int) -> dict[str, Any]:
    """The six detectors on one image, end to end: fp32, and fast mode where each detector offers it."""
    for det in dets.values():
        det.predict(image)                                   # warm-up (P2G's prompt cache) before counting
    flops = {d: image_flops(det, image) for d, det in dets.items()}
    row: dict[str, Any] = {"detectors": list(dets), "gflop": {d: f / 1e9 for d, f in flops.items()},
                           "total_gflop": sum(flops.values()) / 1e9}
    for mode in ("fp32", "fast"):
        offered = []
        for det in dets.values():
            det.set_precision("fp32")
            if mode == "fast" and det.use_fast_mode():
                offered.append(det.detector_id)
        per = {d: best_seconds(lambda det=det: det.predict(image), reps) for d, det in dets.items()}
        row[mode] = {"seconds": sum(per.values()), "per_detector_s": per, "bf16_detectors": offered}
    for det in dets.values():
        det.set_precision("fp32")
    return row


def engines_row(det: Detector, image: Image.Image, reps: int, compile_too: bool, log) -> dict[str, Any]:
    """One detector's network under each way of running it, fastest of ``reps`` each.

    ``fp32_eager_unfolded`` and ``bf16_autocast`` run the network as built (batch norms separate: the paths
    before issue 15); ``fp32_eager_folded`` and ``bf16_resident`` run the detector's optimised network and its
    resident bf16 copy (today's paths); with ``compile_too``, torch.compile (inductor, weights frozen) of both,
    with their compile times.
    """
    x = det.batch([det.prepare(image)])
    xb = x.to(torch.bfloat16, memory_format=torch.channels_last)
    unfolded = build_detector(det.spec).model     # random weights: values do not change the speed
    resident = bf16_copy(det.model)

    def autocast() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return unfolded(x)

    runs = {"fp32_eager_unfolded": lambda: unfolded(x), "fp32_eager_folded": lambda: det.model(x),
            "bf16_autocast": autocast, "bf16_resident": lambda: resident(xb)}
    out: dict[str, Any] = {"folded": det.folded}
    with torch.inference_mode():
        for name, fn in runs.items():
            out[f"{name}_s"] = best_seconds(fn, reps)
        if compile_too:
            for name, model, inp in (("fp32_compiled", det.model, x), ("bf16_compiled", resident, xb)):
                t0 = time.perf_counter()
                with torch._inductor.config.patch(freezing=True):
                    compiled = torch.compile(model)
                    compiled(inp)
                out[f"{name}_compile_s"] = time.perf_counter() - t0
                out[f"{name}_s"] = best_seconds(lambda: compiled(inp), reps)
                log(f"  {name}: compile {out[f'{name}_compile_s']:.0f}s, run {out[f'{name}_s']:.3f}s")
    return out


def load_six(files: dict[str, tuple[str, str | None]]) -> dict[str, Detector]:
    """The detectors of ``files`` through the production path (create_detector: checkpoint loaded, network optimised)."""
    return {d: create_detector(d, weights=files[d][0], backbone_weights=files[d][1]) for d in files}


__all__ = ["AIGI", "SIX", "synthetic", "make_weights", "load_six", "detector_rows", "ensemble_row", "engines_row",
           "network_flops"]
