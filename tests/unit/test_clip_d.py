"""CLIP-D behaviour: weight loading (head and open_clip backbone), batching, and what a result records.

Two models are used: the real ViT-L/14 detector with random weights (built once for the module: 428 M
parameters, three forwards in all), and a tiny open_clip config registered for these tests, which lets the whole
``create_detector(..., weights=..., backbone_weights=...)`` path run on real files in about a second.
"""
from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from tests.helpers import register_tiny_open_clip
from core.errors import WeightsCorrupt
from core.models.detectors.clip_linear import PROJ_KEY, ClipLinear, build_open_clip
from core.models.factory import create_detector
from core.models.registry import get_spec

ROOT = Path(__file__).resolve().parents[2]
TINY_ARCH = "test-tiny-clip-d-vit"           # an open_clip config registered only for these tests


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth generated RGB image with some texture (deterministic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (w + h) * 255], axis=-1)
    arr = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _expected_box(w: int, h: int, size: int = 224) -> tuple[float, float, float, float]:
    """Exact (float) region of the original image that Resize(shorter=size) + CenterCrop(size) keeps."""
    if w <= h:
        rw, rh = size, int(size * h / w)
    else:
        rw, rh = int(size * w / h), size
    left, top = round((rw - size) / 2), round((rh - size) / 2)
    sx, sy = w / rw, h / rh
    return left * sx, top * sy, (left + size) * sx, (top + size) * sy


# ----------------------------------------------------------------------------------------- the real ViT-L/14

@pytest.fixture(scope="module")
def vitl():
    """CLIP-D with random weights (never downloads); built once, freed after the module."""
    det = create_detector("CLIP-D", pretrained=False)
    yield det
    del det
    gc.collect()


def test_spec_matches_the_paper():
    spec = get_spec("CLIP-D")
    assert spec.variant == "original" and spec.arch == "clip_linear"
    p = spec.preprocess
    assert (p.mode, p.resize, p.interpolation, p.crop) == ("resize_crop", 224, "bicubic", 224)
    assert p.mean == (0.48145466, 0.4578275, 0.40821073) and p.std == (0.26862954, 0.26130258, 0.27577711)
    assert spec.threshold == 0.5 and spec.ensemble_weight == 0.30
    assert spec.weights.container == "model" and spec.weights.size == 5155
    assert spec.weights.sha256 == "1c9c9f48a47d975bde67e9924983aa4e4ccda96a15e7e983b6305f0c56d9ee18"
    assert spec.backbone.file == "open_clip_pytorch_model.bin" and spec.backbone.container == "raw"
    src = spec.backbone.sources[0]
    assert (src.type, src.repo_id, src.filename) == ("hf", "laion/CLIP-ViT-L-14-CommonPool.XL-s13B-b90K",
                                                     "open_clip_pytorch_model.bin")
    tf = get_spec("CLIP-D:truefake")
    assert tf.weights.container == "model"
    assert tf.weights.sources[0].member == "detectors/CLIP-D/checkpoint/pretrained/weights/best.pt"
    assert tf.preprocess == spec.preprocess and "bundle" in tf.card.notes


def test_model_holds_only_the_head(vitl):
    model = vitl.model
    assert isinstance(model, ClipLinear)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {"fc.weight": (1, 1024), "fc.bias": (1,)}
    assert model.visual.proj is None and model.num_features == 1024
    assert not model.training and not model.visual.training


def test_head_checkpoint_containers(vitl):
    w, b = torch.randn(1, 1024), torch.randn(1)
    for ckpt in ({"model": {"fc.weight": w, "fc.bias": b}, "epoch": torch.tensor(3)},
                 {"fc.weight": w, "fc.bias": b},
                 {"model": {"module.fc.weight": w, "module.fc.bias": b}}):
        vitl.model.fc.reset_parameters()
        vitl.load_checkpoint(ckpt, "head.pth")
        assert torch.equal(vitl.model.fc.weight, w) and torch.equal(vitl.model.fc.bias, b)
    with pytest.raises(WeightsCorrupt, match="shape"):
        vitl.load_checkpoint({"model": {"fc.weight": torch.zeros(1, 768), "fc.bias": b}}, "head.pth")
    with pytest.raises(WeightsCorrupt, match="unexpected"):
        vitl.load_checkpoint({"fc.weight": w, "fc.bias": b, "visual.conv1.weight": w}, "head.pth")


