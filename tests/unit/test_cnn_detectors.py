"""Behaviour of the CNN detectors (R50_TF, R50_nodown, NPR) and of the generic Grad-CAM, on small generated images.

Models get deterministic, well-scaled random weights (no checkpoint, no golden files needed); fidelity to the
upstream code is the job of test_golden_cnn.py.
"""
from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
import pytest
import torch
from tests.helpers import hooks_left
from PIL import Image

from core.errors import BadImage, WeightsCorrupt
from core.models.checkpoint import unwrap_state_dict
from core.models.detectors.base import Detector
from core.models.detectors.npr import NPRResNet, npr_residual
from core.models.detectors.resnet_nodown import (
    NoDownResNet50,
    PrototypeScore,
    TrueFakeR50,
)
from core.models.explain import CAVEAT, Explanation, heatmap_to_image
from core.models.factory import create_detector
from core.models.registry import get_spec, list_specs

CNN = ("R50_TF", "R50_nodown", "NPR")


def _seeded_weights(model: torch.nn.Module, seed: int = 0) -> None:
    """Deterministic He-style weights with realistic BatchNorm statistics (logits of order 1)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, v in model.state_dict().items():
        leaf = k.rsplit(".", 1)[-1]
        if not v.is_floating_point():
            sd[k] = v
        elif leaf == "running_var":
            sd[k] = 1 + 0.1 * torch.rand(v.shape, generator=g)
        elif leaf == "running_mean":
            sd[k] = 0.05 * torch.randn(v.shape, generator=g)
        elif v.dim() == 1 and "weight" in leaf:
            sd[k] = 1 + 0.05 * torch.randn(v.shape, generator=g)
        elif v.dim() <= 1:
            sd[k] = 0.05 * torch.randn(v.shape, generator=g)
        else:
            sd[k] = torch.randn(v.shape, generator=g) / math.sqrt(v[0].numel())
    if "backbone.fc.0.weight" in sd:
        sd["backbone.fc.0.weight"] *= 0.1   # keep R50_TF's squared-distance logit near 1 (not ~40)
    model.load_state_dict(sd)


@pytest.fixture(scope="module")
def dets() -> dict[str, Detector]:
    """The three default variants, built once with seeded weights."""
    out = {}
    for det_id in CNN:
        det = create_detector(det_id, pretrained=False)
        _seeded_weights(det.model)
        out[det_id] = det
    return out


def _noise(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB").convert(mode)




# --------------------------------------------------------------------------------------------- configs

def test_configs_declare_the_documented_facts():
    tf, nd, npr = get_spec("R50_TF"), get_spec("R50_nodown"), get_spec("NPR")
    assert (tf.arch, tf.variant, tf.weights.container, tf.explain_layer) == (
        "resnet50_truefake_proto", "original", "raw", "backbone.layer4")
    assert tf.weights.sources[0].type == "gdrive" and tf.weights.sources[0].id == "1m0b8HZuOCcF_-l2-GJBi3C22RuG5UDvU"
    assert (nd.arch, nd.weights.container, nd.explain_layer) == ("resnet50_nodown", "model", "layer4")
    assert nd.weights.sha256 == "0168451e84a2a35d0b141ad4f2e361a74efdd06eb8d11434087f8a0bb6e3abad"
    assert nd.weights.size == 282_549_121
    assert nd.weights.sources[0].url.endswith("/weights/Corvi2023/weights.pth")
    assert (npr.arch, npr.weights.container, npr.explain_layer) == ("npr_resnet50", "raw", "layer2")
    assert npr.weights.git_blob_sha1 == "2430d34a6d6a1143d46d4276a05536770b1a2a97" and npr.weights.sha256 is None
    assert npr.weights.sources[0].url == "https://github.com/chuangchuangtan/NPR-DeepfakeDetection/raw/main/NPR.pth"
    assert [tf.ensemble_weight, nd.ensemble_weight, npr.ensemble_weight] == [0.25, 0.20, 0.10]
    for s in (tf, nd, npr):
        assert s.default and s.threshold == 0.5 and s.preprocess.mode == "full" and s.preprocess.resize is None
        assert s.preprocess.large_crop == 1024
        assert s.preprocess.mean == (0.485, 0.456, 0.406) and s.preprocess.std == (0.229, 0.224, 0.225)
    assert npr.preprocess.even_crop and not tf.preprocess.even_crop and not nd.preprocess.even_crop
    r256 = get_spec("NPR", "original_resize256")
    assert r256.preprocess.resize == (256, 256) and r256.preprocess.interpolation == "bilinear"
    assert r256.weights.file == npr.weights.file and r256.weights.sources == npr.weights.sources
    assert not r256.default


@pytest.mark.parametrize("det_id", CNN)
def test_truefake_variants_come_from_the_bundle(det_id):
    variants = {s.variant: s for s in list_specs(det_id)}
    assert "truefake" in variants
    tf = variants["truefake"]
    assert [s.member for s in tf.weights.sources if s.type == "bundle"] == [
        f"detectors/{det_id}/checkpoint/pretrained/weights/best.pt", f"models/{det_id}/weights/best.pt"]
    assert "bundle" in tf.card.notes and not tf.default
    assert tf.arch == get_spec(det_id).arch and tf.explain_layer == get_spec(det_id).explain_layer


# --------------------------------------------------------------------------------------------- architecture

def test_strides_of_the_three_stems():
    tf, nd, npr = TrueFakeR50(), NoDownResNet50(), NPRResNet()
    assert tf.backbone.conv1.stride == (1, 1) and tf.backbone.conv1.kernel_size == (7, 7)
    assert tf.backbone.conv1.bias is None and tf.backbone.maxpool.stride == 2
    assert nd.conv1.stride == (1, 1) and nd.maxpool.stride == 1 and nd.fc.out_features == 1
    assert npr.conv1.stride == (2, 2) and npr.conv1.kernel_size == (3, 3) and npr.fc1.in_features == 512
    assert not hasattr(npr, "layer3") and not hasattr(npr, "layer4")


def test_prototype_score_formula_with_two_centres():
    layer = PrototypeScore(dim=4, num_centers=2)
    with torch.no_grad():
        layer.centers.copy_(torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]))
        layer.logsigmas.copy_(torch.tensor([0.3, -0.5]))          # relu: the second centre has width 0
    f = torch.tensor([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    out = layer(f)
    expected = []
    for row in f.tolist():
        total = 0.0
        for c, ls in ((layer.centers[0].tolist(), 0.3), (layer.centers[1].tolist(), 0.0)):
            d = [a - b for a, b in zip(row, c)]
            sign = math.copysign(1.0, sum(d)) if sum(d) else 0.0
            total += sign * sum(x * x for x in d) / (2 * math.exp(2 * ls)) + 4 * ls
        expected.append(total)
    assert out.shape == (2, 1)
    assert out[:, 0].tolist() == pytest.approx(expected, abs=1e-6)


def test_npr_residual_is_the_nearest_2x2_difference():
    x = torch.randn(2, 3, 6, 10, generator=torch.Generator().manual_seed(0))
    up = x[..., ::2, ::2].repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    assert torch.equal(npr_residual(x), x - up)


# --------------------------------------------------------------------------------------------- inputs

@pytest.mark.parametrize("det_id", CNN)
def test_odd_sizes(dets, det_id):
    det = dets[det_id]
    r = det.predict(_noise(63, 45))
    assert math.isfinite(r.logit) and 0.0 <= r.p_fake <= 1.0 and r.label in ("real", "fake")
    assert r.image_size == (63, 45)
    if det_id == "NPR":       # last row and column dropped
        assert r.input_size == (62, 44) and r.crop_box == (0, 0, 62, 44)
    else:
        assert r.input_size == (63, 45) and r.crop_box is None
    assert not r.resized


@pytest.mark.parametrize("size", [(1, 64), (64, 1)], ids=["1xN", "Nx1"])
@pytest.mark.parametrize("det_id", CNN)
def test_one_pixel_strips(dets, det_id, size):
    det = dets[det_id]
    img = _noise(*size)
    if det_id == "NPR":
        with pytest.raises(BadImage) as err:
            det.predict(img)
        msg = str(err.value)
        assert "NPR" in msg and "too small" in msg and "2×2" in msg, msg
    else:
        r = det.predict(img)
        assert math.isfinite(r.logit) and r.input_size == size


def test_npr_accepts_the_smallest_even_image(dets):
    r = dets["NPR"].predict(_noise(2, 3))
    assert r.input_size == (2, 2) and math.isfinite(r.logit)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
@pytest.mark.parametrize("det_id", CNN)
def test_grey_rgba_palette_inputs_are_converted(dets, det_id, mode):
    det = dets[det_id]
    img = _noise(40, 32, seed=3, mode=mode)
    got = det.predict(img)
    want = det.predict(img.convert("RGB"))
    assert got.logit == want.logit and got.input_size == (40, 32)


@pytest.mark.parametrize("det_id", CNN)
def test_large_images_are_centre_cropped_to_1024_only_when_both_sides_exceed(dets, det_id):
    det = dets[det_id]
    big = det.prepare(Image.new("RGB", (1500, 1200), (90, 120, 150)))
    assert big.input_size == (1024, 1024) and tuple(big.tensor.shape) == (3, 1024, 1024)
    assert big.crop_box == (238, 88, 1262, 1112) and big.image_size == (1500, 1200) and not big.resized
    wide = det.prepare(Image.new("RGB", (1500, 800)))
    assert wide.input_size == (1500, 800) and wide.crop_box is None


def test_large_crop_is_recorded_in_the_result(dets):
    """The cheapest detector runs the 1024×1024 crop end to end; the result says what the model saw."""
    r = dets["NPR"].predict(_noise(1500, 1200, seed=1))
    assert r.input_size == (1024, 1024) and r.crop_box == (238, 88, 1262, 1112) and r.image_size == (1500, 1200)
    assert "1024" in r.preprocessing


def test_npr_resize256_variant_resizes_everything():
    det = create_detector("NPR", variant="original_resize256", pretrained=False)
    for size in [(63, 45), (1500, 1200), (1, 64)]:
        prep = det.prepare(_noise(*size))
        assert prep.input_size == (256, 256) and prep.resized and prep.crop_box is None


@pytest.mark.parametrize("det_id", CNN)
def test_predict_batch_equals_predict_on_mixed_sizes(dets, det_id):
    det = dets[det_id]
    images = [_noise(48, 40, 0), _noise(33, 57, 1), _noise(48, 40, 2), _noise(48, 40, 3, "L"), _noise(31, 21, 4)]
    single = [det.predict(im) for im in images]
    batch = det.predict_batch(images, batch_size=2)
    assert len(batch) == len(images)
    for s, b in zip(single, batch):
        assert abs(s.logit - b.logit) <= 1e-5, (s.logit, b.logit)
        assert (s.input_size, s.crop_box, s.image_size) == (b.input_size, b.crop_box, b.image_size)
    assert len({round(s.logit, 4) for s in single}) > 1      # different images really got different scores


# --------------------------------------------------------------------------------------------- checkpoints

def test_nodown_checkpoint_containers(dets):
    det = create_detector("R50_nodown", pretrained=False)
    sd = dets["R50_nodown"].model.state_dict()
    det.load_checkpoint({"model": sd, "optimizer": {}, "total_steps": 7}, "w.pth")
    assert all(torch.equal(v, sd[k]) for k, v in det.model.state_dict().items())
    # DataParallel-saved files carry a module. prefix; the loader strips it
    assert set(unwrap_state_dict({"model": {f"module.{k}": v for k, v in sd.items()}}, "model")) == set(sd)


def test_wrong_architecture_is_a_clear_error(dets):
    det = create_detector("NPR", pretrained=False)
    with pytest.raises(WeightsCorrupt) as err:
        det.load_checkpoint(dets["R50_nodown"].model.state_dict(), "NPR.pth")
    assert "NPR" in str(err.value) and "does not fit" in str(err.value)


# --------------------------------------------------------------------------------------------- Grad-CAM

@pytest.mark.parametrize("det_id", CNN)
def test_gradcam_shape_range_and_no_side_effects(dets, det_id):
    det = dets[det_id]
    model = det.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    img = _noise(45, 37, seed=5)                       # odd on purpose: NPR drops a row and a column
    logit_before = det.predict(img).logit
    exp = det.explain(img)
    assert isinstance(exp, Explanation)
    assert exp.heatmap.shape == (37, 45) and exp.heatmap.dtype == np.float32
    assert np.isfinite(exp.heatmap).all() and exp.heatmap.min() >= 0.0 and exp.heatmap.max() <= 1.0
    assert exp.target_layer == get_spec(det_id).explain_layer and exp.caveat == CAVEAT
    assert exp.image_size == (45, 37)
    layer = model.get_submodule(exp.target_layer)
    assert not layer._forward_hooks and not layer._backward_hooks
    assert hooks_left(model) == []
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    if det_id == "NPR":
        assert exp.input_size == (44, 36) and exp.crop_box == (0, 0, 44, 36)
        assert not exp.heatmap[36, :].any() and not exp.heatmap[:, 44].any()
    assert det.predict(img).logit == logit_before     # the shared model still scores exactly as before


def test_gradcam_is_mapped_back_through_a_centre_crop(dets):
    base = dets["NPR"]
    spec = dataclasses.replace(base.spec, preprocess=dataclasses.replace(base.spec.preprocess, large_crop=32))
    det = Detector(spec, base.model)                   # same (shared) model, a 32×32 centre-crop policy
    exp = det.explain(_noise(64, 48, seed=2))
    assert exp.crop_box == (16, 8, 48, 40) and exp.heatmap.shape == (48, 64)
    inside = exp.heatmap[8:40, 16:48]
    outside = exp.heatmap.copy()
    outside[8:40, 16:48] = 0
    assert not outside.any() and inside.max() > 0


def test_gradcam_through_a_resize_covers_the_whole_image():
    det = create_detector("NPR", variant="original_resize256", pretrained=False)
    _seeded_weights(det.model)
    exp = det.explain(_noise(70, 50, seed=4))
    assert exp.heatmap.shape == (50, 70) and exp.input_size == (256, 256) and exp.crop_box is None
    assert 0.0 <= exp.heatmap.min() and exp.heatmap.max() <= 1.0


def test_gradcam_inside_inference_mode_and_from_two_threads(dets):
    det = dets["NPR"]
    img = _noise(40, 30, seed=6)
    ref = det.explain(img).heatmap
    with torch.inference_mode():
        assert np.array_equal(det.explain(img).heatmap, ref)
    out: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            out.append(det.explain(img).heatmap)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(out) == 2 and all(np.array_equal(h, ref) for h in out)
    assert hooks_left(det.model) == []


def test_heatmap_to_image_places_and_resizes():
    heat = np.ones((2, 2), dtype=np.float32)
    out = heatmap_to_image(heat, (6, 4), (1, 1, 5, 3))
    assert out.shape == (4, 6) and out[1:3, 1:5].min() == 1.0 and out.sum() == 8.0
    whole = heatmap_to_image(np.array([[0.0, 2.0]], dtype=np.float32), (4, 3), None)
    assert whole.shape == (3, 4) and whole.max() <= 1.0 and whole.min() >= 0.0


def test_explain_without_a_target_layer_says_so(dets):
    base = dets["NPR"]
    det = Detector(dataclasses.replace(base.spec, explain_layer=None), base.model)
    assert not det.explainable
    with pytest.raises(NotImplementedError, match="target layer"):
        det.explain(_noise(8, 8))


def test_bf16_fast_path_is_opt_in_and_labelled():
    import numpy as _np
    from PIL import Image as _Image

    from core.models.factory import create_detector as _create
    det = _create("NPR", pretrained=False)
    img = _Image.fromarray(_np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=_np.uint8))
    ref = det.predict(img)
    assert det.precision == "fp32" and "precision" not in ref.details
    det.set_precision("bf16")
    fast = det.predict(img)
    assert fast.details["precision"] == "bf16" and abs(fast.logit - ref.logit) < 0.5
    det.set_precision("fp32")
    assert det.predict(img).logit == ref.logit
    with pytest.raises(ValueError):
        det.set_precision("fp8")
