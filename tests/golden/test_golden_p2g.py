"""Golden parity of P2G (Prompt2Guard) with the upstream reference run (../shared/golden/P2G.json).

The OpenAI ViT-B/16 backbone is filled with ``fill_state_dict(seed=0)`` (OpenAI key names) and loaded through the
production path (``create_detector("P2G", weights=<real CDDB checkpoint>, backbone_weights=<file>)``); the prompts
and task keys come from the real CDDB checkpoint. Each image is checked in order: input shape, input statistics of
both views (main and zero-shot), the zero-shot labels we recompute, the task weights, then the task logits and the
decisions, at the golden's strict tolerances.
"""
from __future__ import annotations

import math

import pytest
import torch

from core.models.checkpoint import load_checkpoint
from core.models.detectors.prompt2guard import imagenet_classnames, tokenize
from core.models.factory import create_detector
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

pytestmark = [requires_golden, pytest.mark.slow]

IMAGES = ["a_256.png", "b_odd.png", "c_640x480.png", "d_q75.jpg"]
CKPT = SHARED / "weights" / "p2g_cddb_best_results.tar"
RULES = ("top1", "max_pair", "mean", "mix_top_mean")


@pytest.fixture(scope="module")
def gold() -> dict:
    return golden("P2G")


@pytest.fixture(scope="module")
def tol(gold) -> dict:
    return gold["strict_tolerance"]


@pytest.fixture(scope="module")
def det(gold, tmp_path_factory):
    """P2G built once for the module: seed-0 backbone file + the real CDDB checkpoint, via create_detector."""
    if not CKPT.is_file():
        pytest.skip(f"the real Prompt2Guard CDDB checkpoint {CKPT} is absent")
    # fill.py uses only each key's name, shape and dtype, so the manifest's OpenAI key list is the template.
    template = {k: torch.empty(shape, dtype=torch.float32) for k, shape in manifest("P2G")["backbone"]["keys"].items()}
    filled = fill_state_dict(template, seed=0)
    want = gold["weights"]["fill_checksum"]
    got = fill_checksum(filled)
    assert (got["n_keys"], got["n_values"]) == (want["n_keys"], want["n_values"])
    assert got["sum"] == pytest.approx(want["sum"], rel=1e-9) and got["abs_sum"] == pytest.approx(want["abs_sum"],
                                                                                                   rel=1e-9)
    path = tmp_path_factory.mktemp("p2g_backbone") / "vit_b16_openai_names_seed0.pt"
    torch.save(filled, path)
    del filled, template
    try:
        detector = create_detector("P2G", weights=CKPT, backbone_weights=path)
    finally:
        path.unlink(missing_ok=True)
    return detector


def test_golden_lists_the_four_images(gold):
    assert sorted(gold["images"]) == IMAGES


def test_state_dict_matches_manifest(det):
    man = manifest("P2G")
    ours_backbone = {k: list(v.shape) for k, v in det.model.clip.state_dict().items()}
    assert ours_backbone == man["backbone"]["keys"]
    ours_prompts = {k: list(v.shape) for k, v in det.model.state_dict().items() if k.startswith("prompt_learner.")}
    assert ours_prompts == man["keys"]
    assert set(det.model.state_dict()) == {f"clip.{k}" for k in man["backbone"]["keys"]} | set(man["keys"])
    assert det.checkpoint_info["K"] == man["K"] and det.checkpoint_info["topk_classes"] == man["topk_classes"]
    assert det.checkpoint_info["tasks"] == man["num_tasks"]


def test_checkpoint_keys_match_manifest_and_are_loaded():
    if not CKPT.is_file():
        pytest.skip(f"the real Prompt2Guard CDDB checkpoint {CKPT} is absent")
    man = manifest("P2G")
    ckpt = load_checkpoint(CKPT)
    assert {k: list(v.shape) for k, v in ckpt["keys"].items()} == {k: v["shape"] for k, v in man["keys_dict"].items()}
    assert list(ckpt["ensembling_flags"]) == man["ensembling_flags"]


def test_loaded_keys_are_the_checkpoint_keys(det):
    ckpt = load_checkpoint(CKPT)
    for name in ("fake_keys_one_cluster", "real_keys_one_cluster", "all_keys_one_cluster"):
        assert torch.equal(getattr(det.model, name), ckpt["keys"][name].float())
    for key, value in ckpt["model_state_dict"].items():
        assert torch.equal(det.model.state_dict()[key], value.float())


