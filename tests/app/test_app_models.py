"""AppTest of the Models page: server paths only with DEEPFAKE_LENS_DATA_ROOT and only inside it; uploads always;
the custom route labelled with the user's name, shown as plain text."""
from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import streamlit as st
from tests.helpers import make_tiny_checkpoint
from streamlit.testing.v1 import AppTest

from core.models import weights as W
from core.models.registry import get_spec

ROOT = Path(__file__).resolve().parents[2]
PATH_KEY = "models.TINY:original.weights.path"
CUSTOM_YAML = ("id: TINY\nvariant: custom\narch: tiny_cnn\npreprocess: {mode: full, large_crop: 64}\n"
               "weights: {file: custom.pt, container: checkpoint}\n"
               "card: {title: TINY (custom), licence: unknown, training_data: unknown}\n")


@pytest.fixture(autouse=True)
def _fresh(weights_home, tiny_config, monkeypatch):
    monkeypatch.delenv("DEEPFAKE_LENS_DATA_ROOT", raising=False)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield


def _models() -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=180).run()
    at.switch_page("pages/5_Models.py").run()
    assert not at.exception, at.exception
    return at


def _keys(widgets) -> set[str]:
    return {w.key for w in widgets}


def _import_path(at: AppTest, key_base: str, path: str) -> AppTest:
    at.text_input(key=key_base + ".path").input(path).run()
    at.button(key=key_base + ".import").click().run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(t.value) for t in list(at.text) + list(at.error) + list(at.success) + list(at.caption))


def test_without_a_data_root_there_is_no_server_path_input_but_uploads_work(tmp_path, tiny_config):
    (tiny_config / "tiny_custom.yaml").write_text(CUSTOM_YAML)
    at = _models()
    keys = _keys(at.text_input)
    assert PATH_KEY not in keys and "models.bundle_path" not in keys
    assert not any(k.endswith(".path") for k in keys if k)
    assert "DEEPFAKE_LENS_DATA_ROOT" in _texts(at)
    assert {"models.bundle_upload", "models.TINY:original.weights.up"} <= _keys(at.file_uploader)
    data = make_tiny_checkpoint(tmp_path / "up.pt").read_bytes()
    at.file_uploader(key="models.TINY:custom.weights.up").upload("my **bold** [x].pt", data,
                                                                  "application/octet-stream")
    at.run()
    at.button(key="models.TINY:custom.weights.import").click().run()
    assert not at.exception, at.exception
    assert any(s.value == "Installed TINY:custom." for s in at.success)
    # the uploaded name becomes the default custom name, shown as plain text only
    assert any('as custom "my **bold** [x]"' in t.value for t in at.text)
    assert not any("**bold**" in str(m.value) for m in at.markdown)
    assert W.status(get_spec("TINY:custom")).state == "installed"


def test_a_path_outside_the_data_root_is_one_sentence(tmp_path, weights_home, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    outside = make_tiny_checkpoint(tmp_path / "outside.pt")
    (root / "link.pt").symlink_to(outside)                          # a link inside pointing outside
    monkeypatch.setenv("DEEPFAKE_LENS_DATA_ROOT", str(root))
    at = _models()
    assert PATH_KEY in _keys(at.text_input) and "models.bundle_path" in _keys(at.text_input)
    for attempt in (str(outside), "../outside.pt", str(root / ".." / "outside.pt"), "link.pt", "/etc"):
        _import_path(at, "models.TINY:original.weights", attempt)
        assert at.error and at.error[-1].value == "Not imported."
        said = [t.value for t in at.text]
        assert any("outside the data folder" in t for t in said), (attempt, said)
    assert W.status(get_spec("TINY")).state == "missing"
    # the bundle path is confined the same way
    at.text_input(key="models.bundle_path").input("/etc/ssl").run()
    at.button(key="models.bundle_go").click().run()
    assert any("outside the data folder" in t.value for t in at.text)


def test_a_path_inside_the_data_root_is_imported(tmp_path, weights_home, monkeypatch):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    make_tiny_checkpoint(root / "sub" / "mine.pt")
    monkeypatch.setenv("DEEPFAKE_LENS_DATA_ROOT", str(root))
    at = _models()
    _import_path(at, "models.TINY:original.weights", "sub/mine.pt")        # relative to the data folder
    assert any(s.value == "Installed TINY:original." for s in at.success)
    assert W.status(get_spec("TINY")).state == "installed"
    _import_path(at, "models.TINY:original.weights", "sub/missing.pt")
    assert any("not found in the data folder" in t.value for t in at.text)


def test_bundle_and_custom_imports_from_the_data_root(tmp_path, weights_home, tiny_config, monkeypatch):
    (tiny_config / "tiny_custom.yaml").write_text(CUSTOM_YAML)
    (tiny_config / "tiny_tf.yaml").write_text(
        "id: TINY\nvariant: truefake\narch: tiny_cnn\npreprocess: {mode: full}\n"
        "weights: {file: best.pt, container: model, sources: [{type: bundle, member: 'models/TINY/weights/best.pt'}]}\n")
    root = tmp_path / "data"
    root.mkdir()
    ck = make_tiny_checkpoint(tmp_path / "ck.pt").read_bytes()
    with zipfile.ZipFile(root / "bundle.zip", "w") as zf:
        zf.writestr("models/TINY/weights/best.pt", ck)
        zf.writestr("models/TINY/weights/[x](javascript:alert).pt", b"junk")
    make_tiny_checkpoint(root / "ft.pt", seed=3)
    monkeypatch.setenv("DEEPFAKE_LENS_DATA_ROOT", str(root))
    at = _models()
    at.text_input(key="models.bundle_path").input("bundle.zip").run()
    at.button(key="models.bundle_go").click().run()
    assert not at.exception
    assert any(s.value == "Installed TINY:truefake." for s in at.success)
    # the hostile member name is shown as plain text, never as Markdown
    assert any("[x](javascript:alert).pt: not at a known bundle layout" in t.value for t in at.text)
    assert not any("javascript" in str(m.value) for m in at.markdown)
    base = "models.TINY:custom.weights"
    at.text_input(key=base + ".name").input("**bold** lab model").run()
    _import_path(at, base, "ft.pt")
    assert any(s.value == "Installed TINY:custom." for s in at.success)
    assert any('as custom "**bold** lab model"' in t.value for t in at.text)
    at.run()
    assert any(t.value == 'custom "**bold** lab model"' for t in at.text)     # the expander shows the name as text