@pytest.mark.parametrize("break_it, message", [
    (lambda sd: sd.pop("visual.ln_post.weight"), "1 missing keys.*visual.ln_post.weight"),
    (lambda sd: sd.pop("token_embedding.weight"), "missing keys.*token_embedding.weight"),
    (lambda sd: sd.__setitem__("visual.head.weight", torch.zeros(1, 1024)), "unexpected keys.*visual.head.weight"),
    (lambda sd: sd.__setitem__("visual.conv1.weight", torch.zeros(768, 3, 16, 16)),
     r"shape mismatches.*visual.conv1.weight: file \(768, 3, 16, 16\) vs model \(1024, 3, 14, 14\)"),
    (lambda sd: sd.__setitem__(PROJ_KEY, torch.zeros(768, 512)), "shape mismatches.*visual.proj"),
    (lambda sd: sd.__setitem__("logit_scale", torch.tensor(3)), "non-floating-point"),
])
def test_load_backbone_refuses_a_wrong_state_dict(vitl, break_it, message):
    if not vitl.model.has_text_tower:                # the full layout is needed to build the variants
        pytest.skip("text tower already dropped by an earlier test")
    sd = dict(vitl.model.backbone_state_dict())      # references, not copies: nothing is allocated
    break_it(sd)
    before = vitl.model.visual.ln_post.weight.clone()
    with pytest.raises(WeightsCorrupt, match=message) as info:
        vitl.load_backbone(sd, "bad.bin")
    assert "CLIP-D" in str(info.value) and "bad.bin" in str(info.value)
    assert "laion/CLIP-ViT-L-14-CommonPool.XL-s13B-b90K" in str(info.value)   # says which file is expected
    assert torch.equal(vitl.model.visual.ln_post.weight, before)              # nothing was half-loaded
    assert vitl.model.has_text_tower


def test_load_backbone_refuses_other_models(vitl, tiny_arch):
    other = build_open_clip(tiny_arch).state_dict()                  # another real open_clip layout
    with pytest.raises(WeightsCorrupt, match="missing keys.*shape mismatches"):
        vitl.load_backbone(other, "other_clip.bin")
    with pytest.raises(WeightsCorrupt):
        vitl.load_backbone({"model": {"fc.weight": torch.zeros(1, 1024)}, "note": "x"}, "head_as_backbone.bin")
    with pytest.raises(WeightsCorrupt):
        vitl.load_backbone({"fc.weight": torch.zeros(1, 1024), "fc.bias": torch.zeros(1)}, "head.bin")


@pytest.fixture(scope="module")
def results(vitl):
    """predict on two images (one forward each) and predict_batch on both (one batched forward)."""
    images = [_image(640, 480, seed=1), _image(300, 500, seed=2)]
    single = [vitl.predict(im) for im in images]
    batch = vitl.predict_batch(images, batch_size=8)
    return images, single, batch


def test_predict_batch_equals_predict(results):
    _, single, batch = results
    assert len(batch) == len(single) == 2
    for s, b in zip(single, batch):
        assert abs(s.logit - b.logit) <= 1e-5, (s.logit, b.logit)
        assert abs(s.p_fake - b.p_fake) <= 1e-5
        assert s.image_size == b.image_size and s.crop_box == b.crop_box


def test_result_records_what_the_model_saw(results):
    images, single, _ = results
    for im, r in zip(images, single):
        assert r.detector_id == "CLIP-D" and r.variant == "original"
        assert r.image_size == im.size
        assert r.input_size == (224, 224)
        assert r.resized is True
        assert "bicubic" in r.preprocessing and "224" in r.preprocessing and "CLIP" in r.preprocessing
        assert np.isfinite(r.logit) and 0.0 <= r.p_fake <= 1.0
        assert r.label == ("fake" if r.p_fake > 0.5 else "real")
        assert r.elapsed_s > 0
        # The crop box is in ORIGINAL image pixels: the centre square of the shorter side.
        assert r.crop_box is not None
        want = _expected_box(*im.size)
        assert all(abs(g - e) <= 1.0 for g, e in zip(r.crop_box, want)), (r.crop_box, want)
        left, top, right, bottom = r.crop_box
        assert 0 <= left < right <= im.size[0] and 0 <= top < bottom <= im.size[1]
    assert single[0].crop_box[1] == 0 and single[0].crop_box[3] == 480      # landscape: full height kept
    assert single[1].crop_box[0] == 0 and single[1].crop_box[2] == 300      # portrait: full width kept


def test_load_backbone_accepts_the_official_layout_and_frees_the_text_tower(vitl):
    """An open_clip file holds visual.proj: accepted (and unused); the text tower is deleted afterwards."""
    sd = dict(vitl.model.backbone_state_dict())
    sd[PROJ_KEY] = torch.zeros(1024, 768)
    new_ln = torch.full((1024,), 0.5)
    sd["visual.ln_post.weight"] = new_ln
    vitl.load_backbone(sd, "open_clip_pytorch_model.bin")
    assert torch.equal(vitl.model.visual.ln_post.weight, new_ln)
    assert vitl.model.visual.proj is None
    assert not vitl.model.has_text_tower and vitl.model.backbone is None
    assert all(k.startswith("visual.") for k in vitl.model.backbone_state_dict())
    # Later loads are still checked against the FULL official layout (text keys included) ...
    sd["visual.ln_post.weight"] = torch.ones(1024)
    vitl.load_backbone(sd, "again.bin")
    assert torch.equal(vitl.model.visual.ln_post.weight, torch.ones(1024))
    # ... so a visual-only dict is refused.
    visual_only = {k: v for k, v in sd.items() if k.startswith("visual.")}
    with pytest.raises(WeightsCorrupt, match="missing keys"):
        vitl.load_backbone(visual_only, "visual_only.bin")


