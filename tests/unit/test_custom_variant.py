"""Bring-your-own checkpoint: ``weights import FILE --detector ID --as custom [--name NAME]`` checks the architecture
strictly, records the name and the sha256 of the bytes, and every output calls it custom with that name; a file given
with ``--weights`` is a "custom file", never the official variant."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from tests.helpers import make_tiny_checkpoint, png_bytes

from core.cli.main import main
from core.errors import UnknownDetector, WeightsCorrupt
from core.models import install
from core.models import weights as W
from core.models.factory import create_detector
from core.models.registry import get_spec, list_specs
from core.models.selection import installed_variant

TINY_CUSTOM = ("id: TINY\nvariant: custom\narch: tiny_cnn\npreprocess: {mode: full, large_crop: 64}\n"
               "weights: {file: custom.pt, container: checkpoint}\n"
               "card: {title: TINY (custom), licence: unknown, training_data: unknown}\n")


@pytest.fixture()
def custom(tiny_config, weights_home):
    (tiny_config / "tiny_custom.yaml").write_text(TINY_CUSTOM)
    return get_spec("TINY:custom")


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_sentence(err: str, *phrases: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for p in phrases:
        assert p in lines[0], lines[0]


def test_every_shipped_detector_has_a_custom_variant_labelled_as_such():
    for det_id in {s.id for s in list_specs()}:
        spec = get_spec(det_id, "custom")
        assert spec.weights.sources == () and spec.weights.sha256 is None and not spec.default
        assert "custom" in spec.card.title and spec.card.training_data.startswith("unknown")
        assert spec.coverage.generators == ("unknown (your own training data)",)
        assert spec.arch == get_spec(det_id).arch
        assert "--as custom" in W.how_to_fix(spec)


def test_truefake_cards_say_which_script_their_scores_follow():
    for det_id in ("CLIP-D", "NPR", "P2G", "R50_nodown", "R50_TF"):
        notes = get_spec(det_id, "truefake").card.notes
        assert "library's test.py" in notes and "not the detect.py" in notes, det_id
    assert get_spec("CLIP-D:truefake").weights.container == "model"


def test_cli_import_records_name_and_hash_and_every_output_says_custom(custom, weights_home, tmp_path, capsys):
    src = make_tiny_checkpoint(tmp_path / "finetuned-v2.pt", seed=4)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    code, out, err = _run(capsys, "weights", "import", str(src), "--detector", "TINY", "--as", "custom",
                          "--name", "lab fine-tune v2")
    assert code == 0, err
    assert 'TINY:custom (weights) as custom "lab fine-tune v2"' in out and digest in out
    dest = weights_home / "TINY" / "custom" / "custom.pt"
    assert dest.read_bytes() == src.read_bytes()
    side = json.loads(dest.with_name("custom.pt.sha256.json").read_text())
    assert side["name"] == "lab fine-tune v2" and side["sha256"] == digest and side["source"] == "finetuned-v2.pt"
    # list
    code, out, _ = _run(capsys, "list")
    line = next(l for l in out.splitlines() if l.split()[:2] == ["TINY", "custom"])
    assert "installed" in line and 'custom "lab fine-tune v2"' in line
    # weights status (table and JSON)
    code, out, _ = _run(capsys, "weights", "status")
    assert 'custom "lab fine-tune v2"' in next(l for l in out.splitlines() if l.split()[:2] == ["TINY", "custom"])
    code, out, _ = _run(capsys, "weights", "status", "--json")
    row = next(r for r in json.loads(out) if (r["detector"], r["variant"]) == ("TINY", "custom"))
    assert row["label"] == 'custom "lab fine-tune v2"' and row["sha256"] == digest
    # detect
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes())
    code, out, err = _run(capsys, "detect", str(img), "--detector", "TINY:custom", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["variant"] == "custom" and res["details"]["weights"] == "custom file lab fine-tune v2"
    assert res["weights_sha256"] == digest
    # report
    code, _, err = _run(capsys, "report", str(img), "--out", str(tmp_path / "rep"), "--detectors", "TINY:custom")
    assert code == 0, err
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    (d,) = [d for d in rep["detectors"] if d["detector_id"] == "TINY"]
    assert d["variant"] == "custom" and d["details"]["weights"] == "custom file lab fine-tune v2"
    assert d["weights_sha256"] == digest and "unknown" in d["model_card"]["training_data"]


def test_name_defaults_to_the_file_name_and_a_new_import_replaces_it(custom, weights_home, tmp_path):
    first = install.import_custom(make_tiny_checkpoint(tmp_path / "alpha.pt", seed=1), "TINY")
    assert first.name == "alpha" and install.custom_label(custom) == 'custom "alpha"'
    second = install.import_custom(make_tiny_checkpoint(tmp_path / "beta.pt", seed=2), "TINY:custom", name=" beta ")
    assert second.name == "beta" and second.sha256 != first.sha256
    assert create_detector("TINY:custom").custom_weights == "beta"


def test_a_custom_file_is_checked_strictly(custom, weights_home, tmp_path, capsys):
    from core.models.detectors.tiny import TinyCNN
    sd = TinyCNN().state_dict()
    cases = {
        "wrong_shape.pt": ({"model": {**sd, "fc.weight": torch.zeros(1, 3)}}, "does not fit the TINY architecture"),
        "extra_key.pt": ({**sd, "head.extra": torch.zeros(2)}, "unexpected keys"),
        "missing_key.pt": ({k: v for k, v in sd.items() if k != "fc.bias"}, "missing keys"),
        "nan.pt": ({k: torch.full_like(v, float("nan")) for k, v in sd.items()}, "NaN or infinite"),
        "int.pt": ({k: v.to(torch.int64) for k, v in sd.items()}, "where the model expects floating-point"),
        "complex.pt": ({k: v.to(torch.complex64) for k, v in sd.items()}, "complex"),
    }
    for fname, (obj, phrase) in cases.items():
        torch.save(obj, tmp_path / fname)
        code, _, err = _run(capsys, "weights", "import", str(tmp_path / fname), "--detector", "TINY", "--as", "custom")
        assert code == 2, fname
        _one_sentence(err, "TINY", fname, phrase)
    assert not (weights_home / "TINY").exists() and not list(weights_home.glob(".import-*"))


@pytest.mark.parametrize("args, phrase", [
    (["--detector", "TINY:original", "--as", "custom"], "give --detector TINY, not TINY:original"),
    (["--as", "custom"], "need --detector ID"),
    (["--detector", "TINY", "--name", "x"], "use it with --as custom"),
    (["--detector", "TINY", "--as", "custom", "--name", "a\x1bb"], "printable characters"),
    (["--detector", "TINY", "--as", "custom", "--name", "n" * 65], "1 to 64"),
    (["--detector", "TINY", "--as", "custom", "--part", "backbone"], "--as custom installs"),
    (["--detector", "NOPE", "--as", "custom"], "unknown detector 'NOPE'"),
])
def test_custom_route_user_errors(custom, tmp_path, capsys, args, phrase):
    src = make_tiny_checkpoint(tmp_path / "mine.pt")
    code, _, err = _run(capsys, "weights", "import", str(src), *args)
    assert code == 2
    _one_sentence(err, phrase)


def test_as_takes_only_custom(custom, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["weights", "import", str(make_tiny_checkpoint(tmp_path / "m.pt")), "--detector", "TINY", "--as", "x"])
    assert exc.value.code == 2
    _one_sentence(capsys.readouterr().err, "invalid choice")


def test_a_detector_without_a_custom_variant_says_how_to_add_one(tiny_config, tmp_path, capsys):
    src = make_tiny_checkpoint(tmp_path / "mine.pt")
    code, _, err = _run(capsys, "weights", "import", str(src), "--detector", "TINY", "--as", "custom")
    assert code == 2
    _one_sentence(err, "TINY has no custom variant")
    with pytest.raises(UnknownDetector):
        install.custom_spec("TINY")


def test_a_real_architecture_custom_file_fits_or_says_why(weights_home, tmp_path):
    from core.models.factory import build_detector
    npr = build_detector(get_spec("NPR")).model.state_dict()
    torch.save({"model": npr, "epoch": torch.tensor(3)}, tmp_path / "npr_ft.pth")
    rep = install.import_custom(tmp_path / "npr_ft.pth", "NPR", name="NPR fine-tuned on our cameras")
    assert rep.key == "NPR:custom" and rep.path == weights_home / "NPR" / "custom" / "custom.pt"
    torch.save({"fc.weight": torch.zeros(1, 1024), "fc.bias": torch.zeros(1)}, tmp_path / "clip_head.pth")
    with pytest.raises(WeightsCorrupt, match="clip_head.pth does not fit the NPR architecture"):
        install.import_custom(tmp_path / "clip_head.pth", "NPR")


def test_official_variants_are_preferred_and_custom_is_used_when_alone(custom, weights_home, tmp_path):
    install.import_custom(make_tiny_checkpoint(tmp_path / "mine.pt"), "TINY")
    assert installed_variant("TINY").key == "TINY:custom"
    install.import_file(make_tiny_checkpoint(tmp_path / "official.pt", seed=9), get_spec("TINY"))
    assert installed_variant("TINY").key == "TINY:original"


def test_a_replaced_custom_file_is_caught_and_loses_its_name(custom, weights_home, tmp_path):
    rep = install.import_custom(make_tiny_checkpoint(tmp_path / "mine.pt"), "TINY", name="mine")
    make_tiny_checkpoint(rep.path, seed=7)                             # someone overwrites it in place
    assert W.status(custom).state == "corrupt" and "changed since it was imported" in W.status(custom).message
    assert create_detector("TINY:custom").custom_weights == "custom.pt"


def test_weights_path_results_say_custom_file_through_the_cli(tiny_config, weights_home, tmp_path, capsys):
    install.import_file(make_tiny_checkpoint(tmp_path / "official.pt"), get_spec("TINY"))
    mine = make_tiny_checkpoint(tmp_path / "my_weights.pt", seed=5)
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes())
    code, out, err = _run(capsys, "detect", str(img), "--detector", "TINY", "--weights", f"TINY={mine}", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["variant"] == "custom" and res["details"]["weights"] == "custom file my_weights.pt"
    code, out, err = _run(capsys, "detect", str(img), "--detector", "ALL", "--weights", f"TINY={mine}", "--json")
    assert code == 0, err
    (r,) = [r for r in json.loads(out)["results"] if r["detector_id"] == "TINY"]
    assert r["variant"] == "custom" and r["details"]["weights"] == "custom file my_weights.pt"
    assert r["weights_sha256"] == hashlib.sha256(mine.read_bytes()).hexdigest()
    # without --weights the installed official file is used and named as such
    code, out, _ = _run(capsys, "detect", str(img), "--detector", "TINY", "--json")
    res = json.loads(out)
    assert res["variant"] == "original" and "weights" not in res["details"]
