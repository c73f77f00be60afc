"""Speed paths that must not change a number: Grad-CAM from the target layer, the batched robustness probe, the
evaluation prefetch, CLIP's shapes-only text tower and P2G's prompted-text cache. Each is checked against the old
path it replaces (still reachable through a flag)."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from PIL import Image
from tests.helpers import TINY_YAML, hooks_left, make_tiny_checkpoint, png_bytes, register_tiny_open_clip
from torch import nn

from core.errors import BadImage, WeightsCorrupt
from core.evaluation import datasets as D
from core.evaluation import runner as E
from core.models.detectors.clip_linear import ClipLinear, build_open_clip
from core.models.detectors.vit_cam import token_gradcam
from core.models.explain import get_submodule_by_path, gradcam
from core.models.factory import create_detector
from core.verdict.robustness import CONDITIONS, run_probe

TINY_CLIP = "test-speed-b-tiny-clip"


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([xx / w * 255, yy / h * 255, (xx + yy) / (w + h) * 255], axis=-1)
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8), "RGB")


# ----------------------------------------------------------------------------------------- Grad-CAM

@pytest.mark.parametrize("det_id, size", [("NPR", (96, 80)), ("R50_TF", (128, 112))])
def test_gradcam_from_layer_equals_the_library_path(det_id, size):
    torch.manual_seed(0)
    det = create_detector(det_id, pretrained=False)
    for m in det.model.modules():                     # a head that is not all zeros, so the map is not flat
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.05)
    x = det.prepare(_image(*size)).tensor.unsqueeze(0).to(memory_format=det.memory_format)
    layer = get_submodule_by_path(det.model, det.spec.explain_layer)
    for p in det.model.parameters():
        p.requires_grad_(False)
    fast = gradcam(det.model, layer, x, forward=det.forward)
    old = gradcam(det.model, layer, x.clone().requires_grad_(True), forward=det.forward, from_layer=False)
    assert fast.shape == old.shape == (x.shape[2], x.shape[3])
    assert fast.max() > 0.5                                           # a real map, not all zeros
    assert np.abs(fast - old).max() <= 1e-5
    assert not hooks_left(det.model)
    exp = det.explain(_image(*size))                                  # the public path uses the fast one
    assert np.abs(exp.heatmap - old).max() <= 1e-5


class _InplaceAfter(nn.Module):
    """The target layer's output is modified in place by the next layer (the fast path must fall back)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.conv(x)).mean(dim=(2, 3)))


def test_gradcam_falls_back_when_a_later_layer_writes_in_place():
    torch.manual_seed(1)
    model = _InplaceAfter().eval()
    x = torch.randn(1, 3, 16, 16)
    fast = gradcam(model, model.conv, x)
    old = gradcam(model, model.conv, x.clone().requires_grad_(True), from_layer=False)
    assert np.abs(fast - old).max() <= 1e-6


class _TinyViT(nn.Module):
    """Tokens → blocks (a norm inside each) → CLS logit: enough to exercise token Grad-CAM."""

    def __init__(self, dim: int = 16, depth: int = 3) -> None:
        super().__init__()
        self.embed = nn.Linear(12, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.blocks = nn.ModuleList(nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True,
                                                               norm_first=True)
                                    for _ in range(depth))
        self.head = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.embed(x.unfold(2, 2, 2).unfold(3, 2, 2).permute(0, 2, 3, 1, 4, 5).reshape(x.shape[0], -1, 12))
        t = torch.cat([self.cls.expand(x.shape[0], -1, -1), t], dim=1)
        for blk in self.blocks:
            t = blk(t)
        return self.head(t[:, 0])


