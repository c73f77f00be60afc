"""Golden parity of RINE (mever-team/rine) and B-Free (grip-unina/B-Free) through the public CLI.

The checkpoints are written to temporary files in the layouts the manifests describe, filled with
fill_state_dict(seed=0): RINE's OpenAI CLIP ViT-L/14 backbone (446 OpenAI-named keys, a plain state dict, and once
as a TorchScript archive like OpenAI's ``ViT-L-14.pt``), RINE's raw head dicts, and B-Free's ``{'model': ...}``.
Then ``python -m core detect IMAGE --detector RINE:4class --weights HEAD --backbone CLIP --json`` (and
``--detector B-Free --weights CKPT``) runs on every golden image, ``e_1000x700.png`` included, and its JSON is
compared at the goldens' STRICT tolerances, after the input statistics of the detector's own preprocessing. The
2-class head, the ten-crop protocol and the intermediates are checked on one in-process detector built the same
way (ViT-L/14 is large: each CLI call builds it once, so those checks share one build).
"""
from __future__ import annotations

import gc
import json
import math
import warnings

import numpy as np
import pytest
import torch

from core.cli.main import main
from core.models.detectors.bfree import BFreeNet, crop_plan
from core.models.detectors.openai_clip import build_openai_clip
from core.models.detectors.rine import RineDetector, RineHead, RineNet
from core.models.factory import create_detector
from core.models.preprocess import build_transform
from core.models.registry import get_spec
from tests.helpers.golden import (
    SHARED,
    compare_input,
    fill_checksum,
    fill_state_dict,
    golden,
    golden_image,
    manifest,
    requires_golden,
)

pytestmark = [requires_golden, pytest.mark.slow, pytest.mark.golden]

GOLDEN = {"4class": "RINE_4class", "2class": "RINE_2class", "bfree": "BFREE"}


def _names(det: str) -> list[str]:
    try:
        return sorted(golden(det)["images"])
    except OSError:                          # folder absent: skipped by requires_golden
        return []


def _checksum(sd: dict[str, torch.Tensor]) -> dict[str, float]:
    """fill_checksum key by key (a float64 copy of 428 M values at once would need 3.4 GB)."""
    total = {"n_keys": 0, "n_values": 0, "sum": 0.0, "abs_sum": 0.0}
    for k, v in sd.items():
        for name, value in fill_checksum({k: v}).items():
            total[name] += value
    return total


def _same_checksum(got: dict[str, float], want: dict[str, float]) -> bool:
    return (got["n_keys"] == want["n_keys"] and got["n_values"] == want["n_values"]
            and math.isclose(got["sum"], want["sum"], rel_tol=1e-9, abs_tol=1e-6)
            and math.isclose(got["abs_sum"], want["abs_sum"], rel_tol=1e-9, abs_tol=1e-6))