def test_class_names_match_golden_indices(gold):
    names = imagenet_classnames()
    for entry in gold["images"].values():
        for name, index, _ in entry["zero_shot"]["top10"]:
            assert names[index] == name


@pytest.mark.parametrize("name", IMAGES)
def test_image_parity(det, gold, tol, name):
    exp = gold["images"][name]
    image = golden_image(name)

    # 1-2. both views: shape exactly, then the statistics at the strict input tolerance
    prep = det.prepare(image)
    assert list(prep.tensor.unsqueeze(0).shape) == exp["input"]["shape"]
    assert list(prep.aux["zs_input"].unsqueeze(0).shape) == exp["zero_shot"]["zs_input"]["shape"]
    main_problems = compare_input(prep.tensor, exp["input"], tol["input_stats_abs"])
    zs_problems = compare_input(prep.aux["zs_input"], exp["zero_shot"]["zs_input"], tol["input_stats_abs"])
    assert not main_problems, f"{name}: main input differs from the golden: {main_problems}"
    assert not zs_problems, f"{name}: zero-shot input differs from the golden: {zs_problems}"
    inputs_ok = "input statistics of both views matched the golden, so the difference is in the network"

    result = det.predict(image)
    d = result.details

    # 3. zero-shot object labels, recomputed here by our CLIP (not taken from the golden)
    assert [n for n, _ in d["object_labels"]] == [n for n, _ in exp["object_labels_top5"]], inputs_ok
    for (_, ours), (_, want) in zip(d["object_labels"], exp["object_labels_top5"]):
        assert abs(ours - want) <= 100 * tol["prob_abs"], f"{name}: zero-shot probability (percent); {inputs_ok}"
    ours_zs = {index: value for _, index, value in d["zero_shot_top10"]}
    for cls, index, want in exp["zero_shot"]["top10"]:
        assert index in ours_zs, f"{name}: {cls} not in our zero-shot top 10; {inputs_ok}"
        assert abs(ours_zs[index] - want) <= tol["zero_shot_logit_abs"], f"{name}: zero-shot logit of {cls}"
    assert d["prompts"] == exp["prompts"]
    assert ((tokenize(d["prompts"]).argmax(dim=-1) + 1).tolist()) == exp["len_prompts"]

    # 4. task weights, then the task logits
    dw = max(abs(a - b) for a, b in zip(d["task_weights"], exp["task_weights"]["fake"]))
    assert dw <= tol["task_weights_abs"], f"{name}: task weights |Δ| {dw:.3g}; {inputs_ok}"
    ours = torch.tensor(d["task_logits"], dtype=torch.float64)
    want = torch.tensor(exp["task_logits_real_fake"], dtype=torch.float64)
    assert ours.shape == want.shape
    dl = float((ours - want).abs().max())
    assert dl <= tol["task_logits_abs"], f"{name}: task logits |Δ| {dl:.3g} > {tol['task_logits_abs']}; {inputs_ok}"

    # 5. decisions: probabilities of every rule, which pair mix_top_mean used, the top-1 task, the verdicts
    for rule in RULES:
        assert abs(d["p_fake"][rule] - exp["prob_fake"][rule]) <= tol["prob_abs"], f"{name}: prob_fake[{rule}]"
    assert d["mix_top_mean_uses"] == exp["mix_top_mean_uses"]
    assert d["top1_task"] == exp["top1_task"]
    for rule, pred in exp["predictions"].items():
        assert int(d["logits"][rule] > 0) == pred, f"{name}: {rule} verdict"

    # the result reports the configured decision (mix_top_mean) as its logit, p_fake = sigmoid(logit)
    assert d["decision"] == "mix_top_mean"
    assert result.logit == d["logits"]["mix_top_mean"]
    assert result.p_fake == pytest.approx(1 / (1 + math.exp(-result.logit)), abs=1e-12)
    assert abs(result.p_fake - exp["prob_fake"]["mix_top_mean"]) <= tol["prob_abs"]
    assert result.input_size == (224, 224) and result.resized
    assert result.image_size == tuple(exp["image_size_wh"])
    assert len(d["task_names"]) == 5
