"""The machine a benchmark ran on, and its measured GEMM peaks (the limits every ratio in bench/results.json uses).

The peak of a dtype is the best GFLOP/s seen over several repetitions of a large square GEMM, run through both
libraries PyTorch uses on CPU: MKL (``torch.mm``) and oneDNN (a 1×1 convolution over a channels-last map, which is
the same GEMM). Both count because they differ a lot on some CPUs (MKL's fast paths are vendor-gated: on AMD it
reaches about half of oneDNN's fp32 rate), and the convolutional detectors run on oneDNN. :class:`PeakMeter` keeps
the best over every call, so calling :meth:`PeakMeter.sample` again at the end of a run can only raise the peak:
ratios against it are never flattered by a peak measured while the machine was busy.
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

SIZES = {"fp32": 2048, "bf16": 4096}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _cpu_info() -> tuple[str, list[str]]:
    """CPU model name and flags from /proc/cpuinfo (Linux); ("unknown", []) elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", []
    model, flags = "unknown", []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = value.split()
    return model, flags


def machine_facts() -> dict[str, Any]:
    """CPU model, SIMD/matrix flags, cores, torch build facts: what the peaks and ratios depend on."""
    model, flags = _cpu_info()
    return {
        "cpu_model": model,
        "avx512_flags": sorted(f for f in flags if f.startswith("avx512")),
        "amx_flags": sorted(f for f in flags if f.startswith("amx")),
        "has_amx": any(f.startswith("amx") for f in flags),
        "has_avx512_bf16": "avx512_bf16" in flags,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_onednn_available": torch.backends.mkldnn.is_available(),
        "mkl_available": torch.backends.mkl.is_available(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def best_seconds(fn: Callable[[], Any], reps: int) -> float:
    """Fastest of ``reps`` timed calls after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


class PeakMeter:
    """Best GEMM throughput seen so far per dtype and library (GFLOP/s); :attr:`peak` is the max over libraries."""

    def __init__(self) -> None:
        self.best: dict[str, dict[str, float]] = {p: {"mkl_mm": 0.0, "onednn_conv1x1": 0.0} for p in SIZES}
        self.samples = 0

    def sample(self, reps: int = 5) -> dict[str, float]:
        """Measure both dtypes through both libraries ``reps`` times each; returns :attr:`peak`."""
        with torch.inference_mode():
            for prec, n in SIZES.items():
                dt = DTYPES[prec]
                a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
                flops = 2.0 * n ** 3
                self._keep(prec, "mkl_mm", flops / best_seconds(lambda: torch.mm(a, b), reps) / 1e9)
                x = a.reshape(1, n, 32, n // 32).contiguous(memory_format=torch.channels_last)
                w = b.reshape(n, n, 1, 1).contiguous(memory_format=torch.channels_last)
                self._keep(prec, "onednn_conv1x1", flops / best_seconds(lambda: F.conv2d(x, w), reps) / 1e9)
                del a, b, x, w
        self.samples += 1
        return self.peak

    def _keep(self, prec: str, lib: str, gflops: float) -> None:
        self.best[prec][lib] = max(self.best[prec][lib], gflops)

    @property
    def peak(self) -> dict[str, float]:
        """{"fp32": GFLOP/s, "bf16": GFLOP/s}: the best of both libraries."""
        return {p: max(v.values()) for p, v in self.best.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the peaks, each library's best, the GEMM sizes and how many samples were taken."""
        return {"gflops": self.peak, "by_library": self.best, "gemm_n": SIZES, "samples": self.samples,
                "method": "best of repeated n×n GEMMs (fp32 n=2048, bf16 n=4096) through MKL torch.mm and oneDNN "
                          "1×1 conv, sampled at the start, middle and end of this run"}


__all__ = ["PeakMeter", "machine_facts", "best_seconds"]