def _head(variant: str) -> RineHead:
    opts = get_spec(f"RINE:{variant}").options
    return RineHead(int(opts["nproj"]), int(opts["proj_dim"]))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every filled checkpoint on disk, plus the layouts and fill checksums seen while writing them."""
    d = tmp_path_factory.mktemp("rine_bfree")
    out: dict = {"dir": d}
    clip = build_openai_clip()
    out["backbone_layout"] = {k: list(v.shape) for k, v in clip.state_dict().items()}
    filled = fill_state_dict(clip.state_dict(), seed=0)
    out["backbone_checksum"] = _checksum(filled)
    torch.save(filled, d / "ViT-L-14_state_dict.pt")
    clip.load_state_dict(filled, strict=True)
    del filled
    try:
        import core.models.torchscript  # noqa: F401 - the code-free TorchScript reader (else: no archive test)
    except ImportError:
        out["backbone_jit"] = None
    else:
        # OpenAI's archive keeps the text attention mask as a constant, not a buffer: drop open_clip's buffer so
        # the archive holds exactly the weights, like ViT-L-14.pt.
        del clip._buffers["attn_mask"]
        with warnings.catch_warnings():       # tracing notes about Python values; the archive holds the weights
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", ".*trace_method.*deprecated", FutureWarning)
            traced = torch.jit.trace_module(clip, {"encode_image": torch.zeros(1, 3, 224, 224)}, check_trace=False)
        traced.save(str(d / "ViT-L-14_jit.pt"))
        out["backbone_jit"] = d / "ViT-L-14_jit.pt"
        del traced
    del clip
    for variant in ("4class", "2class"):
        head = fill_state_dict(_head(variant).state_dict(), seed=0)
        out[f"{variant}_keys"] = {k: list(v.shape) for k, v in head.items()}
        out[f"{variant}_checksum"] = fill_checksum(head)
        torch.save(head, d / f"model_{variant}_trainable.pth")
    bfree = fill_state_dict(BFreeNet().state_dict(), seed=0)
    out["bfree_keys"] = {k: list(v.shape) for k, v in bfree.items()}
    out["bfree_checksum"] = fill_checksum(bfree)
    torch.save({"model": bfree}, d / "model_epoch_best.pth")
    del bfree
    gc.collect()
    return out


def _detect(capsys, *args: str) -> tuple[int, dict | str]:
    code = main(["detect", *args, "--json"])
    gc.collect()                               # the CLI's ViT-L is garbage once it has answered
    out = capsys.readouterr()
    return code, (json.loads(out.out) if code == 0 else out.err)


def _check_input(spec_key: str, name: str, exp: dict, tol: float) -> None:
    prep = build_transform(get_spec(spec_key).preprocess)(golden_image(name))
    problems = compare_input(prep.tensor, exp["input"], tol)
    assert not problems, f"{spec_key} {name}: input statistics differ from the golden: {problems}"


# --------------------------------------------------------------------------------------------- layouts

def test_layouts_and_fill_checksums(files):
    for variant in ("4class", "2class"):
        man = manifest(GOLDEN[variant])
        assert files[f"{variant}_keys"] == man["keys"] and man["container"] == get_spec(f"RINE:{variant}").weights.container
        assert files["backbone_layout"] == man["backbone"]["keys"]
        g = golden(GOLDEN[variant])["weights"]["fill_checksum"]
        assert _same_checksum(files["backbone_checksum"], g[0]) and _same_checksum(files[f"{variant}_checksum"], g[1])
    man = manifest("BFREE")
    assert files["bfree_keys"] == man["keys"] and get_spec("B-Free").weights.container == man["container"]
    assert _same_checksum(files["bfree_checksum"], golden("BFREE")["weights"]["fill_checksum"])


# --------------------------------------------------------------------------------------------- through the CLI

@pytest.mark.parametrize("name", _names("RINE_4class"))
def test_rine_4class_cli(files, capsys, name):
    g = golden("RINE_4class")
    exp, tol = g["images"][name], g["strict_tolerance"]
    _check_input("RINE:4class", name, exp, tol["input_stats_abs"])
    code, res = _detect(capsys, str(SHARED / "golden" / exp["path"]), "--detector", "RINE:4class",
                        "--weights", str(files["dir"] / "model_4class_trainable.pth"),
                        "--backbone", str(files["dir"] / "ViT-L-14_state_dict.pt"))
    assert code == 0, res
    assert res["input_size"] == [224, 224] and res["resized"] is False
    assert abs(res["logit"] - exp["logit"]) <= tol["logit_abs"], (name, res["logit"], exp["logit"])
    assert abs(res["p_fake"] - exp["prob_fake"]) <= tol["prob_abs"]
    assert res["label"] == exp["pred"]


def test_rine_backbone_as_a_torchscript_archive(files, capsys):
    if files["backbone_jit"] is None:
        pytest.skip("no TorchScript reader (core.models.torchscript) in this tree")
    exp = golden("RINE_4class")["images"]["e_1000x700.png"]
    code, res = _detect(capsys, str(SHARED / "golden" / exp["path"]), "--detector", "RINE:4class",
                        "--weights", str(files["dir"] / "model_4class_trainable.pth"),
                        "--backbone", str(files["backbone_jit"]))
    assert code == 0, res
    assert abs(res["logit"] - exp["logit"]) <= golden("RINE_4class")["strict_tolerance"]["logit_abs"]


def test_real_rine_2class_head_loads_strictly_and_scores(files, capsys):
    head = SHARED / "weights" / "rine_model_2class_trainable.pth"
    if not head.is_file():
        pytest.skip(f"the real RINE 2-class head {head} is absent")
    spec = get_spec("RINE:2class")
    code, res = _detect(capsys, str(SHARED / "golden" / "images" / "a_256.png"), "--detector", "RINE:2class",
                        "--weights", str(head), "--backbone", str(files["dir"] / "ViT-L-14_state_dict.pt"))
    assert code == 0, res                       # a strict load: any missing/extra/mis-shaped key exits 2
    assert res["weights_sha256"] == spec.weights.sha256
    assert math.isfinite(res["logit"]) and 0.0 <= res["p_fake"] <= 1.0 and res["label"] in ("real", "fake")


@pytest.mark.parametrize("name", _names("BFREE"))
def test_bfree_cli(files, capsys, name):
    g = golden("BFREE")
    exp, tol = g["images"][name], g["strict_tolerance"]
    _check_input("B-Free", name, exp, tol["input_stats_abs"])
    code, res = _detect(capsys, str(SHARED / "golden" / exp["path"]), "--detector", "B-Free",
                        "--weights", str(files["dir"] / "model_epoch_best.pth"))
    assert code == 0, res
    assert res["input_size"] == exp["input"]["shape"][:1:-1] and res["crop_box"] is None
    assert abs(res["logit"] - exp["logit"]) <= tol["logit_abs"], (name, res["logit"], exp["logit"])
    assert abs(res["p_fake"] - exp["prob_fake"]) <= tol["prob_abs"]
    assert res["label"] == exp["pred"]
    inter = exp["intermediate"]
    assert res["details"]["patch_grid"] == inter["patch_grid_hw"]
    d_crops = np.max(np.abs(np.subtract(res["details"]["crop_logits"], inter["crop_logits"])))
    assert d_crops <= tol["crop_logit_abs"], (name, res["details"]["crop_logits"], inter["crop_logits"])


# --------------------------------------------------------------------------------------------- in process

@pytest.fixture(scope="module")
def rine4(files):
    """RINE:4class built once through create_detector from the same files (for intermediates and other heads)."""
    det = create_detector("RINE:4class", weights=files["dir"] / "model_4class_trainable.pth",
                          backbone_weights=files["dir"] / "ViT-L-14_state_dict.pt")
    yield det
    del det
    gc.collect()


def _variant(base: RineDetector, key: str, head_file) -> RineDetector:
    """Another RINE variant sharing ``base``'s loaded backbone (no second ViT-L in memory)."""
    spec = get_spec(key)
    head = RineHead(int(spec.options["nproj"]), int(spec.options["proj_dim"]))
    det = RineDetector(spec, RineNet(base.model.visual, head), base.backbone_layout)
    det.load_checkpoint(torch.load(head_file, map_location="cpu", weights_only=True), str(head_file))
    return det