def test_token_gradcam_from_layer_equals_the_full_graph():
    torch.manual_seed(2)
    model = _TinyViT().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, 3, 8, 8)
    for layer in (model.blocks[1], model.blocks[2].norm1):
        fast = token_gradcam(model, layer, x, n_prefix=1)
        old = token_gradcam(model, layer, x, n_prefix=1, from_layer=False)
        assert fast.shape == (2, 16) and float(fast.max()) > 0
        assert torch.allclose(fast, old, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------------------- probe

def test_batched_probe_gives_the_one_by_one_scores():
    torch.manual_seed(3)
    dets = [create_detector("NPR", pretrained=False), create_detector("R50_TF", pretrained=False)]
    img = _image(120, 96, seed=4)
    calls: list[tuple[int, int, str]] = []
    batched = run_probe(img, dets, progress=lambda d, t, m: calls.append((d, t, m)))
    single = run_probe(img, dets, batch=False)
    assert [(r.detector, r.condition, r.label) for r in batched.rows] == \
           [(r.detector, r.condition, r.label) for r in single.rows]
    assert len(batched.rows) == 2 * len(CONDITIONS)
    for a, b in zip(batched.rows, single.rows):
        assert abs(a.logit - b.logit) <= 1e-4 * max(1.0, abs(b.logit)), (a, b)
        assert abs(a.p_fake - b.p_fake) <= 1e-5
    assert batched.summary == single.summary
    assert calls[0][:2] == (0, 2 * len(CONDITIONS)) and calls[-1] == (calls[-1][1], calls[-1][1], "done")


class _RefusesSmall:
    """predict_batch refuses the whole batch when one version is too small; predict says which."""

    spec = None
    detector_id = "SMALLNO"

    def __init__(self) -> None:
        self.batches = 0

    def predict(self, image: Image.Image):
        from core.results import DetectionResult
        if min(image.size) < 50:
            raise BadImage("<image>", "is too small for this detector")
        return DetectionResult(detector_id="SMALLNO", variant="original", logit=1.0, p_fake=0.73, label="fake",
                               threshold=0.5, elapsed_s=0.0, image_size=image.size, input_size=image.size,
                               crop_box=None, resized=False, preprocessing="", weights_sha256=None, details={})

    def predict_batch(self, images, batch_size=8):
        self.batches += 1
        return [self.predict(im) for im in images]


def test_batched_probe_falls_back_per_version_on_a_refusal():
    det = _RefusesSmall()
    probe = run_probe(_image(90, 80), [det])
    assert det.batches == 1
    by_cond = {r.condition: r for r in probe.rows}
    assert by_cond["resize0.5"].label == "error" and "too small" in by_cond["resize0.5"].error
    assert all(r.label == "fake" for k, r in by_cond.items() if k != "resize0.5")


# ----------------------------------------------------------------------------------------- evaluation prefetch

@pytest.fixture()
def tiny_pair(tiny_config, weights_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_CACHE", str(tmp_path / "cache"))
    (tiny_config / "tiny2.yaml").write_text(TINY_YAML.format(weight=0.3).replace("id: TINY", "id: TINY2"))
    return [create_detector("TINY", weights=make_tiny_checkpoint(tmp_path / "a.pt", seed=0)),
            create_detector("TINY2", weights=make_tiny_checkpoint(tmp_path / "b.pt", seed=5))]


def _uploads() -> dict[str, bytes]:
    files = {f"real/r{i}.png": png_bytes((40 + i, 32), seed=i) for i in range(7)}
    files.update({f"fake/f{i}.png": png_bytes((36, 30 + i), seed=50 + i) for i in range(6)})
    files["fake/broken.png"] = b"\x89PNG\r\n\x1a\n broken"
    return files


def test_prefetch_gives_the_same_run(tiny_pair):
    ds = D.from_uploads(_uploads())
    a = E.evaluate(ds, tiny_pair, batch_size=3, cache=False, prefetch=True, thumbnails=32)
    b = E.evaluate(ds, tiny_pair, batch_size=3, cache=False, prefetch=False, thumbnails=32)
    assert a.rows == b.rows
    for key in b.logit:
        np.testing.assert_array_equal(a.logit[key], b.logit[key])
    assert a.thumbnails == b.thumbnails and a.thumbnails and a.computed == b.computed
    assert any(r.status == "error" for r in a.rows)
    assert not [t for t in threading.enumerate() if t.name.startswith("eval-prefetch")]   # reader stopped


def test_prefetch_cancel_leaves_unscored_rows_unread(tiny_pair):
    ds = D.from_uploads(_uploads())
    steps: list[int] = []
    stop = threading.Event()

    def progress(done, total, eta):
        steps.append(done)
        if done >= 3:
            stop.set()

    run = E.evaluate(ds, tiny_pair, batch_size=3, cache=False, progress=progress, cancel=stop)
    assert run.cancelled and steps[-1] == 3
    cancelled = [r for r in run.rows if r.status == "cancelled"]
    assert len(cancelled) == len(run.rows) - 3
    assert all(r.sha256 == "" for r in cancelled)                     # the batch read ahead is discarded too


# ----------------------------------------------------------------------------------------- CLIP text tower

@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return register_tiny_open_clip(tmp_path_factory.mktemp("open_clip_cfg"), TINY_CLIP)


def test_shapes_only_text_tower_keeps_the_layout_check(tiny_clip):
    full = build_open_clip(tiny_clip)
    lean = build_open_clip(tiny_clip, text_tower=False)
    layout = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in lean.state_dict().items()} == layout
    assert all(v.is_meta for k, v in lean.state_dict().items() if not k.startswith("visual."))
    assert not any(v.is_meta for k, v in lean.state_dict().items() if k.startswith("visual."))
    model = ClipLinear(lean)
    model.to("cpu")                                   # a shapes-only tower is not moved (it has no values)
    assert model.has_text_tower and not model.text_tower_built
    template = model.backbone_state_dict()
    assert {k: tuple(v.shape) for k, v in template.items()} == {k: s for k, s in layout.items() if k != "visual.proj"}
    torch.manual_seed(4)
    sd = {k: torch.randn(v.shape) if v.dim() else v.clone() for k, v in full.state_dict().items()}
    model.load_backbone_state_dict(sd, path="ok.bin")
    assert torch.equal(model.visual.conv1.weight, sd["visual.conv1.weight"])
    bad = dict(sd)
    bad["token_embedding.weight"] = torch.zeros(10, 32)             # a text key of the wrong shape
    with pytest.raises(WeightsCorrupt, match="token_embedding.weight"):
        model.load_backbone_state_dict(bad, path="bad.bin")
    del bad["token_embedding.weight"]
    with pytest.raises(WeightsCorrupt, match="missing keys"):
        model.load_backbone_state_dict(bad, path="bad.bin")
    x = torch.randn(2, 3, 224, 224)
    ref = full
    ref.load_state_dict(sd)
    ref.visual.proj = None
    with torch.no_grad():
        assert torch.allclose(model.features(x), torch.nn.functional.normalize(ref.visual(x), dim=-1), atol=1e-6)


# ----------------------------------------------------------------------------------------- P2G text cache

def test_p2g_text_cache_gives_the_same_scores():
    torch.manual_seed(5)
    det = create_detector("P2G", pretrained=False)
    images = [_image(256, 240, seed=s) for s in range(3)]
    det.text_cache_size = 0
    plain = [det.predict(im) for im in images]
    assert not det._text_cache
    det.text_cache_size = 512
    cached = [det.predict(im) for im in images] + [det.predict(images[0])]
    assert det._text_cache                                            # filled, then reused
    for a, b in zip(plain + plain[:1], cached):
        assert abs(a.logit - b.logit) <= 1e-6
        assert a.details["prompts"] == b.details["prompts"]
    det.text_cache_size = 2                                           # bounded
    det.predict(images[1])
    assert len(det._text_cache) == 2
