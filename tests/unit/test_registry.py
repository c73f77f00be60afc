"""Registry: scanning and validating YAMLs, listing, building, and the result contract."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from tests.helpers import ROOT, TINY_YAML, make_tiny_checkpoint
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


# ------------------------------------------------------------------------------------ one YAML per id, variants

FAMILY_YAML = """\
id: FAM
order: 3
arch: tiny_cnn
ensemble_weight: 0.2
weights:
  file: base.pt
  container: model
  sha256: null
  git_blob_sha1: 2430d34a6d6a1143d46d4276a05536770b1a2a97
  sources: [{type: url, url: "http://127.0.0.1:9/base.pt"}]
preprocess: {mode: full, large_crop: 64, even_crop: true}
options: {a: 1, nested: {x: 1, y: 2}, names: [p, q]}
card: {title: Family, paper: P, code: C, licence: MIT, training_data: D}
coverage: {generators: [ProGAN], trained_until: 2017, weaknesses: [resize, jpeg], min_side: 64}
variants:
  original:
    default: true
  resized:
    weights: {shared_with: original}
    preprocess: {resize: [32, 32], large_crop: null}
  other:
    weights: {file: other.pt, git_blob_sha1: null, sources: [{type: bundle, member: "FAM/**/best.pt"}]}
    options: {nested: {y: null, z: 3}, names: [r]}
    card: {title: Family (other)}
    coverage: {generators: [FLUX.1], trained_until: 2024}
