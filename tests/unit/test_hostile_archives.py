"""Hostile evaluation inputs end to end: the run completes, every input is one row with a status, nothing is
written outside the run's own output, and no temporary file is left behind."""
from __future__ import annotations

import csv
import io
import os
import tempfile
import zipfile
from pathlib import Path

import pytest
from tests.helpers import make_tiny_checkpoint, png_bytes

from core.cli.main import main


@pytest.fixture()
def tiny_installed(tiny_config, weights_home, tmp_path):
    assert main(["weights", "import", str(make_tiny_checkpoint(tmp_path / "t.pt")), "--detector", "TINY"]) == 0
    return tiny_config


def _rows(out: Path) -> list[dict]:
    with open(out / "predictions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _snapshot(*dirs: Path) -> set[Path]:
    return {p for d in dirs for p in d.rglob("*")}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ten_thousand_tiny_files_in_a_zip(tiny_installed, tmp_path, capsys):
    tiny = png_bytes((4, 4))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(10_000):
            zf.writestr(f"{'real' if i % 2 else 'fake'}/g{i % 7}/img_{i:05d}.png", tiny)
    archive = tmp_path / "many.zip"
    archive.write_bytes(buf.getvalue())
    tmp_before = set(Path(tempfile.gettempdir()).iterdir())
    out = tmp_path / "out"
    assert main(["evaluate", str(archive), "--detectors", "TINY", "--out", str(out), "--no-ensemble"]) == 0
    rows = _rows(out)
    assert len(rows) == 10_000 and {r["status"] for r in rows} == {"ok"}
    assert len({r["path"] for r in rows}) == 10_000
    assert set(Path(tempfile.gettempdir()).iterdir()) <= tmp_before | {tmp_path}


def test_nested_non_utf8_and_duplicate_names_on_disk(tiny_installed, tmp_path):
    root = tmp_path / "data"
    deep = root / "real" / Path(*[f"d{i}" for i in range(60)])           # 60 folders deep
    deep.mkdir(parents=True)
    (deep / "deep.png").write_bytes(png_bytes(seed=1))
    (root / "fake" / "a").mkdir(parents=True)
    (root / "fake" / "b").mkdir(parents=True)
    (root / "fake" / "a" / "same.png").write_bytes(png_bytes(seed=2))   # same name, different folders
    (root / "fake" / "b" / "same.png").write_bytes(png_bytes(seed=3))
    bad_name = os.fsencode(root / "real") + b"/caf\xe9_\xff.png"        # Latin-1 bytes: not valid UTF-8
    with open(bad_name, "wb") as f:
        f.write(png_bytes(seed=4))
    (root / "real" / "zero.png").write_bytes(b"")
    out = tmp_path / "out"
    before = _snapshot(tmp_path) - {out}
    assert main(["evaluate", str(root), "--detectors", "TINY", "--out", str(out)]) == 0
    rows = _rows(out)
    assert len(rows) == 5                                               # every file once
    by_status = {}
    for r in rows:
        by_status.setdefault(r["status"], []).append(r["path"])
    assert len(by_status["ok"]) == 4 and len(by_status["error"]) == 1
    assert sum("same.png" in p for p in by_status["ok"]) == 2
    assert any("deep.png" in p for p in by_status["ok"])
    assert "real/caf\ufffd_\ufffd.png" in by_status["ok"]               # undecodable bytes shown as U+FFFD
    created = _snapshot(tmp_path) - before
    assert all(out in p.parents or p == out for p in created), created


def test_zip_with_non_utf8_names_traversal_and_nesting(tiny_installed, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("real/ok.png", png_bytes(seed=1))
        info = zipfile.ZipInfo("fake/caf\xe9.png")                       # stored with cp437 bytes, not UTF-8
        zf.writestr(info, png_bytes(seed=2))
        zf.writestr("fake/" + "/".join(f"n{i}" for i in range(80)) + "/deep.png", png_bytes(seed=3))
        zf.writestr("../../outside.png", png_bytes(seed=4))
        zf.writestr("/etc/abs.png", png_bytes(seed=5))
        zf.writestr("real/ok.png", png_bytes(seed=6))                    # duplicate member name
    archive = tmp_path / "hostile.zip"
    archive.write_bytes(buf.getvalue())
    out = tmp_path / "out"
    before = _snapshot(tmp_path.parent) - {out}
    assert main(["evaluate", str(archive), "--detectors", "TINY", "--out", str(out), "--no-ensemble"]) == 0
    rows = _rows(out)
    assert len(rows) == 6
    statuses = [r["status"] for r in rows]
    assert statuses.count("ok") == 3 and statuses.count("skipped") == 3
    created = _snapshot(tmp_path.parent) - before
    cache = Path(os.environ["DEEPFAKE_LENS_CACHE"])                     # the score cache is the other writer
    assert all(out in p.parents or p == out or cache in p.parents or p == cache for p in created), created
    assert not (tmp_path.parent.parent / "outside.png").exists()
