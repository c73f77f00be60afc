"""Issue 15: batch-norm folding (the faithful fp32 path) and the bf16 fast mode with a resident bf16 copy.

Folding must keep the scores to float rounding: checked against the golden files at their STRICT tolerances with
the seed-0 filled weights. The fast mode must meet the fidelity bar (0 flips, |Δp_fake| ≤ 0.01) on the golden
images for every CNN detector whose YAML offers it, record its precision in the results, leave Grad-CAM in fp32,
and be reachable from the CLI (``--fast``).
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from tests.helpers.golden import fill_state_dict, golden, golden_image, requires_golden

from core.cli.main import main
from core.examples import list_examples, load_example
from core.models.factory import create_detector
from core.models.fast import bf16_copy, fold_batchnorm
from core.models.registry import get_spec

CNN = ["R50_TF", "R50_nodown", "NPR"]


def _seed0(det_id: str):
    """The detector as the golden tests build it: seed-0 fill, loaded through load_checkpoint (not yet folded)."""
    det = create_detector(det_id, pretrained=False)
    filled = fill_state_dict(det.model.state_dict(), seed=0)
    container = det.spec.weights.container
    det.load_checkpoint(filled if container == "raw" else {container: filled}, "<seed-0 fill>")
    return det


def _randomise_batchnorm(model: nn.Module) -> None:
    """Non-trivial running statistics and affine terms, so that folding has something to fold."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.mark.parametrize("det_id, pairs", [("NPR", 24), ("R50_nodown", 53), ("R50_TF", 53)])
def test_folding_removes_every_batchnorm_and_keeps_the_logits(det_id, pairs):
    det = create_detector(det_id, pretrained=False)
    _randomise_batchnorm(det.model)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        before = det.model(x).clone()
        assert fold_batchnorm(det.model) == pairs
        after = det.model(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in det.model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)


def test_folding_refuses_a_training_model():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(model)


@requires_golden
@pytest.mark.parametrize("det_id, name", [("NPR", "a_256.png"), ("NPR", "b_odd.png"), ("R50_TF", "a_256.png"),
                                          ("R50_TF", "d_q75.jpg"), ("R50_nodown", "a_256.png")])
def test_folded_network_matches_the_golden_at_strict_tolerance(det_id, name):
    det = _seed0(det_id)
    det.optimize_for_inference()
    assert det.folded and not any(isinstance(m, nn.BatchNorm2d) for m in det.model.modules())
    g = golden(det_id)
    entry = g["images"][name]["noresize"] if det_id == "NPR" else g["images"][name]
    result = det.predict(golden_image(name))
    assert abs(result.logit - entry["logit"]) <= g["strict_tolerance"]["logit_abs"]
    assert abs(result.p_fake - entry["prob_fake"]) <= g["strict_tolerance"]["prob_abs"]
    assert result.label == entry["pred"] and "precision" not in result.details


def test_a_folded_detector_refuses_a_second_checkpoint():
    det = create_detector("NPR", pretrained=False)
    sd = det.model.state_dict()
    det.optimize_for_inference()
    with pytest.raises(RuntimeError, match="batch norms folded"):
        det.load_checkpoint(sd, "again.pth")


def test_create_detector_folds_the_loaded_network(tmp_path):
    path = tmp_path / "npr.pth"
    torch.save(create_detector("NPR", pretrained=False).model.state_dict(), path)
    det = create_detector("NPR", weights=path)
    assert det.folded and not any(isinstance(m, nn.BatchNorm2d) for m in det.model.modules())


def test_fast_mode_keeps_a_resident_bf16_copy_and_grad_cam_in_fp32():
    det = create_detector("NPR", pretrained=False)
    det.optimize_for_inference()
    image = load_example(list_examples()[-1])
    ref, ref_cam = det.predict(image), det.explain(image).heatmap
    det.set_precision("bf16")
    twin = det._bf16_model
    assert twin is not None and twin.conv1.weight.dtype == torch.bfloat16
    assert twin.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert det.model.conv1.weight.dtype == torch.float32          # the faithful network is untouched
    fast = det.predict(image)
    assert fast.details["precision"] == "bf16" and abs(fast.p_fake - ref.p_fake) <= 0.01
    torch.testing.assert_close(torch.from_numpy(det.explain(image).heatmap), torch.from_numpy(ref_cam))
    det.set_precision("fp32")
    assert det._bf16_model is None and "precision" not in det.predict(image).details


