"""Golden parity of CLIP-D (open_clip ViT-L/14 next-to-last feature + linear head) against the GRIP reference code.

The backbone (open_clip key names, without ``visual.proj``) and the head (``fc.*``) are each filled with
fill_state_dict(seed=0), as the golden README (section 4) says, and loaded through the detector's own
``load_checkpoint`` / ``load_backbone``. Every number is compared at the golden's STRICT tolerances, in pipeline
order: input tensor → logit → probability → intermediates (the 1024-d feature and its norm before L2
normalisation), so a failure says which stage drifted.

ViT-L/14 has 428 M parameters: the detector is built and filled once for the module and each image goes through
the network once (forward hooks collect the intermediates during ``predict``).
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from core.models.detectors.clip_linear import PROJ_KEY
from core.models.factory import create_detector
from core.models.registry import get_spec
from tests.helpers.golden import (
    GOLDEN,
    compare_input,
    fill_checksum,
    fill_state_dict,
    golden,
    golden_image,
    manifest,
    requires_golden,
)

pytestmark = requires_golden

DET_ID = "CLIP-D"


def _image_names() -> list[str]:
    try:
        return sorted(golden(DET_ID)["images"])
    except OSError:                       # folder absent: the module is skipped by requires_golden anyway
        return []


def _streamed_checksum(sd: dict[str, torch.Tensor]) -> dict[str, float]:
    """fill_checksum summed key by key: the helper's float64 copy of all 427 M values at once would need 3.4 GB."""
    total = {"n_keys": 0, "n_values": 0, "sum": 0.0, "abs_sum": 0.0}
    for k, v in sd.items():
        part = fill_checksum({k: v})
        for name in total:
            total[name] += part[name]
    return total


@pytest.fixture(scope="module")
def built():
    """CLIP-D built once; the backbone layout is recorded, then both parts are filled (seed 0) and loaded.

    Returns a dict: ``det`` (loaded detector), ``head_keys`` / ``backbone_keys`` (name → shape before loading),
    ``checksums`` ([backbone, head] fill checksums).
    """
    det = create_detector(DET_ID, pretrained=False)
    backbone = det.model.backbone_state_dict()
    head = det.model.state_dict()
    out = {
        "head_keys": {k: list(v.shape) for k, v in head.items()},
        "backbone_keys": {k: list(v.shape) for k, v in backbone.items()},
        "layout": {k: list(v) for k, v in det.model.backbone_layout.items()},
    }
    filled_bb = fill_state_dict(backbone, seed=0)
    filled_head = fill_state_dict(head, seed=0)
    out["checksums"] = [_streamed_checksum(filled_bb), fill_checksum(filled_head)]
    det.load_checkpoint({"model": filled_head}, "<filled head>")
    det.load_backbone(filled_bb, "<filled backbone>")
    del backbone, filled_bb                 # ~1.7 GB: the detector holds its own copy
    det.model.eval()
    out["det"] = det
    return out


def test_manifest_head_keys_and_shapes(built):
    want = manifest(DET_ID)
    assert built["head_keys"] == {k: list(v) for k, v in want["keys"].items()}
    assert len(built["head_keys"]) == want["key_count"]
    assert get_spec(DET_ID).weights.container == want["container"]
    assert all(v.dtype == torch.float32 for v in built["det"].model.state_dict().values())


def test_manifest_backbone_keys_and_shapes(built):
    want = manifest(DET_ID)["backbone"]
    official = {k: list(v) for k, v in want["keys"].items()}
    # The module's backbone has visual.proj = None, so its state dict is the official one minus that key ...
    assert built["backbone_keys"] == {k: v for k, v in official.items() if k != PROJ_KEY}
    assert len(built["backbone_keys"]) == want["key_count_after_proj_none"]
    # ... while the layout that load_backbone checks files against is the full official one.
    assert built["layout"] == official
    assert len(built["layout"]) == want["key_count"]