@pytest.mark.parametrize("variant", ["4class", "2class"])
def test_rine_logits_and_intermediates(files, rine4, variant):
    det = rine4 if variant == "4class" else _variant(rine4, "RINE:2class", files["dir"] / "model_2class_trainable.pth")
    g = golden(GOLDEN[variant])
    tol = g["strict_tolerance"]
    seen: dict[str, torch.Tensor] = {}
    hook = det.model.trainable.register_forward_hook(
        lambda m, i, o: seen.update(g=i[0].detach().clone(), z=o[1].detach().clone()))
    try:
        for name, exp in g["images"].items():
            r = det.predict(golden_image(name))
            assert abs(r.logit - exp["logit"]) <= tol["logit_abs"], (variant, name, r.logit, exp["logit"])
            inter = exp["intermediate"]
            cls = seen["g"][0].double()
            assert np.max(np.abs(cls.norm(dim=1).numpy() - inter["cls_ln2_norm_per_block"])) <= tol["cls_ln2_norm_abs"]
            for block, key in ((0, "cls_ln2_block0_first8"), (23, "cls_ln2_block23_first8")):
                assert np.max(np.abs(cls[block, :8].numpy() - inter[key])) <= tol["cls_ln2_values_abs"]
            z = seen["z"][0].double()
            assert abs(float(z.norm()) - inter["z_norm"]) <= tol["z_abs"]
            assert np.max(np.abs(z[:16].numpy() - inter["z_first16"])) <= tol["z_abs"]
    finally:
        hook.remove()
    weights = det.model.trainable.block_weights().numpy()
    assert np.max(np.abs(weights - g["weights"]["alpha_softmax_over_blocks_mean_over_dims"])) <= 1e-6


def test_rine_ten_crop_every_image(files, rine4):
    det = RineDetector(get_spec("RINE:4class_tencrop"), rine4.model, rine4.backbone_layout)
    g = golden("RINE_4class")
    tol = g["strict_tolerance"]["logit_abs"]
    for name, exp in g["images"].items():
        want = exp["tencrop"]
        if "error" in want:                    # upstream's TenCrop refuses images under 224 px
            with pytest.raises(ValueError, match="ten-crop needs at least 224"):
                det.predict(golden_image(name))
            continue
        r = det.predict(golden_image(name))
        assert abs(r.logit - want["mean_logit"]) <= tol, name
        assert abs(r.p_fake - want["prob_fake"]) <= g["strict_tolerance"]["prob_abs"]
        assert np.max(np.abs(np.subtract(r.details["crop_logits"], want["crop_logits"]))) <= tol, name
        prep = det.prepare(golden_image(name))
        assert not compare_input(prep.tensor[0], want["input_crop0"], g["strict_tolerance"]["input_stats_abs"])


def test_bfree_cls_features(files):
    det = create_detector("B-Free", weights=files["dir"] / "model_epoch_best.pth")
    g = golden("BFREE")
    tol = g["strict_tolerance"]["cls_feature_abs"]
    seen: dict[str, torch.Tensor] = {}
    hook = det.model.norm.register_forward_hook(lambda m, i, o: seen.__setitem__("cls", o[:, 0].detach().clone()))
    try:
        for name, exp in g["images"].items():
            det.predict(golden_image(name))
            cls = seen["cls"].double()
            inter = exp["intermediate"]
            cls = cls[list(crop_plan(*inter["patch_grid_hw"]).members)]   # coinciding crops are computed once
            assert np.max(np.abs(cls.norm(dim=1).numpy() - inter["cls_feature_norm_per_crop"])) <= tol, name
            for k in (0, 1):
                assert np.max(np.abs(cls[k, :16].numpy() - inter[f"cls_feature_crop{k}_first16"])) <= tol, name
    finally:
        hook.remove()
