"""The fast mode's fidelity table: bf16 against fp32 on the golden images (seed-0 filled weights) and the examples.

The bar (issue 15): 0 verdict flips and |Δp_fake| ≤ 0.01 on every image of both sets. A bar on p_fake, not on the
logit, because R50_TF's logits are in the tens. Each detector is built exactly as the golden parity tests build it
(weights filled by ../shared/golden/fill.py with seed 0), then optimised for inference like a production detector
(batch norms folded), so the fp32 side is the faithful path users get.
"""
from __future__ import annotations

import gc
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from core import create_detector
from core.examples import list_examples, load_example
from core.models.detectors.base import Detector

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(os.environ.get("DEEPFAKE_LENS_GOLDEN", ROOT.parent / "shared" / "golden"))
P2G_CKPT = GOLDEN.parent / "weights" / "p2g_cddb_best_results.tar"
MAX_DP = 0.01
DETECTORS = ["R50_TF", "R50_nodown", "NPR", "CLIP-D", "P2G", "FACE"]


def _fill(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    spec = importlib.util.spec_from_file_location("golden_fill", GOLDEN / "fill.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.fill_state_dict(sd, seed=0)


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def golden_images(det_id: str) -> list[Image.Image]:
    """The images the detector's golden file lists (../shared/golden/<ID>.json; the face crops for FACE)."""
    names = json.loads((GOLDEN / f"{det_id}.json").read_text())["images"]
    return [_open(GOLDEN / "images" / name) for name in sorted(names)]


def golden_detector(det_id: str) -> Detector | None:
    """The detector with seed-0 filled weights, optimised for inference; None when its fixtures are absent."""
    if det_id == "P2G":
        if not P2G_CKPT.is_file():
            return None
        layout = json.loads((GOLDEN / "manifests" / "P2G.json").read_text())["backbone"]["keys"]
        filled = _fill({k: torch.empty(shape) for k, shape in layout.items()})
        with tempfile.TemporaryDirectory(prefix="dl-fid-") as tmp:
            path = Path(tmp) / "p2g_backbone_seed0.pt"
            torch.save(filled, path)
            del filled
            return create_detector("P2G", weights=P2G_CKPT, backbone_weights=path)
    det = create_detector(det_id, pretrained=False)
    if det_id == "CLIP-D":
        det.load_backbone(_fill(det.model.backbone_state_dict()), "<seed-0 backbone>")
    det.model.load_state_dict(_fill(det.model.state_dict()), strict=True)
    det.model.eval()
    det.optimize_for_inference()
    return det


def compare(det: Detector, images: list[Image.Image]) -> dict[str, Any]:
    """fp32 vs bf16 on each image: max |Δp_fake|, max |Δlogit|, verdict flips (images with no result skipped)."""
    rec: dict[str, Any] = {"images": 0, "max_abs_dp": 0.0, "max_abs_dlogit": 0.0, "flips": 0, "bf16_applied": True}
    for im in images:
        det.set_precision("fp32")
        a = det.predict(im)
        det.set_precision("bf16")
        b = det.predict(im)
        if not (a.ok and b.ok):
            rec["flips"] += int(a.ok != b.ok)
            continue
        rec["images"] += 1
        rec["bf16_applied"] &= b.details.get("precision") == "bf16"      # False: this family ignores the switch
        rec["max_abs_dp"] = max(rec["max_abs_dp"], abs(a.p_fake - b.p_fake))
        rec["max_abs_dlogit"] = max(rec["max_abs_dlogit"], abs(a.logit - b.logit))
        rec["flips"] += int(a.label != b.label)
    det.set_precision("fp32")
    return rec


def fidelity_rows(detectors: list[str] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(detector id, its row) for each detector, built, compared and freed one at a time."""
    examples = [load_example(e) for e in list_examples()]
    for det_id in detectors or DETECTORS:
        if not (GOLDEN / "fill.py").is_file():
            yield det_id, {"measured": False, "reason": f"golden fixtures absent ({GOLDEN})"}
            continue
        det = golden_detector(det_id)
        if det is None:
            yield det_id, {"measured": False, "reason": f"the real P2G checkpoint {P2G_CKPT} is absent"}
            continue
        row: dict[str, Any] = {"measured": True, "fast_path": "resident bf16 copy" if det.resident_bf16
                               else "autocast bf16",
                               "golden": compare(det, golden_images(det_id)), "examples": compare(det, examples)}
        worst = max(row["golden"]["max_abs_dp"], row["examples"]["max_abs_dp"])
        flips = row["golden"]["flips"] + row["examples"]["flips"]
        applied = row["golden"]["bf16_applied"] and row["examples"]["bf16_applied"]
        row["meets_bar"] = flips == 0 and worst <= MAX_DP and applied
        row["reason"] = (f"max |Δp_fake| {worst:.2g} ≤ {MAX_DP}, 0 flips" if row["meets_bar"] else
                         f"max |Δp_fake| {worst:.3g} (bar {MAX_DP}), {flips} verdict flip(s)" if applied else
                         "its predict() has no bf16 path (results are fp32 whatever the switch): nothing to offer")
        yield det_id, row
        del det
        gc.collect()


__all__ = ["fidelity_rows", "golden_detector", "golden_images", "compare", "MAX_DP", "DETECTORS"]
