"""Unit tests of the P2G (Prompt2Guard) detector: config, checkpoint layouts, decision rules, batching.

The CLIP backbone keeps its random weights here (fidelity is the golden test's job, tests/test_golden_p2g.py); the
model is built once for the module because a ViT-B/16 + text tower is ~150 M parameters.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from core.errors import ConfigError, WeightsCorrupt
from core.models.checkpoint import load_checkpoint
from core.models.detectors.prompt2guard import (
    DECISIONS,
    ZERO_SHOT_PREPROCESS,
    P2GDetector,
    clean_backbone_state_dict,
    decisions,
    imagenet_classnames,
)
from core.models.preprocess import build_transform
from core.models.factory import create_detector
from core.models.registry import get_spec

CKPT = Path(__file__).resolve().parents[2].parent / "shared" / "weights" / "p2g_cddb_best_results.tar"
CDDB_SHA256 = "65d1e829d3474d08099441a0fe63caad57fb514a90639e24a79077162d5ba3bf"


def _image(seed: int, size: tuple[int, int] = (300, 200)) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr)


def _checkpoint(n_tasks: int, k: int = 7, one_d_keys: bool = False, seed: int = 0) -> dict:
    """A P2G checkpoint in the upstream layout (fp16 tensors), multi-task or single-task (TrueFake: [512] keys)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for t in range(n_tasks):
        sd[f"prompt_learner.{t}.text_prompt"] = (0.02 * torch.randn(k, 512, generator=g)).half()
        sd[f"prompt_learner.{t}.img_prompt"] = (0.02 * torch.randn(k, 768, generator=g)).half()

    def key() -> torch.Tensor:
        v = F.normalize(torch.randn(n_tasks, 512, generator=g), dim=-1)
        return (v[0] if one_d_keys else v).half()

    keys = {"all_keys_one_cluster": key(), "real_keys_one_cluster": key(), "fake_keys_one_cluster": key(),
            "all_keys": torch.randn(5, 512, generator=g).half() if one_d_keys
            else torch.randn(n_tasks, 5, 512, generator=g).half()}
    return {"tasks": n_tasks - 1, "model_state_dict": sd, "keys": keys, "K": k, "topk_classes": 5,
            "ensembling_flags": [False, False, True, False]}


def _multi_task() -> dict:
    """The real CDDB checkpoint when it is available, else a synthetic 5-task one."""
    return load_checkpoint(CKPT) if CKPT.is_file() else _checkpoint(5)


@pytest.fixture(scope="module")
def det() -> P2GDetector:
    d = create_detector("P2G", pretrained=False)
    # Skip the CLIP text pass over the 1000 class prompts (~30 s on 2 cores): with random weights the class
    # features only need to be some fixed unit vectors. tests/test_golden_p2g.py checks the real computation.
    d._class_features = F.normalize(torch.randn(1000, 512, generator=torch.Generator().manual_seed(0)), dim=-1)
    return d


# --------------------------------------------------------------------------------------------- config

def test_specs():
    spec = get_spec("P2G")
    assert spec.variant == "original" and spec.default and spec.arch == "prompt2guard"
    assert spec.ensemble_weight == pytest.approx(0.15) and spec.threshold == 0.5
    assert spec.weights.sha256 == CDDB_SHA256 and spec.weights.container == "model_state_dict"
    assert spec.weights.sources[0].url == ("https://github.com/laitifranz/Prompt2Guard/raw/main/checkpoints/"
                                           "best_results.tar")
    assert spec.card.licence == "MIT" and "CDDB" in spec.card.training_data
    src = spec.backbone.sources[0]
    assert (src.type, src.repo_id, src.filename) == ("hf", "timm/vit_base_patch16_clip_224.openai",
                                                     "open_clip_pytorch_model.bin")
    pp = spec.preprocess
    assert (pp.mode, pp.resize, pp.interpolation, pp.crop, pp.mean) == ("resize_crop", 256, "bicubic", 224,
                                                                        (0.485, 0.456, 0.406))
    assert spec.options["decision"] == "mix_top_mean"
    tf = get_spec("P2G:truefake")
    assert tf.weights.sources[0].type == "bundle" and tf.weights.sources[0].member == "detectors/P2G/checkpoint/pretrained/weights/best.pt"
    assert "bundle" in tf.card.notes and tf.ensemble_weight == pytest.approx(0.15)


