"""The detector contract, checked for every variant the registry declares (a new YAML gets these tests for free).

Each variant: builds with random weights, scores a tiny generated image through the base interface (FACE: a
face-free image gives a ``no_face`` result), keeps the base class's method signatures, round-trips its checkpoint
layout (the state its weights file holds, saved in the declared container, loads strictly back; likewise the
backbone file for CLIP-D / P2G-style detectors) and has a complete model card with coverage.

Heavy backbones (CLIP ViT-L/14, ViT-B/16, DINOv2) are marked ``slow``; variants sharing an architecture and its
options share one built model (one build per session), and only the latest model is kept, so memory stays bounded.
"""
from __future__ import annotations

import copy
import inspect
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from core.models.checkpoint import load_checkpoint
from core.models.detectors.base import Detector
from core.models.factory import build_detector
from core.models.registry import list_specs
from core.models.specs import CONTENTS, WEAKNESSES, DetectorSpec
from core.results import DetectionResult

SPECS = list_specs()
# Architectures whose random build takes seconds and GBs (CLIP/ViT backbones).
HEAVY_ARCHS = {"clip_linear", "prompt2guard", "rine", "bfree"}
CONTAINER_KEY = {"model": "model", "model_state_dict": "model_state_dict", "state_dict": "state_dict",
                 "checkpoint": "model"}


def _params(spec: DetectorSpec):
    marks = [pytest.mark.slow] if spec.arch in HEAVY_ARCHS else []
    return pytest.param(spec, id=spec.key, marks=marks)