# ----------------------------------------------------------------------------------------- tiny open_clip

@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    return register_tiny_open_clip(tmp_path_factory.mktemp("open_clip_cfg"), TINY_ARCH)


def _register_tiny(folder: Path, monkeypatch, arch: str, **options) -> None:
    """Register a CLIP-D copy (id CLIPD_TINY) on the tiny open_clip config via DEEPFAKE_LENS_CONFIG_DIRS."""
    data = yaml.safe_load((ROOT / "configs" / "detectors" / "clip_d.yaml").read_text())
    data["id"] = "CLIPD_TINY"
    data["options"] = {**data["options"], "clip_arch": arch, **options}
    folder.mkdir()
    (folder / "clipd_tiny.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("DEEPFAKE_LENS_CONFIG_DIRS", str(folder))


def _reference_logit(clip_sd: dict, head: dict, x: torch.Tensor, arch: str) -> torch.Tensor:
    """Independent computation with plain open_clip: encode_image(normalize=True) with proj=None, then the head."""
    clip = build_open_clip(arch)
    clip.load_state_dict(clip_sd, strict=True)
    clip.visual.proj = None
    with torch.no_grad():
        feat = clip.encode_image(x, normalize=True)
        return F.linear(feat, head["fc.weight"], head["fc.bias"])[:, 0]


def test_create_detector_with_explicit_head_and_backbone_files(tiny_arch, tmp_path, monkeypatch):
    _register_tiny(tmp_path / "configs", monkeypatch, tiny_arch)
    torch.manual_seed(0)
    clip_sd = build_open_clip(TINY_ARCH).state_dict()                # includes visual.proj, like the real file
    assert PROJ_KEY in clip_sd
    clip_sd = {k: v.clone().normal_(0, 0.05) if v.dim() else v.clone() for k, v in clip_sd.items()}
    head = {"fc.weight": torch.randn(1, 64) * 3, "fc.bias": torch.tensor([0.25])}
    head_path, bb_path = tmp_path / "weights.pth", tmp_path / "open_clip_pytorch_model.bin"
    torch.save({"model": head}, head_path)
    torch.save(clip_sd, bb_path)

    det = create_detector("CLIPD_TINY", weights=head_path, backbone_weights=bb_path)
    assert det.weights_path == head_path and det.backbone_path == bb_path
    assert det.weights_sha256 and det.backbone_sha256 and det.weights_sha256 != det.backbone_sha256
    assert not det.model.has_text_tower                              # freed after loading (default)
    assert torch.equal(det.model.fc.weight, head["fc.weight"])
    assert torch.equal(det.model.visual.conv1.weight, clip_sd["visual.conv1.weight"])

    img = _image(320, 240, seed=3)
    r = det.predict(img)
    x = det.prepare(img).tensor.unsqueeze(0)
    ref = _reference_logit(clip_sd, head, x, TINY_ARCH)
    assert abs(r.logit - float(ref[0])) <= 1e-5
    assert r.weights_sha256 == det.weights_sha256
    assert r.input_size == (224, 224) and r.resized


def test_keep_text_tower_option_and_device_moves(tiny_arch, tmp_path, monkeypatch):
    _register_tiny(tmp_path / "configs", monkeypatch, tiny_arch, keep_text_tower=True)
    det = create_detector("CLIPD_TINY", pretrained=False)
    sd = det.model.backbone_state_dict()
    det.load_backbone(sd, "same.bin")
    assert det.model.has_text_tower
    # .to() reaches the backbone although it is outside state_dict() (upstream overrides .to() for this).
    det.model.double()
    assert det.model.fc.weight.dtype == torch.float64
    assert det.model.visual.conv1.weight.dtype == torch.float64
    assert det.model.backbone.token_embedding.weight.dtype == torch.float64
    det.model.float()
    det.model.train()
    assert det.model.fc.training and not det.model.visual.training   # the frozen backbone stays in eval mode
    det.model.eval()


def test_clip_linear_needs_the_projection_to_size_the_head(tiny_arch):
    clip = build_open_clip(tiny_arch)
    clip.visual.proj = None
    with pytest.raises(ValueError, match="visual.proj"):
        ClipLinear(clip)