def test_class_names():
    names = imagenet_classnames()
    assert len(names) == len(set(names)) == 1000
    assert (names[0], names[7], names[590], names[999]) == ("tench", "cock", "hand-held computer", "toilet paper")


def test_decision_option_is_read_and_validated():
    spec = get_spec("P2G")
    for rule in DECISIONS:     # a stub module is enough: the options are checked before any forward pass
        stub = P2GDetector(replace(spec, options={**spec.options, "decision": rule}), torch.nn.Identity())
        assert stub.decision == rule
    with pytest.raises(ConfigError, match="decision"):
        P2GDetector(replace(spec, options={"decision": "vote"}), torch.nn.Identity())
    with pytest.raises(ConfigError, match="prototype"):
        P2GDetector(replace(spec, options={"prototype": "both"}), torch.nn.Identity())


# --------------------------------------------------------------------------------------------- decision rules

@pytest.mark.parametrize("logits, expected", [
    # mean gap (0.2) > max gap (0.1): mix uses the mean pair
    ([[0.0, 0.3], [0.2, 0.3]], {"top1": 0.3, "max_pair": 0.1, "mean": 0.2, "mix_top_mean": 0.2, "task": 0,
                                "uses": "mean"}),
    # max gap (0.5) > mean gap (0.05): mix uses the max pair; top-1 task is the one holding the largest logit
    ([[0.5, 0.0], [-0.6, 0.0]], {"top1": -0.5, "max_pair": -0.5, "mean": 0.05, "mix_top_mean": -0.5, "task": 0,
                                 "uses": "max_pair"}),
    # equal gaps: upstream's strict '>' keeps the max pair
    ([[0.0, 0.1], [0.0, 0.1]], {"top1": 0.1, "max_pair": 0.1, "mean": 0.1, "mix_top_mean": 0.1, "task": 0,
                                "uses": "max_pair"}),
    ([[0.1, 0.0], [0.0, 0.4], [0.2, 0.1]], {"top1": 0.4, "max_pair": 0.2, "mean": 0.0666667, "mix_top_mean": 0.2,
                                            "task": 1, "uses": "max_pair"}),
])
def test_decisions(logits, expected):
    out = decisions(torch.tensor(logits))
    for rule in ("top1", "max_pair", "mean", "mix_top_mean"):
        assert out["logits"][rule] == pytest.approx(expected[rule], abs=1e-6), rule
    assert out["top1_task"] == expected["task"] and out["mix_top_mean_uses"] == expected["uses"]


# --------------------------------------------------------------------------------------------- checkpoints

def test_clean_backbone_state_dict():
    w = torch.ones(2)
    raw = {"module.visual.proj": w, "module.logit_scale": torch.ones(1), "module.input_resolution": torch.tensor(224),
           "module.context_length": torch.tensor(77), "module.vocab_size": torch.tensor(49408)}
    sd = clean_backbone_state_dict({"state_dict": raw})
    assert set(sd) == {"visual.proj", "logit_scale"} and sd["logit_scale"].shape == ()
    with pytest.raises(WeightsCorrupt):
        clean_backbone_state_dict({"visual.proj": "not a tensor"})


def test_backbone_with_other_key_names_is_refused(det):
    with pytest.raises(WeightsCorrupt, match="does not fit"):
        det.load_backbone({"blocks.0.attn.qkv.weight": torch.zeros(3)}, "timm_format.bin")


