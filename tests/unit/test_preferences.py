"""Remembered choices (core.preferences) and the defaults built on them (core.models.selection): a new session or
command starts on the remembered variant when it is installed, else the installed one; a hostile file means
defaults; downloads list sizes and licences first and fail fast when the host cannot be reached."""
from __future__ import annotations

import io
import json
import time

import pytest
from tests.helpers import make_tiny_checkpoint, png_bytes

from core import preferences, settings
from core.cli.common import ByteProgress
from core.cli.main import main
from core.errors import BadImage, DownloadError
from core.io import load_image
from core.models import install
from core.models import weights as W
from core.models.registry import get_spec
from core.models.selection import default_keys, default_variant, download_plan, resolve_key, size_text

TWO_VARIANTS = """\
id: TINY
arch: tiny_cnn
weights:
  file: tiny.pt
  container: model
  sources:
    - {type: url, url: "http://127.0.0.1:9/tiny.pt"}
  licence: Tiny licence 1.0
  note: "a tiny file (~2 MB)"
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


def _install(key: str, ckpt) -> None:
    install.import_file(ckpt, get_spec(key))


# --------------------------------------------------------------------------------------------- the file

def test_saved_variants_are_read_back_and_merged():
    assert preferences.load_variants() == {}
    assert preferences.save_variants({"R50_TF": "truefake"})
    assert preferences.save_variants({"NPR": "original_resize256"})
    assert preferences.load_variants() == {"R50_TF": "truefake", "NPR": "original_resize256"}
    path = settings.preferences_file()
    assert json.loads(path.read_text())["variants"]["R50_TF"] == "truefake"
    assert [p.name for p in path.parent.iterdir()] == [path.name]          # no temporary file left behind


@pytest.mark.parametrize("content", [
    b"not json at all", b"[1, 2, 3]", b'{"variants": ["R50_TF"]}', b'{"variants": {"R50_TF": 3}}',
    b'{"variants": {"R50_TF": "true\\nfake", "NPR": "' + b"x" * 200 + b'"}}', b"\xff\xfe\x00garbage",
    b'{"variants": {"a": "b"}, "pad": "' + b"x" * (preferences.MAX_FILE_BYTES + 10) + b'"}',
    b"[" * 100000,
])
def test_a_hostile_or_corrupt_file_means_defaults(content):
    path = settings.preferences_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    assert preferences.load_variants() == {}
    assert preferences.save_variants({"R50_TF": "truefake"})                 # and it is replaced, not trusted
    assert preferences.load_variants() == {"R50_TF": "truefake"}


def test_an_unwritable_folder_never_stops_the_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("DEEPFAKE_LENS_PREFERENCES", str(blocker / "sub" / "preferences.json"))
    assert preferences.save_variants({"R50_TF": "truefake"}) is False
    assert preferences.load_variants() == {}


# --------------------------------------------------------------------------------------------- defaults

def test_the_remembered_variant_wins_only_when_it_is_installed(two_variants):
    assert default_variant("TINY").key == "TINY:original"                  # nothing installed: the registry's
    preferences.save_variants({"TINY": "truefake"})
    assert default_variant("TINY").key == "TINY:truefake"                  # remembered, though not installed
    _install("TINY:original", two_variants)
    assert default_variant("TINY").key == "TINY:original"                  # installed beats not installed
    _install("TINY:truefake", two_variants)
    assert default_variant("TINY").key == "TINY:truefake"                  # both installed: the user's pick
    preferences.save_variants({"TINY": "gone"})                             # a variant removed from the YAML
    assert default_variant("TINY").key == "TINY:original"
    assert "TINY:original" in default_keys(installed_only=True)


def test_a_bare_id_on_the_command_line_means_the_installed_variant(two_variants, tmp_path, capsys):
    _install("TINY:truefake", two_variants)
    assert resolve_key("TINY") == "TINY:truefake" and resolve_key("TINY:original") == "TINY:original"
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((64, 64)))
    assert main(["report", str(img), "--out", str(tmp_path / "rep"), "--no-probe"]) == 0
    text = (tmp_path / "rep" / "report.json").read_text()
    assert "TINY:truefake" in text and "TINY:original" not in text


# --------------------------------------------------------------------------------------------- downloads

def test_the_download_plan_states_size_licence_and_source(two_variants):
    plan = download_plan()
    tiny = [it for it in plan if it.spec.id == "TINY"]
    assert [(it.spec.key, it.part, it.size, it.licence) for it in tiny] == \
        [("TINY:original", "weights", "~2 MB", "Tiny licence 1.0")]
    assert tiny[0].source == "URL http://127.0.0.1:9/tiny.pt"
    clip = [it for it in plan if it.spec.id == "CLIP-D" and it.part == "backbone"]
    assert clip and clip[0].size == "~1.7 GB"
    _install("TINY:truefake", two_variants)
    assert not [it for it in download_plan() if it.spec.id == "TINY"]      # an installed variant: nothing to fetch


def test_size_text_prefers_the_pinned_size():
    assert size_text(get_spec("R50_nodown:original").weights) == "282.5 MB"
    assert size_text(get_spec("CLIP-D:original").weights) == "5.2 kB"


def test_an_unreachable_host_fails_at_once_with_one_sentence(two_variants, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DEEPFAKE_LENS_OFFLINE", raising=False)
    t0 = time.perf_counter()
    with pytest.raises(DownloadError) as err:
        W.download(get_spec("TINY:original"))
    assert time.perf_counter() - t0 < 3
    assert "TINY: could not download tiny.pt: 127.0.0.1 cannot be reached (it refused the connection)." \
        in str(err.value)
    assert str(err.value).count("could not download") == 1 and "TINY: TINY" not in str(err.value)


def test_download_all_lists_first_then_reports_each_failure(two_variants, monkeypatch, capsys):
    assert main(["weights", "download-all", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "TINY:original" in out and "~2 MB" in out and "Tiny licence 1.0" in out and "~1.7 GB" in out
    monkeypatch.setattr("sys.stdin", io.StringIO(""))                       # not a terminal: no silent yes
    assert main(["weights", "download-all"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert main(["weights", "download-all", "--yes"]) == 2                  # offline in tests: every file fails
    cap = capsys.readouterr()
    assert "downloads are disabled (offline mode" in cap.err and "0 of" in cap.out


def test_a_byte_bar_prints_nothing_when_no_byte_arrived(capsys):
    bar = ByteProgress("x")
    bar.close()
    assert capsys.readouterr().err == ""
    bar = ByteProgress("y")
    bar.update(10, 10)
    bar.close()
    assert capsys.readouterr().err.count("y:") >= 1


# --------------------------------------------------------------------------------------------- naming

def test_an_image_error_names_the_file_it_was_given():
    with pytest.raises(BadImage, match=r"^preds\.csv: is not an image format"):
        load_image(b"path,label\na.png,0\n", name="preds.csv")
    with pytest.raises(BadImage, match=r"^the image: is not an image format"):
        load_image(b"path,label\na.png,0\n")


@pytest.mark.slow
def test_a_hub_download_draws_one_bar_ours(tmp_path, tiny_config):
    """huggingface_hub's own bar is replaced by ours (it used to print a second bar for the same file)."""
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT
    from tests.helpers.http_server import Route, serve
    data = make_tiny_checkpoint(tmp_path / "w.pt").read_bytes()
    (tiny_config / "tinyhub.yaml").write_text(
        "id: TINYHUB\nvariant: original\narch: tiny_cnn\n"
        "weights: {file: w.pt, container: model, sources: [{type: hf, repo_id: org/tiny, filename: w.pt}]}\n"
        "preprocess: {mode: full}\n")
    with serve({"/org/tiny/resolve/main/w.pt": Route(data, hub=True)}) as srv:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "DEEPFAKE_LENS_OFFLINE")}
        env.update(HF_ENDPOINT=srv.base, HF_HUB_CACHE=str(tmp_path / "hub"), DEEPFAKE_LENS_WEIGHTS=str(tmp_path / "w"),
                   DEEPFAKE_LENS_CONFIG_DIRS=str(tiny_config), HF_HUB_DISABLE_XET="1")
        out = subprocess.run([sys.executable, "-m", "core", "weights", "download", "TINYHUB"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "TINYHUB:original weights" in out.stderr and "100%" in out.stderr
    assert "w.pt:" not in out.stderr                                        # no huggingface_hub bar