class _OneModel:
    """Session cache of the last built model, reused by every variant with the same architecture and options."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.det: Detector | None = None

    def get(self, spec: DetectorSpec) -> Detector:
        key = (spec.arch, json.dumps(spec.options, sort_keys=True, default=str), spec.preprocess)
        if key != self.key:
            self.det, self.key = None, None          # free the previous model before building the next
            torch.manual_seed(0)
            self.det, self.key = build_detector(spec), key
        det = copy.copy(self.det)                    # same model, this variant's spec (the rest is derived alike)
        det.spec = spec
        return det


@pytest.fixture(scope="session")
def built() -> _OneModel:
    return _OneModel()


@pytest.fixture(scope="session", params=[_params(s) for s in SPECS])
def variant(request, built) -> tuple[DetectorSpec, Detector]:
    """(spec, detector with random weights); session-scoped and parametrized, so pytest runs every test of one
    variant before building the next, and a model is built once per architecture and options."""
    return request.param, built.get(request.param)


def _image(size: tuple[int, int] = (256, 232), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


# ----------------------------------------------------------------------------------------------- card (cheap)

@pytest.mark.parametrize("spec", [pytest.param(s, id=s.key) for s in SPECS])
def test_model_card_and_coverage_are_complete(spec):
    for name in ("title", "paper", "code", "licence", "training_data"):
        assert getattr(spec.card, name).strip(), f"{spec.key}: card.{name} is empty ({spec.config_path})"
    cov = spec.coverage
    assert cov.content in CONTENTS and cov.generators, f"{spec.key}: coverage.generators is empty"
    # the user's own checkpoint ("custom"): its training date and source are unknown by design
    assert spec.variant == "custom" or (cov.trained_until is not None and 1990 <= cov.trained_until <= 2100), spec.key
    assert set(cov.weaknesses) <= set(WEAKNESSES) and (cov.min_side is None or cov.min_side > 0)
    assert (cov.content == "faces") == (spec.preprocess.mode == "face"), spec.key
    assert spec.weights is not None and (spec.weights.sources or spec.variant == "custom"), f"{spec.key}: no source"


# ----------------------------------------------------------------------------------------------- build + score

SIGNATURE_METHODS = ("predict", "predict_batch", "explain", "prepare", "batch", "forward", "score",
                     "load_checkpoint", "load_backbone")


def _shape(fn) -> list[tuple]:
    return [(p.kind, p.default is inspect.Parameter.empty) for p in inspect.signature(fn).parameters.values()]


def _check_result(spec: DetectorSpec, r: DetectionResult, image: Image.Image) -> None:
    assert r.detector_id == spec.id and r.variant == spec.variant and r.image_size == image.size
    if spec.preprocess.mode == "face":
        assert r.label == "no_face" and math.isnan(r.p_fake) and r.faces == ()
        return
    assert math.isfinite(r.logit) and 0.0 <= r.p_fake <= 1.0 and r.label in ("fake", "real")
    assert r.label == ("fake" if r.p_fake > spec.threshold else "real")


def test_builds_scores_and_keeps_the_interface(variant):
    spec, det = variant
    assert isinstance(det, Detector) and det.spec is spec and not det.model.training
    for name in SIGNATURE_METHODS:          # overrides keep the base signature (no extra required arguments)
        assert _shape(getattr(type(det), name)) == _shape(getattr(Detector, name)), f"{spec.key}.{name}"
    image = _image()
    result = det.predict(image)
    _check_result(spec, result, image)
    (again,) = det.predict_batch([image])
    assert again.label == result.label and (math.isnan(result.logit) or abs(again.logit - result.logit) < 1e-4)
    if spec.preprocess.mode != "face":      # forward works on what batch() builds, and agrees with predict
        with torch.inference_mode():
            logits = det.forward(det.batch([det.prepare(image)]))
        assert tuple(logits.shape) == (1,) and abs(float(logits[0]) - result.logit) < 1e-4, spec.key


# ----------------------------------------------------------------------------------------------- checkpoint layout

def _weights_state(det: Detector) -> dict[str, torch.Tensor]:
    """The state the variant's weights file holds, in the family's layout (what load_checkpoint reads)."""
    if hasattr(det.model, "prompt_learner"):                     # P2G: prompts + task keys (+ meta)
        return {k: v for k, v in det.model.state_dict().items() if k.startswith("prompt_learner.")}
    if hasattr(det.model, "trainable"):                          # RINE: only the trainable head
        return dict(det.model.trainable.state_dict())
    return dict(det.model.state_dict())


def _wrap(container: str, sd: dict, det: Detector) -> object:
    obj: dict = dict(sd) if container == "raw" else {CONTAINER_KEY[container]: dict(sd)}
    if hasattr(det.model, "prompt_learner"):
        n = len(det.model.prompt_learner)
        keys = torch.nn.functional.normalize(torch.randn(n, 512), dim=-1)
        obj.update(keys={"fake_keys_one_cluster": keys, "real_keys_one_cluster": keys, "all_keys_one_cluster": keys},
                   K=det.model.k, topk_classes=det.model.topk_classes, tasks=n - 1)
    return obj


def _backbone_file(det: Detector) -> dict[str, torch.Tensor]:
    """A backbone file in the declared layout: the built backbone's values, other keys of the layout random."""
    layout = getattr(det, "backbone_layout", None) or getattr(det.model, "backbone_layout", None)
    if layout is None:                                           # P2G: the OpenAI-named CLIP state dict itself
        return dict(det.model.clip.state_dict())
    known = (det.model.backbone_state_dict() if hasattr(det.model, "backbone_state_dict")
             else {f"visual.{k}": v for k, v in det.model.visual.state_dict().items()})
    return {k: known[k].clone() if k in known else torch.randn(shape) for k, shape in layout.items()}


def test_checkpoint_layout_round_trips(variant, tmp_path):
    spec, det = variant
    # shifted by 1e-3: enough to tell a loaded file from the model's own values, small enough to keep the shared
    # model usable by the next variant
    state = {k: (v.float() + 1e-3).to(v.dtype) if v.is_floating_point() else v.clone()
             for k, v in _weights_state(det).items()}
    path = tmp_path / spec.weights.file
    torch.save(_wrap(spec.weights.container, state, det), path)
    det.load_checkpoint(load_checkpoint(path, spec.id), str(path))
    after = _weights_state(det)
    assert set(after) == set(state), spec.key
    assert all(torch.allclose(after[k].float().cpu(), v.float()) for k, v in state.items()), spec.key
    if spec.backbone is not None:
        sd = _backbone_file(det)
        path = tmp_path / spec.backbone.file
        torch.save(sd if spec.backbone.container == "raw" else {CONTAINER_KEY[spec.backbone.container]: sd}, path)
        det.load_backbone(load_checkpoint(path, spec.id), str(path))