def test_fill_checksums(built):
    want = golden(DET_ID)["weights"]["fill_checksum"]
    for part, got, exp in zip(("backbone", "head"), built["checksums"], want):
        assert got["n_keys"] == exp["n_keys"] and got["n_values"] == exp["n_values"], part
        assert math.isclose(got["sum"], exp["sum"], rel_tol=1e-9, abs_tol=1e-6), part
        assert math.isclose(got["abs_sum"], exp["abs_sum"], rel_tol=1e-9, abs_tol=1e-6), part


def _decoded_sha(img) -> str:
    return hashlib.sha256(np.asarray(img, dtype=np.uint8).tobytes()).hexdigest()


@pytest.mark.parametrize("name", _image_names())
def test_golden_image(built, name):
    det = built["det"]
    g = golden(DET_ID)
    exp = g["images"][name]
    tol = g["strict_tolerance"]
    img = golden_image(name)
    assert list(img.size) == exp["image_size_wh"]

    # 1-2. The input tensor from the detector's own preprocessing: exact shape, then statistics (strict).
    prep = det.prepare(img)
    assert list(prep.tensor.unsqueeze(0).shape) == exp["input"]["shape"]
    problems = compare_input(prep.tensor, exp["input"], tol["input_stats_abs"])
    if problems:
        decoded = json.loads((GOLDEN / "images" / "images.json").read_text())[exp["path"]]
        same = _decoded_sha(img) == decoded["decoded_rgb_uint8_sha256"]
        pytest.fail(f"{name}: input statistics differ from the golden (preprocessing problem): {problems}; "
                    f"decoded RGB array {'matches' if same else 'DIFFERS from'} images.json")
    assert prep.input_size == (224, 224) and prep.resized
    # The crop box (original pixels) is the centre crop of the reference's resized image, mapped back.
    rw, rh = exp["resized_wh"]
    w, h = img.size
    left, top = round((rw - 224) / 2), round((rh - 224) / 2)
    want_box = (left * w / rw, top * h / rh, (left + 224) * w / rw, (top + 224) * h / rh)
    assert all(abs(a - b) <= 1.0 for a, b in zip(prep.crop_box, want_box)), (prep.crop_box, want_box)

    # 3. One forward through the detector's public path; hooks record the feature before/after L2 norm.
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        det.model.visual.register_forward_hook(lambda m, i, o: seen.__setitem__("raw", o.detach().clone())),
        det.model.fc.register_forward_hook(lambda m, i, o: seen.__setitem__("feature", i[0].detach().clone())),
    ]
    try:
        result = det.predict(img)
    finally:
        for h in hooks:
            h.remove()
    d_logit = abs(result.logit - exp["logit"])
    assert d_logit <= tol["logit_abs"], (
        f"{name}: logit {result.logit:.9g} vs golden {exp['logit']:.9g} (|Δ| {d_logit:.3g} > {tol['logit_abs']:g}); "
        f"the input statistics MATCHED the golden within {tol['input_stats_abs']:g}, so the difference is in "
        "the network or its weights, not in preprocessing")

    # 4. Probability, decision and intermediates.
    assert abs(result.p_fake - exp["prob_fake"]) <= tol["prob_abs"]
    assert result.label == ("fake" if exp["pred"] == "fake" else "real")
    feature = seen["feature"][0].double().numpy()
    want_feature = np.asarray(exp["intermediate"]["feature_1024_l2normalised"], dtype=np.float64)
    assert feature.shape == want_feature.shape == (1024,)
    d_feat = float(np.max(np.abs(feature - want_feature)))
    assert d_feat <= tol["feature_1024_abs"], f"{name}: feature max |Δ| {d_feat:.3g}"
    raw_norm = float(seen["raw"][0].double().norm())
    assert abs(raw_norm - exp["intermediate"]["feature_unnormalised_norm"]) <= tol["feature_norm_abs"]
