"""Shared helpers for the golden parity tests (../shared/golden, see its README)."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(os.environ.get("DEEPFAKE_LENS_GOLDEN", ROOT.parent / "shared" / "golden"))
SHARED = GOLDEN.parent

requires_golden = pytest.mark.skipif(not GOLDEN.is_dir(),
                                     reason=f"golden fixtures folder {GOLDEN} is absent (set DEEPFAKE_LENS_GOLDEN)")


def golden(det_id: str) -> dict[str, Any]:
    """The golden file of one detector."""
    return json.loads((GOLDEN / f"{det_id}.json").read_text())


def manifest(det_id: str) -> dict[str, Any]:
    """The checkpoint manifest of one detector."""
    return json.loads((GOLDEN / "manifests" / f"{det_id}.json").read_text())


def fill_state_dict(template: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """shared/golden/fill.py's fill_state_dict, imported from the fixtures folder (never copied)."""
    spec = importlib.util.spec_from_file_location("golden_fill", GOLDEN / "fill.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.fill_state_dict(template, seed)


def fill_checksum(sd: dict[str, torch.Tensor]) -> dict[str, float]:
    """n_keys, n_values, sum, abs_sum in float64 (compare with golden['weights']['fill_checksum'])."""
    n_values, total, abs_total = 0, 0.0, 0.0
    for v in sd.values():             # one key at a time: a float64 copy of a ViT-L at once would take 3.4 GB
        d = v.detach().double()
        n_values += d.numel()
        total += float(d.sum())
        abs_total += float(d.abs().sum())
    return {"n_keys": len(sd), "n_values": n_values, "sum": total, "abs_sum": abs_total}


def input_stats(x: torch.Tensor) -> dict[str, Any]:
    """The statistics the goldens record for a model input (1×C×H×W or C×H×W), see input_stats_help."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    a = x[0].detach().double().cpu().numpy()
    c, h, w = a.shape
    rows = [int((i + 0.5) * h / 4) for i in range(4)]
    cols = [int((i + 0.5) * w / 4) for i in range(4)]
    return {
        "shape": [1, c, h, w], "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
        "max": float(a.max()), "channel_mean": a.mean(axis=(1, 2)).tolist(), "channel_std": a.std(axis=(1, 2)).tolist(),
        "value_at_0_0": a[:, 0, 0].tolist(), "value_at_center": a[:, h // 2, w // 2].tolist(),
        "value_at_last": a[:, h - 1, w - 1].tolist(), "grid4x4_rows": rows, "grid4x4_cols": cols,
        "grid4x4": a[:, rows][:, :, cols].tolist(),
    }


def compare_input(ours: torch.Tensor, expected: dict[str, Any], tol: float) -> list[str]:
    """Differences between our input tensor's statistics and the golden's; empty when they match.

    The shape must match exactly; every number within ``tol``.
    """
    got = input_stats(ours)
    if list(got["shape"]) != list(expected["shape"]):
        return [f"input shape {got['shape']} != golden {expected['shape']}"]
    problems = []
    for key, want in expected.items():
        if key in ("shape", "dtype") or key not in got:
            continue
        a, b = np.asarray(got[key], dtype=np.float64), np.asarray(want, dtype=np.float64)
        if a.shape != b.shape:
            problems.append(f"{key}: shape {a.shape} != {b.shape}")
            continue
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        if diff > tol:
            problems.append(f"{key}: max |Δ| {diff:.3g} > {tol:g}")
    return problems


def golden_image(name: str):
    """Open a golden image exactly as the upstream code did: PIL open + convert('RGB')."""
    from PIL import Image
    with Image.open(GOLDEN / "images" / name) as im:
        return im.convert("RGB")
