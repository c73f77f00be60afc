"""Golden parity of FACE (MTCNN + InceptionResnetV1) against facenet-pytorch run by the reference app's code.

MTCNN keeps its real bundled weights; only the classifier is filled with fill_state_dict(seed=0). Every number is
checked at the golden's STRICT tolerances, in pipeline order: MTCNN box → 160 px crop → 256 px input → logit →
intermediates, so a failure says which stage drifted.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.models.factory import create_detector
from core.models.registry import get_spec
from tests.helpers.golden import (
    compare_input,
    fill_checksum,
    fill_state_dict,
    golden,
    golden_image,
    manifest,
    requires_golden,
)

pytestmark = requires_golden

DET_ID = "FACE"


def _strict() -> dict[str, float]:
    return golden(DET_ID)["strict_tolerance"]


def _image_names() -> list[str]:
    try:
        return sorted(golden(DET_ID)["images"])
    except OSError:                       # folder absent: the module is skipped by requires_golden anyway
        return []


@pytest.fixture(scope="module")
def detector():
    """FACE with the seed-0 filled classifier (built once: 23.5 M parameters)."""
    det = create_detector(DET_ID, pretrained=False)
    sd = fill_state_dict(det.model.state_dict(), seed=0)
    det.model.load_state_dict(sd, strict=True)
    det.model.eval()
    return det


def test_manifest_keys_and_shapes():
    det = create_detector(DET_ID, pretrained=False)
    ours = {k: list(v.shape) for k, v in det.model.state_dict().items()}
    want = manifest(DET_ID)
    assert ours == {k: list(v) for k, v in want["keys"].items()}
    assert len(ours) == want["key_count"]
    assert get_spec(DET_ID).weights.container == want["container"]
    non_f32 = {k: str(v.dtype).replace("torch.", "") for k, v in det.model.state_dict().items()
               if v.dtype != torch.float32}
    assert non_f32 == want["non_float32_keys"]


def test_fill_checksum(detector):
    got = fill_checksum(detector.model.state_dict())
    want = golden(DET_ID)["weights"]["fill_checksum"]
    assert got["n_keys"] == want["n_keys"] and got["n_values"] == want["n_values"]
    assert math.isclose(got["sum"], want["sum"], rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(got["abs_sum"], want["abs_sum"], rel_tol=1e-9, abs_tol=1e-6)


def _feature_stats(x: torch.Tensor) -> dict[str, object]:
    a = x.detach().double().reshape(-1).cpu().numpy()
    return {"dim": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "l2": float(np.linalg.norm(a)),
            "first16": a[:16].tolist()}


@pytest.mark.parametrize("name", _image_names())
def test_golden_image(detector, name):
    exp = golden(DET_ID)["images"][name]
    tol = _strict()
    img = golden_image(name)
    assert list(img.size) == exp["image_size_wh"]

    # 1. MTCNN (keep_all=True): the first face is the one the reference (keep_all=False) picked.
    faces = detector.prepare_faces(img)
    assert len(faces) == exp["mtcnn"]["n_faces"]
    first = faces[0]
    box_diff = float(np.max(np.abs(np.asarray(first.face.box) - np.asarray(exp["mtcnn"]["box_xyxy"]))))
    assert box_diff <= tol["mtcnn_box_abs"], f"MTCNN box differs by {box_diff:.3g}"
    assert abs(first.face.detection_prob - exp["mtcnn"]["prob"]) <= tol["mtcnn_box_abs"]
    assert list(first.face.crop_box) == exp["mtcnn"]["crop_box_int_xyxy"]

    # 2. The 160 px crop (values 0..255).
    crop_problems = compare_input(first.crop, exp["mtcnn"]["face160"], tol["face160_stats_abs"])
    assert not crop_problems, f"face160 crop differs: {crop_problems}"

    # 3. The network input, through the detector's own preprocessing.
    x = first.tensor.unsqueeze(0)
    assert list(x.shape) == exp["input"]["shape"], f"input shape {list(x.shape)} != {exp['input']['shape']}"
    input_problems = compare_input(x, exp["input"], tol["input_stats_abs"])
    assert not input_problems, f"input statistics differ (preprocessing bug): {input_problems}"

    # 4. The logit via the public predict (and the deciding face is that face).
    result = detector.predict(img)
    state = "input statistics MATCHED (so the network differs)" if not input_problems else \
        f"input statistics ALSO differ: {input_problems}"
    dlogit = abs(result.logit - exp["logit"])
    assert dlogit <= tol["logit_abs"], f"logit {result.logit} vs golden {exp['logit']} (|Δ|={dlogit:.3g}); {state}"
    assert abs(result.p_fake - exp["prob_fake"]) <= tol["prob_abs"], state
    assert result.label == exp["pred"]
    assert result.faces[0].logit == result.logit
    assert result.input_size == (256, 256) and result.crop_box == tuple(exp["mtcnn"]["crop_box_int_xyxy"])

    # 5. Intermediates: avgpool_1a output and the embedding after last_bn.
    captured: dict[str, torch.Tensor] = {}
    handles = [detector.model.avgpool_1a.register_forward_hook(lambda m, i, o: captured.__setitem__("pooled_1792", o)),
               detector.model.last_bn.register_forward_hook(lambda m, i, o: captured.__setitem__("last_bn_512", o))]
    try:
        with torch.inference_mode():
            detector.model(x)
    finally:
        for h in handles:
            h.remove()
    for key, want in exp["intermediate"].items():
        got = _feature_stats(captured[key])
        assert got["dim"] == want["dim"], key
        for field in ("mean", "std", "l2"):
            assert abs(got[field] - want[field]) <= tol["embedding_abs"], \
                f"{key}.{field}: {got[field]} vs {want[field]}; {state}"
        diff = float(np.max(np.abs(np.asarray(got["first16"]) - np.asarray(want["first16"]))))
        assert diff <= tol["embedding_abs"], f"{key}.first16 max |Δ| {diff:.3g}; {state}"