"""


def test_variants_inherit_from_the_top_level(tmp_path, monkeypatch):
    _write(tmp_path, "fam.yaml", FAMILY_YAML)
    monkeypatch.setenv("DEEPFAKE_LENS_CONFIG_DIRS", str(tmp_path))
    assert [s.variant for s in list_specs("FAM")] == ["original", "other", "resized"]
    orig, resized, other = get_spec("FAM"), get_spec("FAM:resized"), get_spec("FAM:other")
    assert orig.default and not resized.default and orig.ensemble_weight == other.ensemble_weight == 0.2
    assert resized.weights.file == "base.pt" and resized.weights.shared_with == "original"
    assert resized.weights.sources == orig.weights.sources and resized.weights.container == "model"
    # a variant's mapping merges into the top level; a scalar replaces; null drops the inherited key
    assert resized.preprocess.resize == (32, 32) and resized.preprocess.large_crop is None
    assert resized.preprocess.even_crop and orig.preprocess.large_crop == 64 and orig.preprocess.resize is None
    assert other.weights.file == "other.pt" and other.weights.git_blob_sha1 is None
    assert [src.type for src in other.weights.sources] == ["bundle"]        # lists replace, never append
    assert other.options == {"a": 1, "nested": {"x": 1, "z": 3}, "names": ["r"]}
    assert orig.options == {"a": 1, "nested": {"x": 1, "y": 2}, "names": ["p", "q"]}
    assert other.card.title == "Family (other)" and other.card.paper == "P"
    assert other.coverage.generators == ("FLUX.1",) and other.coverage.trained_until == 2024
    assert other.coverage.weaknesses == ("resize", "jpeg") and other.coverage.min_side == 64
    assert orig.coverage.generators == ("ProGAN",) and orig.config_path.endswith("fam.yaml")


def test_merge_semantics():
    from core.models.specs import merge
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    out = merge(base, {"a": {"y": [3], "z": None}, "b": None, "c": {"d": 1}})
    assert out == {"a": {"x": 1, "y": [3]}, "c": {"d": 1}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}                    # the base is never modified


@pytest.mark.parametrize("mutation, message", [
    (lambda y: y.replace("    coverage: {generators: [FLUX.1]", "    coverage: {content: video, generators: [FLUX.1]"),
     "variant 'other': field 'coverage.content'"),
    (lambda y: y.replace("container: model", "container: pickle"), "variant 'original': field 'weights.container'"),
    (lambda y: y.replace("weights: {shared_with: original}", "weights: {container: zip}"),
     "variant 'resized': field 'weights.container'"),
    (lambda y: y.replace("weaknesses: [resize, jpeg]", "weaknesses: [blur]"), "field 'coverage.weaknesses'"),
    (lambda y: y.replace("trained_until: 2017", "trained_until: recent"), "field 'coverage.trained_until'"),
    (lambda y: y.replace("order: 3", "order: first"), "field 'order'"),
    (lambda y: y.replace("id: FAM\n", "id: FAM\nvariant: original\n"), "field 'variant': not allowed beside"),
    (lambda y: y.replace("id: FAM\n", "id: FAM\ndefault: true\n"), "field 'default': not allowed beside"),
    (lambda y: y.replace("  resized:\n", "  resized:\n    id: OTHER\n"), "variant 'resized': field 'id'"),
    (lambda y: y.replace("  resized:\n", "  'res ized':\n"), "field 'variants'"),
    (lambda y: y.replace("  other:\n", "  other:\n    default: true\n"), "more than one default"),
    (lambda y: y.replace("  other:\n", "  other:\n    colour: blue\n"), "variant 'other': field '<top>'"),
    (lambda y: y.replace("arch: tiny_cnn", "arch: no_such"), "variant 'original': field 'arch': unknown architecture"),
])
def test_variant_errors_name_file_variant_and_field(tmp_path, monkeypatch, mutation, message):
    _write(tmp_path, "fam.yaml", mutation(FAMILY_YAML))
    monkeypatch.setenv("DEEPFAKE_LENS_CONFIG_DIRS", str(tmp_path))
    with pytest.raises(ConfigError) as exc:
        list_detectors()
    assert "fam.yaml" in str(exc.value) and message in str(exc.value), str(exc.value)


@pytest.mark.parametrize("source, message", [
    ('{type: url, url: "https://x/a.zip", member: "w/best.pt", archive_md5: 20febd0ca0a4ddb22848a0961b5c6c59}', None),
    ('{type: url, url: "https://x/a.zip", member: "../best.pt"}', "sources[0].member"),
    ('{type: url, url: "https://x/a.zip", member: "/etc/best.pt"}', "sources[0].member"),
    ('{type: url, url: "https://x/a.zip", member: "w/best.pt", archive_md5: XYZ}', "sources[0].archive_md5"),
    ('{type: url, url: "https://x/a.zip", archive_md5: 20febd0ca0a4ddb22848a0961b5c6c59}', "sources[0].archive_md5"),
    ('{type: hf, repo_id: o/r, filename: f.pt, member: "w/best.pt"}', "unknown key"),
])
def test_url_sources_may_name_a_zip_member(tmp_path, monkeypatch, source, message):
    from core.models.specs import load_spec_file
    path = tmp_path / "z.yaml"
    path.write_text(TINY_YAML.format(weight=0.1).replace('{type: url, url: "http://127.0.0.1:9/tiny.pt"}', source))
    if message is None:
        (spec,) = load_spec_file(path)
        src = spec.weights.sources[0]
        assert (src.member, src.archive_md5) == ("w/best.pt", "20febd0ca0a4ddb22848a0961b5c6c59")
        assert "member w/best.pt" in src.describe()
    else:
        with pytest.raises(ConfigError, match="z.yaml: variant 'original'") as exc:
            load_spec_file(path)
        assert message in str(exc.value)


def test_a_file_without_variants_is_one_variant(tmp_path):
    from core.models.specs import Coverage, load_spec_file
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_YAML.format(weight=0.1))
    (spec,) = load_spec_file(path)
    assert spec.key == "TINY:original" and spec.default and spec.coverage == Coverage() and spec.order is None


def test_display_order_comes_from_the_yamls(tmp_path, monkeypatch):
    _write(tmp_path, "fam.yaml", FAMILY_YAML.replace("order: 3", "order: 15"))       # between CLIP-D and R50_TF
    _write(tmp_path, "tiny.yaml", TINY_YAML.format(weight=0.1))                      # no order: after, by name
    _write(tmp_path, "aaa.yaml", TINY_YAML.format(weight=0.1).replace("id: TINY", "id: AAA"))
    monkeypatch.setenv("DEEPFAKE_LENS_CONFIG_DIRS", str(tmp_path))
    ids = list_detectors()
    assert [i for i in ids if i in SIX or i == "FAM"] == ["CLIP-D", "FAM", "R50_TF", "R50_nodown", "P2G", "NPR", "FACE"]
    assert ids[-2:] == ["AAA", "TINY"]


def test_spec_parsing_needs_no_torch():
    import subprocess
    import sys
    code = ("import sys; from core import settings; from core.models.specs import scan_specs; "
            "specs = scan_specs([settings.DETECTOR_CONFIG_DIR]); assert len(specs) >= 12, specs; "
            "assert 'torch' not in sys.modules, 'torch loaded'")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr


def test_shipped_variants_inherit_what_they_do_not_state():
    npr, npr256, nprtf = get_spec("NPR"), get_spec("NPR:original_resize256"), get_spec("NPR:truefake")
    assert npr.preprocess.large_crop == 1024 and npr256.preprocess.large_crop is None
    assert npr256.weights.file == npr.weights.file == "NPR.pth" and npr256.weights.shared_with == "original"
    assert nprtf.weights.git_blob_sha1 is None and npr.weights.git_blob_sha1
    p2g, p2gtf = get_spec("P2G"), get_spec("P2G:truefake")
    assert p2gtf.options["num_tasks"] == 1 and p2gtf.options["K"] == p2g.options["K"] == 7
    assert p2gtf.backbone.sources == p2g.backbone.sources and p2gtf.weights.sha256 is None
    assert {s.config_path.rsplit("/", 1)[-1] for s in list_specs()} >= {
        "clip_d.yaml", "r50_tf.yaml", "r50_nodown.yaml", "p2g.yaml", "npr.yaml", "face.yaml"}
    assert get_spec("FACE").coverage.content == "faces"
    assert all(s.coverage.content == "whole_image" for s in list_specs() if s.id in SIX[:5])


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
    # an explicit file that is not the variant's declared checkpoint is reported as custom weights
    assert dataclasses.is_dataclass(r) and r.detector_id == "TINY" and r.variant == "custom"
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
