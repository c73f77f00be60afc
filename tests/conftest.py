"""Shared fixtures: offline by default, an isolated weights folder, and a tiny registered test detector."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TINY_YAML, install_tiny_detectors, make_tiny_checkpoint, png_bytes  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")        # tests never reach the Hub
os.environ.setdefault("DEEPFAKE_LENS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_score_cache(tmp_path_factory, monkeypatch):
    """Evaluation's score cache and the remembered preferences never touch the home folder during tests."""
    monkeypatch.setenv("DEEPFAKE_LENS_CACHE", str(tmp_path_factory.mktemp("score-cache")))
    monkeypatch.setenv("DEEPFAKE_LENS_PREFERENCES", str(tmp_path_factory.mktemp("prefs") / "preferences.json"))


@pytest.fixture()
def weights_home(tmp_path, monkeypatch) -> Path:
    """An empty, isolated weights folder (DEEPFAKE_LENS_WEIGHTS) and Hub cache."""
    wd = tmp_path / "weights"
    wd.mkdir()
    monkeypatch.setenv("DEEPFAKE_LENS_WEIGHTS", str(wd))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    return wd


@pytest.fixture()
def tiny_config(tmp_path, monkeypatch) -> Path:
    """Register the TINY test detector (tiny_cnn arch) through DEEPFAKE_LENS_CONFIG_DIRS."""
    d = tmp_path / "configs"
    d.mkdir()
    (d / "tiny.yaml").write_text(TINY_YAML.format(weight=0.5))
    monkeypatch.setenv("DEEPFAKE_LENS_CONFIG_DIRS", str(d))
    return d




_FOLDER_MARKERS = {"golden": ("golden", "slow"), "app": ("app",), "e2e": ("e2e", "slow")}


def pytest_collection_modifyitems(config, items):
    """Mark tests by folder (tests/golden → golden + slow, tests/app → app, tests/e2e → e2e + slow) for the lanes."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        for folder, markers in _FOLDER_MARKERS.items():
            if folder in parts[-2:-1]:
                for marker in markers:
                    item.add_marker(getattr(pytest.mark, marker))
