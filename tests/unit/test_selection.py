"""Which variant runs by default: the installed one (the original when both are), never a missing one."""
from __future__ import annotations

import json

import pytest
from PIL import Image
from tests.helpers import make_tiny_checkpoint

from core.cli.main import main
from core.models import install
from core.models.registry import get_spec
from core.models.selection import installed_variant, installed_variants, variant_state

TWO_VARIANTS = """\
id: TINY
arch: tiny_cnn
weights:
  file: tiny.pt
  container: model
  sources:
    - {type: url, url: "http://127.0.0.1:9/tiny.pt"}
preprocess: {mode: full, large_crop: 64}
ensemble_weight: 0.5
card: {title: Tiny test detector, paper: none, licence: MIT, training_data: none}
variants:
  original:
    default: true
  truefake: {}
"""


@pytest.fixture()
def two_variants(tiny_config, weights_home, tmp_path):
    (tiny_config / "tiny.yaml").write_text(TWO_VARIANTS)
    return make_tiny_checkpoint(tmp_path / "t.pt")


def _install(key: str, ckpt, weights_home) -> None:
    install.import_file(ckpt, get_spec(key), weights_dir=weights_home)


def test_nothing_installed_means_no_default(two_variants):
    assert installed_variant("TINY") is None
    assert "TINY" not in [s.id for s in installed_variants()]
    vs = variant_state(get_spec("TINY:original"))
    assert vs.state == "missing" and not vs.installed and vs.problems() == "weights missing"


def test_the_only_installed_variant_is_the_default_even_when_not_the_registry_default(two_variants, weights_home):
    _install("TINY:truefake", two_variants, weights_home)
    assert installed_variant("TINY").key == "TINY:truefake"
    assert [s.key for s in installed_variants() if s.id == "TINY"] == ["TINY:truefake"]


def test_the_original_wins_when_both_are_installed(two_variants, weights_home):
    _install("TINY:truefake", two_variants, weights_home)
    _install("TINY:original", two_variants, weights_home)
    assert installed_variant("TINY").key == "TINY:original"
    assert variant_state(get_spec("TINY:original")).installed


def test_report_without_detectors_uses_the_installed_variant(two_variants, weights_home, tmp_path, capsys):
    """The CLI used to take the default variant, find it missing and list an installed detector as not run."""
    _install("TINY:truefake", two_variants, weights_home)
    img = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (120, 30, 60)).save(img)
    assert main(["report", str(img), "--out", str(tmp_path / "o"), "--no-probe"]) == 0
    d = json.loads((tmp_path / "o" / "report.json").read_text())
    assert [(r["detector_id"], r["variant"]) for r in d["detectors"]] == [("TINY", "truefake")]
    assert "TINY" not in d["not_run"]
    assert d["not_run"]["NPR"].startswith("weights not installed")     # the real detectors have no weights here


def test_report_weights_option_picks_the_named_variant(two_variants, weights_home, tmp_path):
    """``--weights ID:variant=PATH`` replaces the installed variant of that id rather than adding a second one."""
    _install("TINY:original", two_variants, weights_home)
    img = tmp_path / "x.png"
    Image.new("RGB", (40, 40)).save(img)
    ckpt = make_tiny_checkpoint(tmp_path / "other.pt", bias=4.0)
    assert main(["report", str(img), "--out", str(tmp_path / "o"), "--no-probe",
                 "--weights", f"TINY:truefake={ckpt}"]) == 0
    d = json.loads((tmp_path / "o" / "report.json").read_text())
    # one TINY row (the file given, labelled as the user's own file), not the installed original beside it
    assert [(r["detector_id"], r["label"]) for r in d["detectors"]] == [("TINY", "fake")]
    assert d["detectors"][0]["variant"] != "original"


def test_list_uses_the_same_state(two_variants, weights_home, capsys):
    _install("TINY:truefake", two_variants, weights_home)
    assert main(["list"]) == 0
    lines = {tuple(line.split()[:2]): line.split()[2] for line in capsys.readouterr().out.splitlines()}
    assert lines[("TINY", "truefake")] == "installed" and lines[("TINY", "original")] == "missing"
