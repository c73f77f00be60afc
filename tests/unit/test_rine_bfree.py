"""RINE and B-Free: the parts that small models can check (the full-size parity is in tests/golden).

Small open_clip vision towers and small DINOv2-style ViTs stand in for ViT-L/14 and ViT-B/14; every comparison is
against an independently written reference (an upstream-style tiling, explicit per-block CLS collection, a
hand-built transformers-named state dict).
"""
from __future__ import annotations

import hashlib
import io
import math
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import BadImage, ConfigError, WeightsCorrupt
from core.models import weights as W
from core.models.detectors.bfree import BFreeNet, build_bfree, crop_plan
from core.models.detectors.openai_clip import load_visual_strict, openai_state_dict
from core.models.detectors.rine import RineDetector, RineHead, RineNet
from core.models.preprocess import build_transform
from core.models.registry import get_spec, list_specs
from core.models.specs import CLIP_MEAN, CLIP_STD, DetectorSpec, PreprocessCfg, WeightsSpec, parse_spec
from core.models.weights.store import check_digest
from tests.helpers import hooks_left, make_tiny_checkpoint
from tests.helpers.golden import SHARED, manifest, requires_golden
from tests.helpers.http_server import Route, serve


def _image(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


# --------------------------------------------------------------------------------------------- B-Free crop rule

@pytest.mark.parametrize("gh, gw, tiled, origins", [
    (18, 18, True, [(0, 0)] * 5),                    # a_256: both sides tiled
    (34, 45, True, [(0, 0)] * 5),                    # c_640x480: one side short → tiled, other side cut to 36
    (36, 36, False, [(0, 0)] * 5),                   # exactly one crop: five identical placements, no tiling
    (36, 50, False, [(0, 7), (0, 0), (0, 0), (0, 14), (0, 14)]),      # three distinct crops
    (50, 71, False, [(7, 17), (0, 0), (14, 0), (14, 35), (0, 35)]),   # e_1000x700
    (73, 73, False, [(18, 18), (0, 0), (37, 0), (37, 37), (0, 37)]),  # 1024² after the large crop
])
def test_crop_plan(gh, gw, tiled, origins):
    plan = crop_plan(gh, gw)
    assert plan.tiled is tiled and list(plan.origins) == origins
    distinct = list(dict.fromkeys(origins))
    assert len(plan.rows) == len(distinct) and [distinct[m] for m in plan.members] == origins
    assert all(len(r) == 36 for r in plan.rows) and all(len(c) == 36 for c in plan.cols)
    assert all(max(r) < gh for r in plan.rows) and all(max(c) < gw for c in plan.cols)


def test_crop_plan_refuses_an_empty_grid():
    with pytest.raises(ValueError):
        crop_plan(0, 40)


def _upstream_style_logits(net: BFreeNet, x: torch.Tensor) -> torch.Tensor:
    """Independent reference: repeat the grid ceil(36/g) times, keep the top-left 36×36, take five crops."""
    grid = net.patch_embed.proj(x)
    gh, gw = grid.shape[2:]
    if gh < 36 or gw < 36:
        grid = grid.repeat(1, 1, max(1, math.ceil(36 / gh)), max(1, math.ceil(36 / gw)))[:, :, :36, :36]
        gh = gw = 36
    tops = [(gh - 36) // 2, 0, gh - 36, gh - 36, 0]
    lefts = [(gw - 36) // 2, 0, 0, gw - 36, gw - 36]
    crops = torch.cat([grid[:, :, t:t + 36, s:s + 36] for t, s in zip(tops, lefts)])
    return net.head(net.encode(crops.flatten(2).transpose(1, 2)))[:, 0]


@pytest.mark.parametrize("wh", [(100, 90), (600, 300), (760, 540), (504, 504), (510, 720)])
def test_bfree_crops_match_upstream_tiling(wh):
    torch.manual_seed(0)
    net = BFreeNet(dim=24, depth=2, heads=2).eval()
    with torch.no_grad():
        net.pos_embed.normal_()                      # make position (hence the crop place) matter
        x = torch.randn(1, 3, wh[1], wh[0])
        ours, _ = net.crop_logits(x)
        want = _upstream_style_logits(net, x)
    assert torch.allclose(ours[0], want, atol=1e-5), (ours, want)
    assert torch.allclose(net(x), want.mean(), atol=1e-5)


def test_bfree_keys_equal_the_manifest():
    sd = BFreeNet().state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == {k: list(v) for k, v in manifest("BFREE")["keys"].items()}
    assert sum(v.numel() for v in sd.values()) == manifest("BFREE")["param_count"]


def _small_bfree(**pre):
    spec = DetectorSpec(id="B-Free", variant="t", arch="bfree", weights=WeightsSpec(file="m.pth", container="model"),
                        preprocess=PreprocessCfg(mode="full", **pre), options={"dim": 24, "depth": 2, "heads": 2},
                        explain_layer="blocks.-1.norm1")
    torch.manual_seed(0)
    return build_bfree(spec)


def test_bfree_details_and_tiny_images():
    det = _small_bfree(large_crop=1024)
    r = det.predict(_image(1100, 1500))
    assert r.input_size == (1024, 1024) and r.crop_box == (38, 238, 1062, 1262)
    d = r.details
    assert d["patch_grid"] == [73, 73] and not d["tiled"] and len(d["crop_logits"]) == 5
    assert math.isclose(r.logit, float(np.mean(d["crop_logits"])), abs_tol=1e-6)
    assert d["crop_boxes"][0] == [38 + 18 * 14, 238 + 18 * 14, 38 + 18 * 14 + 504, 238 + 18 * 14 + 504]
    small = det.predict(_image(100, 60)).details
    assert small["tiled"] and small["crop_boxes"][0] == [0, 0, 98, 56] and len(set(small["crop_logits"])) == 1
    with pytest.raises(BadImage):
        det.predict(_image(13, 40))


def test_bfree_gradcam_covers_the_seen_pixels_only_and_leaves_the_model_clean():
    det = _small_bfree()
    flags = [p.requires_grad for p in det.model.parameters()]
    img = _image(530, 300)                           # grid 21×37: tiled; 530 = 37·14 + 12 unseen columns
    exp = det.explain(img)
    assert exp.heatmap.shape == (300, 530) and exp.method.startswith("Grad-CAM")
    assert 0.0 <= exp.heatmap.min() and exp.heatmap.max() <= 1.0 and exp.heatmap.max() > 0
    assert not exp.heatmap[:, 36 * 14 + 7:].any()    # beyond the tiled crop's 36 columns (+ bilinear spill)
    assert not exp.heatmap[21 * 14:].any()           # the 6 rows past the last whole patch
    assert hooks_left(det.model) == [] and [p.requires_grad for p in det.model.parameters()] == flags


# --------------------------------------------------------------------------------------------- RINE

def _small_visual():
    from open_clip.transformer import QuickGELU, VisionTransformer
    torch.manual_seed(0)
    return VisionTransformer(image_size=28, patch_size=14, width=32, layers=3, heads=2, mlp_ratio=4.0,
                             output_dim=16, act_layer=QuickGELU).eval()


def _small_rine(mode: str = "center_crop", crop: int = 28) -> RineDetector:
    visual = _small_visual()
    spec = DetectorSpec(id="RINE", variant="t", arch="rine", weights=WeightsSpec(file="h.pth"),
                        preprocess=PreprocessCfg(mode=mode, crop=crop, mean=CLIP_MEAN, std=CLIP_STD),
                        explain_layer="visual.transformer.resblocks.1")
    layout = {f"visual.{k}": tuple(v.shape) for k, v in visual.state_dict().items()}
    return RineDetector(spec, RineNet(visual, RineHead(nproj=2, proj_dim=8, width=32, blocks=3)), layout)


def test_rine_block_tokens_are_the_ln2_cls_tokens():
    det = _small_rine()
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        got = det.model.block_tokens(x)
        v = det.model.visual                         # explicit pass through the blocks, no hooks
        h = v.conv1(x).flatten(2).transpose(1, 2)
        h = torch.cat([v.class_embedding.expand(2, 1, -1), h], dim=1) + v.positional_embedding
        h = v.ln_pre(h)
        want = []
        for blk in v.transformer.resblocks:
            h = h + blk.attn(blk.ln_1(h), blk.ln_1(h), blk.ln_1(h), need_weights=False)[0]
            want.append(blk.ln_2(h)[:, 0])
            h = h + blk.mlp(blk.ln_2(h))
    assert got.shape == (2, 3, 32)
    assert torch.allclose(got, torch.stack(want, dim=1), atol=1e-5)
    assert hooks_left(det.model) == []


def test_rine_head_is_the_upstream_computation():
    head = RineHead(nproj=2, proj_dim=8, width=32, blocks=3).eval()
    g = torch.randn(4, 3, 32)
    lin = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    relu = torch.relu
    with torch.no_grad():
        p1 = relu(lin[1](relu(lin[0](g))))
        z = (torch.softmax(head.alpha, dim=1) * p1).sum(1)
        z = relu(lin[3](relu(lin[2](z))))
        want = lin[6](relu(lin[5](relu(lin[4](z)))))
        logit, feat = head(g)
    assert torch.allclose(logit, want, atol=1e-6) and torch.allclose(feat, z, atol=1e-6)
    assert math.isclose(float(head.block_weights().sum()), 1.0, abs_tol=1e-6)


@pytest.mark.parametrize("variant, nproj, proj_dim", [("2class", 4, 128), ("4class", 2, 1024)])
def test_rine_head_keys_equal_the_manifest(variant, nproj, proj_dim):
    spec = get_spec(f"RINE:{variant}")
    assert (spec.options["nproj"], spec.options["proj_dim"]) == (nproj, proj_dim)
    sd = RineHead(nproj, proj_dim).state_dict()
    assert {k: list(v.shape) for k, v in sd.items()} == manifest(f"RINE_{variant}")["keys"]


def test_rine_ten_crop_averages_ten_logits_and_refuses_small_images():
    det = _small_rine("ten_crop")
    r = det.predict(_image(40, 36))
    crops = r.details["crop_logits"]
    assert len(crops) == 10 and math.isclose(r.logit, float(np.mean(crops)), abs_tol=1e-6)
    assert r.input_size == (28, 28) and r.crop_box is None
    with pytest.raises(BadImage):
        det.predict(_image(27, 60))
    batch = det.predict_batch([_image(40, 36), _image(50, 30, seed=1), _image(40, 36)])
    assert [b.logit for b in batch][0] == pytest.approx(r.logit, abs=1e-6) and batch[2].logit == batch[0].logit
    with torch.inference_mode():                    # forward() takes what batch() builds: [N, 10, 3, H, W]
        logits = det.forward(det.batch([det.prepare(_image(40, 36))]))
    assert tuple(logits.shape) == (1,) and float(logits[0]) == pytest.approx(r.logit, abs=1e-5)


def test_rine_gradcam_maps_only_the_image_part_of_a_padded_crop():
    det = _small_rine()
    exp = det.explain(_image(20, 40))               # width 20 < 28: 4 px of zero padding each side
    assert exp.heatmap.shape == (40, 20) and exp.crop_box == (0, 6, 20, 34)
    assert exp.heatmap[6:34].max() > 0 and not exp.heatmap[:6].any() and not exp.heatmap[34:].any()
    assert hooks_left(det.model) == []


# --------------------------------------------------------------------------------------------- preprocessing

def test_center_crop_pads_like_torchvision_and_reports_the_box():
    t = build_transform(PreprocessCfg(mode="center_crop", crop=224, mean=CLIP_MEAN, std=CLIP_STD))
    p = t(Image.new("RGB", (301, 217), (255, 255, 255)))
    assert tuple(p.tensor.shape) == (3, 224, 224) and p.crop_box == (38, 0, 262, 217) and not p.resized
    pad = torch.tensor([-m / s for m, s in zip(CLIP_MEAN, CLIP_STD)])
    assert torch.allclose(p.tensor[:, :3, 0], pad[:, None].expand(3, 3))          # (224-217)//2 = 3 rows before
    assert torch.allclose(p.tensor[:, 220:, 0], pad[:, None].expand(3, 4))        # the other 4 after
    assert not torch.allclose(p.tensor[:, 3, 0], pad)


@pytest.mark.parametrize("doc, why", [
    ({"mode": "center_crop"}, "needs 'crop'"),
    ({"mode": "ten_crop", "crop": 224, "resize": 256}, "no 'resize'"),
])
def test_native_crop_modes_are_validated(doc, why):
    with pytest.raises(ConfigError, match=why):
        parse_spec({"id": "X", "variant": "v", "arch": "rine", "preprocess": doc, "weights": {"file": "w.pth"}})


# --------------------------------------------------------------------------------------------- backbone files

def _hf_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hand-built transformers CLIPModel names for an OpenAI-named dict (1 vision and 1 text block)."""
    out = {"logit_scale": sd["logit_scale"], "visual_projection.weight": sd["visual.proj"].t(),
           "text_projection.weight": sd["text_projection"].t(),
           "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
           "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
           "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
           "vision_model.embeddings.position_ids": torch.arange(5)[None],
           "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": sd["positional_embedding"]}
    for ours, theirs in (("visual.ln_pre", "vision_model.pre_layrnorm"), ("visual.ln_post", "vision_model.post_layernorm"),
                         ("ln_final", "text_model.final_layer_norm")):
        out.update({f"{theirs}.{p}": sd[f"{ours}.{p}"] for p in ("weight", "bias")})
    for ours, theirs in (("visual.transformer.resblocks.0", "vision_model.encoder.layers.0"),
                         ("transformer.resblocks.0", "text_model.encoder.layers.0")):
        for p in ("weight", "bias"):
            q, k, v = sd[f"{ours}.attn.in_proj_{p}"].chunk(3)
            out.update({f"{theirs}.self_attn.q_proj.{p}": q, f"{theirs}.self_attn.k_proj.{p}": k,
                        f"{theirs}.self_attn.v_proj.{p}": v,
                        f"{theirs}.self_attn.out_proj.{p}": sd[f"{ours}.attn.out_proj.{p}"],
                        f"{theirs}.layer_norm1.{p}": sd[f"{ours}.ln_1.{p}"],
                        f"{theirs}.layer_norm2.{p}": sd[f"{ours}.ln_2.{p}"],
                        f"{theirs}.mlp.fc1.{p}": sd[f"{ours}.mlp.c_fc.{p}"],
                        f"{theirs}.mlp.fc2.{p}": sd[f"{ours}.mlp.c_proj.{p}"]})
    return out


def _small_openai_clip():
    import open_clip
    cfg = {"embed_dim": 16, "quick_gelu": True,
           "vision_cfg": {"image_size": 28, "layers": 1, "width": 32, "patch_size": 14, "head_width": 16},
           "text_cfg": {"context_length": 7, "vocab_size": 50, "width": 16, "heads": 2, "layers": 1}}
    torch.manual_seed(0)
    return open_clip.model.CLIP(**cfg).eval()


def test_transformers_and_jit_style_backbones_normalise_to_openai_names():
    clip = _small_openai_clip()
    sd = clip.state_dict()
    hf = _hf_names(sd)
    got = openai_state_dict(hf, "RINE")
    assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd)
    jit_style = {**sd, "input_resolution": torch.tensor(28), "context_length": torch.tensor(7),
                 "vocab_size": torch.tensor(50), "logit_scale": sd["logit_scale"].reshape(1)}
    assert set(openai_state_dict({"state_dict": jit_style}, "RINE")) == set(sd)


def test_backbone_load_is_strict_and_says_what_is_wrong():
    clip = _small_openai_clip()
    layout = {k: tuple(v.shape) for k, v in clip.state_dict().items()}
    visual = _small_openai_clip().visual
    sd = {k: v.half() for k, v in clip.state_dict().items()}          # fp16 like OpenAI's archive
    load_visual_strict(visual, layout, sd, "RINE")
    assert visual.conv1.weight.dtype == torch.float32 and torch.equal(visual.conv1.weight, sd["visual.conv1.weight"].float())
    broken = {k: v for k, v in sd.items() if not k.startswith("transformer.")}
    with pytest.raises(WeightsCorrupt, match=r"missing keys .*transformer\.resblocks"):
        load_visual_strict(visual, layout, broken, "RINE", "bb.pt")
    with pytest.raises(WeightsCorrupt, match="shape mismatch"):
        load_visual_strict(visual, layout, {**sd, "visual.proj": torch.zeros(3, 3)}, "RINE", "bb.pt")


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore:.*trace_method.*deprecated:FutureWarning")
def test_a_torchscript_archive_backbone_loads_without_running_its_code(tmp_path):
    pytest.importorskip("core.models.torchscript")
    from core.models.checkpoint import load_checkpoint
    clip = _small_openai_clip()
    del clip._buffers["attn_mask"]          # OpenAI's archive holds weights only (its text mask is a constant)
    archive = tmp_path / "ViT-tiny.pt"
    torch.jit.trace_module(clip, {"encode_image": torch.zeros(1, 3, 28, 28)}, check_trace=False).save(str(archive))
    layout = {k: tuple(v.shape) for k, v in clip.state_dict().items()}
    visual = _small_openai_clip().visual
    load_visual_strict(visual, layout, load_checkpoint(archive, "RINE"), "RINE", str(archive))
    assert all(torch.equal(v, clip.visual.state_dict()[k]) for k, v in visual.state_dict().items())


# --------------------------------------------------------------------------------------------- specs

def test_shipped_specs():
    rine = {s.variant: s for s in list_specs("RINE")}
    assert set(rine) == {"1class", "2class", "4class", "ldm", "4class_tencrop", "custom"}
    assert get_spec("RINE").variant == "4class" and get_spec("B-Free").variant == "original"
    assert {s.backbone.file for s in rine.values()} == {"ViT-L-14.pt"}
    assert rine["4class_tencrop"].preprocess.mode == "ten_crop" and rine["4class_tencrop"].explain_layer is None
    assert rine["4class_tencrop"].weights.shared_with == "4class"
    bfree = {s.variant: s for s in list_specs("B-Free")}
    assert bfree["original"].preprocess.large_crop == 1024 and bfree["fullframe"].preprocess.large_crop is None
    src = bfree["original"].weights.sources[0]
    assert src.member == "BFREE_dino2reg4/model_epoch_best.pth" and src.archive_md5 == "f3f53fa647848b16cf81c913f148a198"
    assert "non-profit" in bfree["original"].card.licence
    assert set(bfree) == {"original", "fullframe", "custom"}
    published = [s for s in list(rine.values()) + list(bfree.values()) if s.variant != "custom"]
    for s in published:
        assert s.card.paper and s.card.code and s.card.licence and s.card.training_data, s.key
        assert s.coverage.generators and s.coverage.trained_until and 0 < s.ensemble_weight <= 0.25, s.key
    # The seed's five voters keep their weights, so the original vote is unchanged without RINE / B-Free.
    old = {s.id: s.ensemble_weight for s in list_specs() if s.default}
    assert (old["CLIP-D"], old["R50_TF"], old["R50_nodown"], old["P2G"], old["NPR"]) == (0.30, 0.25, 0.20, 0.15, 0.10)


@requires_golden
def test_the_real_rine_2class_head_matches_its_declared_checksum():
    path = SHARED / "weights" / "rine_model_2class_trainable.pth"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    spec = get_spec("RINE:2class")
    assert check_digest(spec, spec.weights, path) == spec.weights.sha256
    sd = torch.load(path, map_location="cpu", weights_only=True)
    RineHead(spec.options["nproj"], spec.options["proj_dim"]).load_state_dict(sd, strict=True)


# --------------------------------------------------------------------------------------------- zip source (B-Free)

_MEMBER = "BFREE_dino2reg4/model_epoch_best.pth"


def _zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _zip_spec(url: str, md5: str | None) -> DetectorSpec:
    """The B-Free source layout (url + member + archive_md5) on the tiny test architecture."""
    return parse_spec({
        "id": "TINY", "variant": "original", "arch": "tiny_cnn", "preprocess": {"mode": "full"},
        "weights": {"file": "model_epoch_best.pth", "container": "model",
                    "sources": [{"type": "url", "url": url, "member": _MEMBER, "archive_md5": md5}]},
    })


@pytest.fixture()
def _online(monkeypatch):
    monkeypatch.delenv("DEEPFAKE_LENS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def test_a_zip_source_installs_only_its_member_after_the_archive_md5(_online, weights_home, tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "m.pth").read_bytes()
    body = _zip_of({"BFREE_dino2reg4/config.yaml": b"arch: dino2reg4\n", _MEMBER: ckpt})
    with serve({"/BFREE_dino2reg4.zip": Route(body)}) as srv:
        spec = _zip_spec(srv.base + "/BFREE_dino2reg4.zip", hashlib.md5(body).hexdigest())
        path = W.download(spec)
    assert path == weights_home / "TINY" / "original" / "model_epoch_best.pth" and path.read_bytes() == ckpt
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.endswith(".sha256.json")) == [path.name]
    assert W.status(spec).state == "installed" and W.status(spec).sha256 == hashlib.sha256(ckpt).hexdigest()


@pytest.mark.parametrize("members, md5, why", [
    ({_MEMBER: b"x"}, "0" * 32, "checksum mismatch"),                    # not the archive the authors published
    ({"other/model.pth": b"x"}, None, f"holds no member {_MEMBER}"),
])
def test_a_bad_zip_source_installs_nothing(_online, weights_home, members, md5, why):
    body = _zip_of(members)
    with serve({"/b.zip": Route(body)}) as srv:
        spec = _zip_spec(srv.base + "/b.zip", md5)
        with pytest.raises(WeightsCorrupt, match=why):
            W.download(spec)
    folder = weights_home / "TINY" / "original"
    assert not folder.exists() or not any(folder.iterdir())
    assert W.status(spec).state == "missing"

