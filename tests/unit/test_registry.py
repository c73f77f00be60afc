"""Registry: scanning and validating YAMLs, listing, building, and the result contract."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from tests.helpers import TINY_YAML, make_tiny_checkpoint
from PIL import Image

from core import (
    ConfigError,
    UnknownDetector,
    WeightsCorrupt,
    WeightsUnavailable,
    create_detector,
    get_spec,
    list_detectors,
    list_specs,
)
from core.models import registry

SIX = ["CLIP-D", "R50_TF", "R50_nodown", "P2G", "NPR", "FACE"]


def test_the_six_paper_detectors_are_registered():
    ids = list_detectors()
    assert ids[:6] == SIX
    for det_id in SIX:
        spec = get_spec(det_id)
        assert spec.id == det_id and spec.variant == "original"
        assert spec.weights is not None and spec.weights.sources, det_id
        assert spec.card.paper and spec.card.code and spec.card.licence and spec.card.training_data, det_id


def test_every_shipped_spec_is_complete():
    for spec in list_specs():
        assert 0 < spec.threshold < 1
        assert spec.arch in registry.list_archs()
        assert spec.weights is not None
        for src in spec.weights.sources:
            assert src.describe()
    weights = {s.id: s.ensemble_weight for s in list_specs() if s.variant == "original"}
    assert weights["CLIP-D"] == 0.30 and weights["R50_TF"] == 0.25 and weights["R50_nodown"] == 0.20
    assert weights["P2G"] == 0.15 and weights["NPR"] == 0.10


def test_truefake_variants_are_separate_specs():
    for det_id in ("R50_nodown", "CLIP-D", "P2G", "NPR"):
        variants = {s.variant for s in list_specs(det_id)}
        assert {"original", "truefake"} <= variants, det_id
        tf = get_spec(f"{det_id}:truefake")
        assert any(src.type == "bundle" for src in tf.weights.sources)


def _write(d, name, text):
    (d / name).write_text(text)


@pytest.mark.parametrize("mutation, message", [
    (lambda y: y.replace("arch: tiny_cnn", "arch: no_such_arch"), "unknown architecture"),
    (lambda y: y.replace("threshold: 0.5", "threshold: 1.5"), "threshold"),
    (lambda y: y.replace("container: model", "container: pickle"), "container"),
    (lambda y: y.replace("mode: full", "mode: warp"), "preprocess.mode"),
    (lambda y: y + "colour: blue\n", "unknown key"),
    (lambda y: y.replace("id: TINY", "id: 'TI NY'"), "id"),
    (lambda y: y.replace('url: "http://127.0.0.1:9/tiny.pt"', 'url: "ftp://x/y"'), "url"),
    (lambda y: "id: [unclosed", "not valid YAML"),
])
def test_bad_config_names_file_and_field(tmp_path, monkeypatch, mutation, message):
    _write(tmp_path, "broken.yaml", mutation(TINY_YAML.format(weight=0.1)))
    monkeypatch.setenv("DEEPFAKE_LENS_CONFIG_DIRS", str(tmp_path))
    with pytest.raises(ConfigError) as exc:
        list_detectors()
    assert "broken.yaml" in str(exc.value) and message in str(exc.value)


def test_duplicate_id_is_refused(tmp_path, monkeypatch):
    _write(tmp_path, "a.yaml", TINY_YAML.format(weight=0.1))
    _write(tmp_path, "b.yaml", TINY_YAML.format(weight=0.2))
    monkeypatch.setenv("DEEPFAKE_LENS_CONFIG_DIRS", str(tmp_path))
    with pytest.raises(ConfigError, match="duplicate detector 'TINY:original'"):
        list_detectors()


def test_duplicate_arch_registration_is_refused():
    with pytest.raises(ValueError, match="duplicate arch"):
        registry.register_arch("tiny_cnn")(lambda spec, device="cpu": None)


def test_unknown_detector_and_variant(tiny_config):
    with pytest.raises(UnknownDetector, match="unknown detector 'NOPE'"):
        get_spec("NOPE")
    with pytest.raises(UnknownDetector, match="no variant 'x'"):
        get_spec("TINY:x")


def test_missing_weights_raise_with_what_was_tried(tiny_config, weights_home):
    with pytest.raises(WeightsUnavailable) as exc:
        create_detector("TINY")
    err = exc.value
    assert err.detector == "TINY" and err.tried and "weights import" in err.how_to_fix
    assert str(weights_home) in str(err)


def test_create_detector_loads_and_predicts(tiny_config, weights_home, tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "t.pt")
    det = create_detector("TINY", weights=ckpt)
    assert isinstance(det.model, torch.nn.Module) and not det.model.training
    ref = torch.load(ckpt, weights_only=True)["model"]
    assert all(torch.equal(det.model.state_dict()[k], v) for k, v in ref.items())
    r = det.predict(Image.new("RGB", (30, 20), (200, 10, 10)))
    assert dataclasses.is_dataclass(r) and r.detector_id == "TINY" and r.variant == "original"
    assert 0.0 <= r.p_fake <= 1.0 and math.isclose(r.p_fake, 1 / (1 + math.exp(-r.logit)), rel_tol=1e-9)
    assert r.label == ("fake" if r.p_fake > 0.5 else "real")
    assert r.input_size == (30, 20) and r.image_size == (30, 20) and r.crop_box is None and not r.resized
    assert r.elapsed_s >= 0 and r.weights_sha256 and len(r.weights_sha256) == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.p_fake = 0.0  # type: ignore[misc]


def test_large_images_get_the_seed_centre_crop(tiny_config, tmp_path):
    det = create_detector("TINY", weights=make_tiny_checkpoint(tmp_path / "t.pt"))
    r = det.predict(Image.new("RGB", (101, 80)))
    assert r.input_size == (64, 64) and r.crop_box == (18, 8, 82, 72)
    r = det.predict(Image.new("RGB", (101, 50)))      # only one side exceeds: no crop
    assert r.input_size == (101, 50) and r.crop_box is None


def test_predict_batch_equals_predict(tiny_config, tmp_path):
    det = create_detector("TINY", weights=make_tiny_checkpoint(tmp_path / "t.pt"))
    imgs = [Image.effect_noise((32 + 3 * (i % 2), 24), 40 + i).convert("RGB") for i in range(5)]
    batch = det.predict_batch(imgs, batch_size=2)
    assert len(batch) == 5
    for img, rb in zip(imgs, batch):
        rs = det.predict(img)
        assert abs(rs.logit - rb.logit) < 1e-5 and rs.input_size == rb.input_size


def test_wrong_architecture_checkpoint_is_refused(tiny_config, tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"model": {"conv1.weight": torch.zeros(8, 3, 3, 3)}}, bad)
    with pytest.raises(WeightsCorrupt) as exc:
        create_detector("TINY", weights=bad)
    assert "TINY" in str(exc.value) and "bad.pt" in str(exc.value) and "missing keys" in str(exc.value)


def test_result_to_dict_is_json_ready(tiny_config, tmp_path):
    import json
    det = create_detector("TINY", weights=make_tiny_checkpoint(tmp_path / "t.pt"))
    d = det.predict(Image.new("RGB", (16, 16))).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert {"detector_id", "logit", "p_fake", "label", "elapsed_s", "input_size", "crop_box"} <= set(d)