@pytest.mark.parametrize("mutate, match", [
    (lambda c: c["model_state_dict"].pop("prompt_learner.3.img_prompt"), "lacks"),
    (lambda c: c["model_state_dict"].__setitem__("prompt_learner.0.extra", torch.zeros(1)), "unexpected key"),
    (lambda c: c["model_state_dict"].__setitem__("prompt_learner.2.text_prompt", torch.zeros(6, 512)), "shape"),
    (lambda c: c.__setitem__("tasks", 2), "tasks"),
    (lambda c: c.__setitem__("ensembling_flags", [True, False, False, False]), "ensembling"),
    (lambda c: c["keys"].pop("fake_keys_one_cluster"), "fake_keys_one_cluster"),
    (lambda c: c["keys"].__setitem__("fake_keys_one_cluster", torch.zeros(4, 512)), "shape"),
    (lambda c: c.pop("keys"), "keys"),
])
def test_bad_checkpoints_are_refused_and_change_nothing(det, mutate, match):
    det.load_checkpoint(_checkpoint(5, seed=1), "good.tar")
    before = {k: v.clone() for k, v in det.model.state_dict().items() if k.startswith("prompt_learner.")}
    ckpt = _checkpoint(5, seed=2)
    mutate(ckpt)
    with pytest.raises(WeightsCorrupt, match=match):
        det.load_checkpoint(ckpt, "bad.tar")
    after = {k: v for k, v in det.model.state_dict().items() if k.startswith("prompt_learner.")}
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.slow
@pytest.mark.skipif(not CKPT.is_file(), reason=f"the real Prompt2Guard CDDB checkpoint {CKPT} is absent")
def test_real_checkpoint_loads_strictly_and_is_deterministic(det):
    det.load_checkpoint(load_checkpoint(CKPT), str(CKPT))
    assert det.checkpoint_info == {"tasks": 5, "K": 7, "topk_classes": 5,
                                   "run_name": "final_cddb/TN_batch2_K7_topk5_epochs20",
                                   "key_sets": ["all_keys_one_cluster", "fake_keys_one_cluster",
                                                "real_keys_one_cluster"]}
    assert all(v.dtype == torch.float32 for v in det.model.state_dict().values())
    image = _image(0)
    first, second = det.predict(image), det.predict(image)
    assert first.logit == second.logit and first.details == second.details
    d = first.details
    assert math.isfinite(first.logit) and 0.0 <= first.p_fake <= 1.0
    assert len(d["task_logits"]) == 5 and all(len(pair) == 2 and all(map(math.isfinite, pair))
                                              for pair in d["task_logits"])
    assert sum(d["task_weights"]) == pytest.approx(1.0, abs=1e-6)
    assert first.logit == d["logits"][d["decision"]] == d["logits"]["mix_top_mean"]
    assert set(d["p_fake"]) == {"top1", "max_pair", "mean", "mix_top_mean"}
    assert len(d["object_labels"]) == 5 and len(d["prompts"]) == 10
    assert d["task_names"] == ["gaugan", "biggan", "wild", "whichfaceisreal", "san"]
    assert first.input_size == (224, 224) and "CLIP" in first.preprocessing
    json.dumps(first.to_dict())                   # details are plain JSON (reports, CLI)


@pytest.mark.slow
def test_single_task_checkpoint_loads_and_scores(det, tmp_path):
    path = tmp_path / "best.pt"
    torch.save(_checkpoint(1, one_d_keys=True, seed=3), path)       # TrueFake bundle layout: keys [512]
    try:
        det.load_checkpoint(load_checkpoint(path), str(path))
        assert det.model.num_tasks == 1 and det.model.fake_keys_one_cluster.shape == (1, 512)
        result = det.predict(_image(1))
        d = result.details
        assert len(d["task_logits"]) == 1 and d["task_weights"] == [1.0]
        assert math.isfinite(result.logit)
        # one task: top-1, max pair and mean all pick the same (only) pair
        assert d["logits"]["top1"] == pytest.approx(d["logits"]["mean"]) == pytest.approx(result.logit)
        assert d["task_names"] == []              # the original variant's five names do not apply
    finally:
        det.load_checkpoint(_multi_task())


@pytest.mark.slow
def test_predict_batch_matches_predict(det):
    det.load_checkpoint(_multi_task())
    images = [_image(2), _image(3, size=(160, 240))]
    batch = det.predict_batch(images)
    for image, got in zip(images, batch):
        one = det.predict(image)
        assert abs(got.logit - one.logit) <= 1e-5
        assert np.max(np.abs(np.array(got.details["task_logits"]) - np.array(one.details["task_logits"]))) <= 1e-5
        assert np.max(np.abs(np.array(got.details["task_weights"]) - np.array(one.details["task_weights"]))) <= 1e-5
        assert [n for n, _ in got.details["object_labels"]] == [n for n, _ in one.details["object_labels"]]
        for (_, a), (_, b) in zip(got.details["object_labels"], one.details["object_labels"]):
            assert abs(a - b) <= 1e-3           # percent, rounded to 4 decimals: 1e-5 in probability


# --------------------------------------------------------------------------------------------- preprocessing

def test_prepare_gives_both_views(det):
    image = _image(4, size=(301, 217))
    prep = det.prepare(image)
    assert prep.tensor.shape == (3, 224, 224) and prep.aux["zs_input"].shape == (3, 224, 224)
    assert torch.equal(prep.aux["zs_input"], build_transform(ZERO_SHOT_PREPROCESS)(image).tensor)
    assert prep.resized and prep.input_size == (224, 224)
    assert "256" in prep.description and "CLIP" in prep.description
