"""Bundle import: one zip-member policy (core.archive), the two upstream layouts matched exactly, and every message
naming the member, never a temporary file. Every zip here is a real archive built by the test."""
from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from tests.helpers import make_tiny_checkpoint, mark_zip_member_encrypted

from core import archive
from core.cli.main import main
from core.errors import WeightsCorrupt
from core.models import install
from core.models.factory import create_detector
from core.models.registry import get_spec, list_specs

LIB = "detectors/TINY/checkpoint/pretrained/weights/best.pt"
SPACE = "models/TINY/weights/best.pt"
TINY_TF = ("id: TINY\nvariant: truefake\narch: tiny_cnn\npreprocess: {mode: full}\n"
           "weights: {file: best.pt, container: model, sources: [{type: bundle, member: '" + LIB + "'}, "
           "{type: bundle, member: '" + SPACE + "'}]}\n")


@pytest.fixture()
def truefake(tiny_config):
    (tiny_config / "tiny_tf.yaml").write_text(TINY_TF)
    return get_spec("TINY:truefake")


@pytest.fixture()
def ckpt(tmp_path) -> bytes:
    return make_tiny_checkpoint(tmp_path / "ck.pt").read_bytes()


def _zip(path: Path, members: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # duplicate names are written on purpose
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in members.items():
                zf.writestr(name.split("#")[0], data)   # "#n" suffix: the same name written twice
    return path


def _symlink_zip(path: Path, name: str, target: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, target)
    return path


# --------------------------------------------------------------------------------------------- core.archive

@pytest.mark.parametrize("raw, why", [
    ("/etc/passwd", "absolute"), ("C:/Windows/x.pt", "absolute"), ("\\\\server\\share\\x.pt", "absolute"),
    ("a/../../x.pt", "traversal"), ("..\\x.pt", "traversal"), ("a\x00b.pt", "control"), ("a\nb.pt", "control"),
    ("a\x85b.pt", "control"), ("", "empty"), ("./", "empty"), ("x" * 256 + "/b.pt", "255 bytes"),
])
def test_unsafe_names_are_refused_never_repaired(raw, why):
    clean, reason = archive.clean_name(raw)
    assert clean is None and why in reason


def test_safe_names_are_normalised():
    assert archive.clean_name("models\\NPR/./weights//best.pt") == ("models/NPR/weights/best.pt", "")
    assert archive.printable("a\x1b[31mred\n") == "a\\x1b[31mred\\x0a"


def test_member_verdicts_cover_the_whole_policy(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_RATIO", "50")
    raw = _zip(tmp_path / "a.zip", {
        "ok/a.pt": b"x" * 10, "__MACOSX/ok/._a.pt": b"meta", "ok/._b.pt": b"meta", "ok/.DS_Store": b"meta",
        "../evil.pt": b"x", "/abs.pt": b"x", "ok/a.pt#2": b"y", "ok/enc.pt": b"z" * 10,
        "ok/bomb.bin": b"\0" * (3 << 20), "ok/big.pt": b"b" * 2000, "ok/": b"",
    }, compression=zipfile.ZIP_DEFLATED).read_bytes()
    with zipfile.ZipFile(io.BytesIO(mark_zip_member_encrypted(raw, b"ok/enc.pt"))) as zf:
        got = {(m.name, m.status): m.reason for m in archive.check_members(zf.infolist(), max_member_bytes=1000)}
    assert got[("ok/a.pt", "ok")] == ""
    assert {n for n, s in got if s == "ignored"} == {"__MACOSX/ok/._a.pt", "ok/._b.pt", "ok/.DS_Store", "ok"}
    assert "traversal" in got[("../evil.pt", "refused")] and "absolute" in got[("/abs.pt", "refused")]
    assert "duplicate" in got[("ok/a.pt", "refused")]
    assert "encrypted" in got[("ok/enc.pt", "refused")]
    assert "zip bomb" in got[("ok/bomb.bin", "refused")] or "limit" in got[("ok/bomb.bin", "refused")]
    assert "above the" in got[("ok/big.pt", "refused")]


def test_ratio_and_archive_limits_come_from_settings(tmp_path, monkeypatch):
    zpath = _zip(tmp_path / "z.zip", {"a.bin": b"\0" * (2 << 20), "b.bin": b"\1" * 100, "c.bin": b"\2" * 100},
                 compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(zpath) as zf:
        verdicts = [m.status for m in archive.check_members(zf.infolist(), max_member_bytes=10 << 20)]
        assert verdicts[0] == "refused"                              # 2 MB of zeros: ratio far above 100:1
        monkeypatch.setenv("DEEPFAKE_LENS_MAX_RATIO", "1000000")
        monkeypatch.setenv("DEEPFAKE_LENS_MAX_ARCHIVE_BYTES", str((2 << 20) + 150))
        verdicts = [(m.status, m.reason) for m in archive.check_members(zf.infolist(), max_member_bytes=10 << 20)]
    assert [v[0] for v in verdicts] == ["ok", "ok", "refused"] and "expands beyond" in verdicts[2][1]


def test_symlink_members_are_refused(tmp_path):
    with zipfile.ZipFile(_symlink_zip(tmp_path / "l.zip", LIB, b"/etc/passwd")) as zf:
        (m,) = archive.check_members(zf.infolist(), max_member_bytes=1 << 20)
    assert m.status == "refused" and "symbolic link" in m.reason


def test_copy_stops_at_the_limit_whatever_the_header_says(tmp_path):
    with zipfile.ZipFile(_zip(tmp_path / "c.zip", {"a.pt": b"a" * 5000})) as zf:
        (m,) = archive.check_members(zf.infolist(), max_member_bytes=1 << 20)
        out = io.BytesIO()
        with pytest.raises(archive.ArchiveError, match="a.pt expands beyond"):
            archive.copy_member(zf, m, out, 1000, "c.zip")
        assert out.tell() <= 1000


def test_too_many_entries_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_FILES", "2")
    z = _zip(tmp_path / "m.zip", {f"{i}.pt": b"x" for i in range(3)})
    with pytest.raises(archive.ArchiveError, match="3 entries, above the limit of 2"):
        archive.open_zip(z, "m.zip")


# --------------------------------------------------------------------------------------------- layouts

@pytest.mark.parametrize("member, key", [
    ("detectors/NPR/checkpoint/pretrained/weights/best.pt", "NPR:truefake"),
    ("models/NPR/weights/best.pt", "NPR:truefake"),
    ("Image-Deepfake-Detectors-Public-Library/detectors/R50_TF/checkpoint/pretrained/weights/best.pt",
     "R50_TF:truefake"),
    ("models/CLIP-D/weights/best.pt", "CLIP-D:truefake"),
    ("detectors/P2G/checkpoint/pretrained/weights/best.pt", "P2G:truefake"),
    ("detectors/R50_nodown/checkpoint/pretrained/weights/best.pt", "R50_nodown:truefake"),
    # the old loose match would have taken each of these
    ("weights/npr/run1/best.pt", None), ("NPR/best.pt", None), ("detectors/npr/checkpoint/pretrained/weights/best.pt",
                                                                 None),
    ("detectors/NPR/checkpoint/ft_weights/x/best.pt", None), ("a/b/detectors/NPR/checkpoint/pretrained/weights/best.pt",
                                                             None),
    ("models/NPR/weights/best.pt.bak", None), ("models/NPR/weights/sub/best.pt", None),
])
def test_shipped_bundle_layouts_match_whole_paths_only(member, key):
    spec = install.bundle_target(member, install._targets(list_specs()))
    assert (spec.key if spec else None) == key


def test_both_upstream_layouts_import(truefake, weights_home, tmp_path, ckpt):
    for layout in (LIB, SPACE):
        reports, notes = install.import_bundle(_zip(tmp_path / "b.zip", {layout: ckpt}))
        assert [r.key for r in reports] == ["TINY:truefake"] and notes == []
        assert reports[0].source == f"b.zip:{layout}"
        assert reports[0].sha256 == hashlib.sha256(ckpt).hexdigest()
        assert (weights_home / "TINY" / "truefake" / "best.pt").read_bytes() == ckpt
    assert create_detector("TINY:truefake").spec.variant == "truefake"
    assert not list(weights_home.glob(".import-*"))                   # the staging folder is gone


def test_macos_litter_is_skipped_silently_and_unsafe_members_are_named(truefake, weights_home, tmp_path, ckpt):
    z = _zip(tmp_path / "bundle.zip", {
        "__MACOSX/detectors/TINY/checkpoint/pretrained/weights/._best.pt": b"\x00\x05\x16\x07junk",
        "detectors/TINY/checkpoint/pretrained/weights/._best.pt": b"\x00\x05\x16\x07junk",
        "../../escape/best.pt": ckpt, "weights/tiny/run1/best.pt": ckpt, LIB: ckpt,
    })
    reports, notes = install.import_bundle(z)
    assert [r.key for r in reports] == ["TINY:truefake"]
    text = "\n".join(notes)
    assert "._best.pt" not in text and "__MACOSX" not in text
    assert "bundle.zip: ../../escape/best.pt: refused (unsafe name: path traversal" in text
    assert "bundle.zip: weights/tiny/run1/best.pt: not at a known bundle layout" in text
    assert not (tmp_path.parent / "escape").exists()


def test_every_refusal_names_the_member_never_a_temp_path(truefake, weights_home, tmp_path):
    z = _zip(tmp_path / "bundle.zip", {LIB: b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64
                                       + b"\nsize 1234\n", SPACE: bytes(range(256)) * 4})
    reports, notes = install.import_bundle(z)
    assert reports == [] and len(notes) == 2
    for note, member in zip(notes, (LIB, SPACE)):
        assert note.startswith("not imported: TINY: checkpoint bundle.zip: " + member), note
        assert "/tmp" not in note and ".import-" not in note and "checkpoint'" not in note
    assert "LFS" in notes[0] or "lfs" in notes[0]
    assert not (weights_home / "TINY").exists()


def test_symlink_and_encrypted_members_are_refused_by_name(truefake, weights_home, tmp_path, ckpt):
    reports, notes = install.import_bundle(_symlink_zip(tmp_path / "l.zip", LIB, b"/etc/passwd"))
    assert reports == [] and notes == [f"l.zip: {LIB}: refused (symbolic link (never followed))."]
    raw = _zip(tmp_path / "e.zip", {LIB: ckpt}).read_bytes()
    (tmp_path / "e.zip").write_bytes(mark_zip_member_encrypted(raw, LIB.encode()))
    reports, notes = install.import_bundle(tmp_path / "e.zip")
    assert reports == [] and notes == [f"e.zip: {LIB}: refused (encrypted member)."]


def test_oversized_member_is_refused_from_its_header(truefake, weights_home, tmp_path, ckpt, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_CHECKPOINT_BYTES", str(len(ckpt) - 1))
    reports, notes = install.import_bundle(_zip(tmp_path / "b.zip", {LIB: ckpt}))
    assert reports == [] and f"b.zip: {LIB}: refused (expands to" in notes[0]


def test_unpacked_folder_bundle_uses_the_same_rules(truefake, weights_home, tmp_path, ckpt):
    root = tmp_path / "lib"
    (root / Path(LIB).parent).mkdir(parents=True)
    (root / LIB).write_bytes(ckpt)
    (root / Path(LIB).parent / "._best.pt").write_bytes(b"\x00\x05\x16\x07")
    (root / "models" / "TINY" / "weights").mkdir(parents=True)
    (root / SPACE).symlink_to(tmp_path / "elsewhere.pt")
    os.mkfifo(root / "models" / "TINY" / "weights" / "best.pth")     # would block a reader forever
    reports, notes = install.import_bundle(root)
    assert [r.key for r in reports] == ["TINY:truefake"]
    assert notes == [f"lib: {SPACE}: refused (symbolic link (never followed)).",
                     "lib: models/TINY/weights/best.pth: refused (not a regular file)."]


def test_a_file_that_is_not_a_zip_is_one_sentence(truefake, tmp_path):
    bad = tmp_path / "bundle.zip"
    bad.write_bytes(b"<html>Google Drive quota exceeded</html>")
    with pytest.raises(WeightsCorrupt, match="bundle.zip: not a readable zip file"):
        install.import_bundle(bad)


def test_cli_bundle_import_reports_members(truefake, weights_home, tmp_path, ckpt, capsys):
    z = _zip(tmp_path / "b.zip", {SPACE: ckpt, "models/NOPE/weights/best.pt": ckpt})
    assert main(["weights", "import", str(z)]) == 0
    out = capsys.readouterr()
    assert "imported TINY:truefake" in out.out and "b.zip: models/NOPE/weights/best.pt: not at a known" in out.err
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 not really")
    assert main(["weights", "import", str(tmp_path / "junk.zip")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.zip: not a readable zip file" in err[0]


def test_nan_checkpoint_in_a_bundle_is_refused(truefake, weights_home, tmp_path):
    from core.models.detectors.tiny import TinyCNN
    sd = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in TinyCNN().state_dict().items()}
    buf = io.BytesIO()
    torch.save({"model": sd}, buf)
    reports, notes = install.import_bundle(_zip(tmp_path / "b.zip", {LIB: buf.getvalue()}))
    assert reports == [] and "NaN or infinite" in notes[0] and f"b.zip: {LIB}" in notes[0]