def test_bf16_copy_keeps_family_modules_in_fp32():
    det = create_detector("R50_TF", pretrained=False)
    twin = bf16_copy(det.model)
    assert twin.backbone.conv1.weight.dtype == torch.bfloat16 and twin.proto.centers.dtype == torch.float32
    with torch.inference_mode():
        out = twin(torch.randn(1, 3, 32, 32).to(torch.bfloat16, memory_format=torch.channels_last))
    assert out.dtype == torch.float32


@requires_golden
@pytest.mark.parametrize("det_id", [d for d in CNN if get_spec(d).options.get("fast_bf16")])
def test_offered_fast_mode_meets_the_fidelity_bar_on_golden_images(det_id):
    det = _seed0(det_id)
    det.optimize_for_inference()
    for name in ("a_256.png", "b_odd.png", "d_q75.jpg"):
        image = golden_image(name)
        det.set_precision("fp32")
        ref = det.predict(image)
        assert det.use_fast_mode()
        fast = det.predict(image)
        assert fast.details["precision"] == "bf16"
        assert fast.label == ref.label and abs(fast.p_fake - ref.p_fake) <= 0.01, (det_id, name)


def test_cli_fast_flag_records_the_precision(tmp_path, capsys):
    image = tmp_path / "x.png"
    load_example(list_examples()[-1]).save(image)
    weights = tmp_path / "npr.pth"
    torch.save(create_detector("NPR", pretrained=False).model.state_dict(), weights)
    offered = bool(get_spec("NPR").options.get("fast_bf16"))
    assert main(["detect", str(image), "--detector", "NPR", "--weights", str(weights), "--fast", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["details"].get("precision") == ("bf16" if offered else None)
    assert ("not offered" in out.err) is not offered


def test_grad_cam_of_the_folded_fused_network_equals_the_original():
    det = create_detector("NPR", pretrained=False)
    _randomise_batchnorm(det.model)
    image = load_example(list_examples()[-1])
    ref = det.explain(image).heatmap
    det.optimize_for_inference()
    assert any(type(m).__name__ == "FusedBottleneck" for m in det.model.modules())
    torch.testing.assert_close(torch.from_numpy(det.explain(image).heatmap), torch.from_numpy(ref),
                               atol=1e-4, rtol=1e-4)


def test_fast_per_image_scores_a_bf16_batch_one_image_at_a_time():
    """CLIP-D declares fast_per_image (its bf16 batches take ~40 s on CPU): a batch is scored image by image in the
    fast mode, with the values a batched autocast run gives, and batched as usual in fp32."""
    import dataclasses

    from core.models.detectors.base import Detector

    assert get_spec("CLIP-D").options.get("fast_per_image") is True
    spec = get_spec("NPR")
    spec = dataclasses.replace(spec, options={**spec.options, "fast_bf16": True, "fast_per_image": True})
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1))
    det = Detector(spec, net)
    sizes: list[int] = []
    score = det.score
    det.score = lambda prepared: (sizes.append(len(prepared)), score(prepared))[1]
    images = [load_example(e).resize((64, 64)) for e in list_examples()[:3]]
    fp32 = det.predict_batch(images, batch_size=3)
    assert sizes == [3]
    assert det.use_fast_mode()
    sizes.clear()
    fast = det.predict_batch(images, batch_size=3)
    assert sizes == [1, 1, 1] and all(r.details["precision"] == "bf16" for r in fast)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        batched = [v for v, _ in score([det.prepare(im) for im in images])]
    assert [r.logit for r in fast] == pytest.approx(batched, abs=0.05)
    assert [r.p_fake for r in fast] == pytest.approx([r.p_fake for r in fp32], abs=0.01)
