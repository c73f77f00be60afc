"""core.evaluation.datasets: labels from folder names, every hostile-archive case as a row, nothing extracted anywhere."""
from __future__ import annotations

import io
import os
import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from tests.helpers import png_bytes, mark_zip_member_encrypted

from core.evaluation import datasets as D
from core.evaluation.datasets import (
    DatasetError,
    label_from_name,
    parse_label,
    sanitize_name,
)


@pytest.mark.parametrize("path, label, group", [
    ("real/a.png", 0, ""),
    ("fake/a.png", 1, ""),
    ("REAL/a.png", 0, ""),
    ("0_real/a.png", 0, ""),
    ("1_fake/a.png", 1, ""),
    ("1-Fake/a.png", 1, ""),
    ("0 Real/a.png", 0, ""),
    (" Fake /a.png", 1, ""),
    ("progan/airplane/1_fake/a.png", 1, "progan/airplane"),
    ("progan/airplane/0_real/a.png", 0, "progan/airplane"),
    ("fake/Stable Diffusion/v1.5/a.png", 1, "Stable Diffusion/v1.5"),
    ("train/nature/a.png", 0, "train"),
    ("train/ai/a.png", 1, "train"),
    ("fake/real/a.png", 0, "fake"),          # the deepest label folder wins
    ("photos/a.png", None, "photos"),
    ("a.png", None, ""),
    ("realistic/a.png", None, "realistic"),  # whole names only
])
def test_label_from_folder_names(path, label, group):
    assert label_from_name(path) == (label, group)


@pytest.mark.parametrize("value, expected", [
    ("fake", 1), ("FAKE", 1), ("1", 1), ("1.0", 1), ("true", 1), ("1_fake", 1),
    ("real", 0), ("0", 0), ("0.0", 0), ("Real ", 0), ("0_real", 0),
    ("", None), ("maybe", None), (None, None),
])
def test_parse_label(value, expected):
    assert parse_label(value) == expected


@pytest.mark.parametrize("name, clean, why", [
    ("real/a.png", "real/a.png", ""),
    ("real\\sub\\a.png", "real/sub/a.png", ""),
    ("./real//a.png", "real/a.png", ""),
    ("../evil.png", None, "path traversal"),
    ("real/../../evil.png", None, "path traversal"),
    ("/etc/passwd.png", None, "absolute path"),
    ("C:\\Windows\\x.png", None, "absolute path"),
    ("\\\\server\\share\\x.png", None, "absolute path"),
    ("a\x00.png", None, "control characters"),
    ("", None, "empty"),
    ("x" * 300 + ".png", None, "longer than 255"),
])
def test_sanitize_name(name, clean, why):
    got, reason = sanitize_name(name)
    assert got == clean
    assert why in reason


# ---------------------------------------------------------------------------------------------- folder


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def test_folder_labels_groups_and_reported_files(tmp_path):
    root = tmp_path / "set"
    outside = tmp_path / "secret.png"
    outside.write_bytes(png_bytes())
    _tree(root, {
        "Real/a.png": png_bytes(seed=1), "real/b.JPG": b"not really a jpeg",
        "1_fake/progan/c.png": png_bytes(seed=2), "FAKE/sd/d.webp": png_bytes(seed=3),
        "misc/e.png": png_bytes(seed=4), "notes.txt": b"hi", ".DS_Store": b"x", ".git/objects/ab": b"x",
    })
    os.symlink(outside, root / "Real" / "link.png")
    os.symlink(tmp_path, root / "fake" / "linkdir") if (root / "fake").exists() else None
    (root / "FAKE" / "dirlink").symlink_to(tmp_path, target_is_directory=True)
    ds = D.from_folder(root)
    by = {it.path: it for it in ds.items}
    assert by["Real/a.png"].label == 0 and by["Real/a.png"].status == "ok"
    assert by["real/b.JPG"].label == 0 and by["real/b.JPG"].status == "ok"      # decoded (and failing) later
    assert (by["1_fake/progan/c.png"].label, by["1_fake/progan/c.png"].group) == (1, "progan")
    assert (by["FAKE/sd/d.webp"].label, by["FAKE/sd/d.webp"].group) == (1, "sd")
    assert by["misc/e.png"].status == "unlabelled" and "real/fake folder" in by["misc/e.png"].reason
    assert by["notes.txt"].status == "skipped" and "not an image" in by["notes.txt"].reason
    assert by[".DS_Store"].status == "skipped"
    assert by["Real/link.png"].status == "skipped" and "symbolic link" in by["Real/link.png"].reason
    assert by["FAKE/dirlink"].status == "skipped" and "symbolic link" in by["FAKE/dirlink"].reason
    # every file gets its row, those in hidden folders as skipped and never read
    assert by[".git/objects/ab"].status == "skipped" and "hidden folder .git/" in by[".git/objects/ab"].reason
    assert any(".git" in n for n in ds.notes)
    assert ds.read(by["Real/a.png"]) == (root / "Real/a.png").read_bytes()
    c = ds.counts()
    assert (c["ok"], c["real"], c["fake"]) == (4, 2, 2)
    assert "to score" in ds.summary()


def test_folder_reader_refuses_a_symlink_swapped_in_after_listing(tmp_path):
    root = tmp_path / "set"
    _tree(root, {"real/a.png": png_bytes()})
    ds = D.from_folder(root)
    target = root / "real" / "a.png"
    target.unlink()
    (tmp_path / "secret.png").write_bytes(b"secret")
    target.symlink_to(tmp_path / "secret.png")
    with pytest.raises(OSError):
        ds.read(ds.items[0])


def test_folder_common_root_is_not_a_group_but_a_label_root_is_kept(tmp_path):
    _tree(tmp_path / "a", {"top/real/x.png": png_bytes(), "top/fake/gen/y.png": png_bytes(seed=1)})
    ds = D.from_folder(tmp_path / "a")
    assert {(it.path, it.label, it.group) for it in ds.items} == {("top/real/x.png", 0, ""),
                                                                 ("top/fake/gen/y.png", 1, "gen")}
    _tree(tmp_path / "b", {"real/x.png": png_bytes(), "real/y.png": png_bytes(seed=1)})
    assert {it.label for it in D.from_folder(tmp_path / "b").items} == {0}


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        D.from_folder(tmp_path / "nope")
    f = tmp_path / "f.png"
    f.write_bytes(b"x")
    with pytest.raises(DatasetError, match="not a folder"):
        D.from_folder(f)


def test_too_many_files_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_FILES", "3")
    _tree(tmp_path / "s", {f"real/{i}.png": b"x" for i in range(5)})
    with pytest.raises(DatasetError, match="above the limit"):
        D.from_folder(tmp_path / "s")


# ---------------------------------------------------------------------------------------------- zip


def _hostile_zip() -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # zipfile warns about the duplicate name on purpose
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("set/real/ok.png", png_bytes(seed=1))
            zf.writestr("set/fake/gan/ok.png", png_bytes(seed=2))
            zf.writestr("set/real/dup.png", png_bytes(seed=3))
            zf.writestr("set/real/dup.png", png_bytes(seed=4))
            zf.writestr("../evil.png", png_bytes(seed=5))
            zf.writestr("set/real/../../../evil2.png", png_bytes(seed=5))
            zf.writestr("/abs.png", png_bytes(seed=6))
            zf.writestr("C:\\win.png", png_bytes(seed=6))
            link = zipfile.ZipInfo("set/real/link.png")
            link.create_system = 3
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(link, "/etc/passwd")
            zf.writestr("set/fake/bomb.png", b"\0" * (20 * 1024 * 1024))
            zf.writestr("set/real/readme.txt", b"text")
            zf.writestr("set/real/nested.zip", b"PK\x05\x06" + b"\0" * 18)
            zf.writestr("__MACOSX/set/real/._ok.png", b"\0\x05\x16\x07")
            zf.writestr("set/fake/enc.png", b"ciphertext")
            zf.writestr("set/misc/unlabelled.png", png_bytes(seed=7))
            zf.writestr("set/real/corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    return mark_zip_member_encrypted(buf.getvalue(), b"set/fake/enc.png")


def test_zip_reports_every_hostile_member_as_a_row(tmp_path):
    before = set(tmp_path.rglob("*"))
    cwd_before = set(Path.cwd().iterdir())
    ds = D.from_zip(_hostile_zip(), name="hostile.zip")
    with zipfile.ZipFile(io.BytesIO(_hostile_zip())) as zf:
        n_files = sum(not i.is_dir() for i in zf.infolist())
    assert len(ds.items) == n_files                      # one row per member, duplicates included
    rows = [(it.path, it.status, it.reason) for it in ds.items]

    def find(part, status):
        hits = [r for r in rows if part in r[0] and r[1] == status]
        assert hits, (part, status, rows)
        return hits[0][2]

    assert find("real/ok.png", "ok") == ""
    ok = {it.path: it for it in ds.items if it.status == "ok"}
    assert ok["set/fake/gan/ok.png"].group == "gan"          # the common root 'set' is not a group
    assert "duplicate" in find("dup.png", "skipped")
    assert ds.read(ok["set/real/dup.png"]) == png_bytes(seed=3)     # the first copy, not the last
    assert "path traversal" in find("evil.png", "skipped")
    assert "path traversal" in find("evil2.png", "skipped")
    assert "absolute path" in find("abs.png", "skipped")
    assert "absolute path" in find("win.png", "skipped")
    assert "symbolic link" in find("link.png", "skipped")
    assert "zip bomb" in find("bomb.png", "skipped")
    assert "not an image" in find("readme.txt", "skipped")
    assert "not an image" in find("nested.zip", "skipped")
    assert "macOS" in find("__MACOSX", "skipped")
    assert "encrypted" in find("enc.png", "skipped")
    assert find("unlabelled.png", "unlabelled")
    assert find("corrupt.png", "ok") == ""                  # decoded later → error row with the reason
    for it in ds.items:
        if it.status == "skipped":
            assert it.ref is None                           # nothing to read for a refused member
    # nothing was extracted anywhere
    assert set(tmp_path.rglob("*")) == before
    assert set(Path.cwd().iterdir()) == cwd_before
    assert not (tmp_path.parent / "evil.png").exists() and not Path("/abs.png").exists()


def test_zip_total_size_limit(monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            zf.writestr(f"real/{i}.png", png_bytes(seed=i))
    size = len(png_bytes(seed=0))
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_ARCHIVE_BYTES", str(int(size * 2.5)))
    ds = D.from_zip(buf.getvalue())
    st = [it.status for it in ds.items]
    assert st.count("ok") == 2 and st.count("skipped") == 2
    assert all("expands beyond" in it.reason for it in ds.items if it.status == "skipped")


def test_zip_on_disk_and_errors(tmp_path):
    p = tmp_path / "a.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("fake/x.png", png_bytes())
    with D.from_zip(p) as ds:
        assert ds.name == "a.zip" and ds.read(ds.items[0]) == png_bytes()
    (tmp_path / "bad.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        D.from_zip(tmp_path / "bad.zip")
    with pytest.raises(DatasetError, match="not a readable zip"):
        D.from_zip(b"garbage")
    with pytest.raises(DatasetError, match="not found"):
        D.from_zip(tmp_path / "nope.zip")


def test_zip_corrupt_member_data_fails_on_read_only(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("real/x.png", png_bytes(size=(64, 64)))
    raw = bytearray(buf.getvalue())
    raw[60:90] = b"\xff" * 30                               # inside the compressed data
    ds = D.from_zip(bytes(raw))
    assert ds.items[0].status == "ok"
    with pytest.raises(Exception):
        ds.read(ds.items[0])


# ---------------------------------------------------------------------------------------------- uploads / CSV


def test_uploads_with_relative_paths_are_sanitised_and_labelled():
    files = [
        ("mydata/Real/a.png", png_bytes(seed=1)),
        ("mydata/FAKE/sd 1.5/b.png", png_bytes(seed=2)),
        ("mydata/../../etc/passwd.png", b"x"),
        ("/abs/c.png", b"x"),
        ("mydata/Real/a.png", png_bytes(seed=9)),
        ("mydata/readme.md", b"x"),
    ]
    ds = D.from_uploads(files)
    assert len(ds.items) == len(files)
    st = [(it.path, it.label, it.group, it.status) for it in ds.items]
    assert st[0] == ("mydata/Real/a.png", 0, "", "ok")
    assert st[1] == ("mydata/FAKE/sd 1.5/b.png", 1, "sd 1.5", "ok")
    assert st[2][3] == "skipped" and "traversal" in ds.items[2].reason
    assert st[3][3] == "skipped" and "absolute" in ds.items[3].reason
    assert st[4][3] == "skipped" and "duplicate" in ds.items[4].reason
    assert st[5][3] == "skipped"
    assert ds.read(ds.items[0]) == png_bytes(seed=1)


def test_uploads_with_a_labels_csv():
    labels = D.labels_from_csv(b"path,label,group\nx/a.png,fake,sd\nb.png,0,\nc.png,??,\n")
    ds = D.from_uploads({"a.png": png_bytes(), "b.png": png_bytes(seed=1), "c.png": png_bytes(seed=2),
                         "d.png": png_bytes(seed=3)}, labels=labels)
    by = {it.path: it for it in ds.items}
    assert (by["a.png"].label, by["a.png"].group) == (1, "sd")       # matched by unique file name
    assert by["b.png"].label == 0
    assert by["c.png"].status == "unlabelled" and "no label" in by["c.png"].reason
    assert by["d.png"].status == "unlabelled" and "not listed" in by["d.png"].reason


def test_labels_csv_on_disk(tmp_path):
    _tree(tmp_path / "imgs", {"a.png": png_bytes(), "b.png": png_bytes(seed=1), "n.txt": b"x"})
    (tmp_path / "outside.png").write_bytes(png_bytes())
    csv = tmp_path / "imgs" / "labels.csv"
    csv.write_text("path,label,group\na.png,real,\nb.png,1,g1\nmissing.png,fake,\nn.txt,fake,\n"
                   "a.png,fake,\nb.png,unknown,\n../outside.png,fake,\n")
    ds = D.from_labels_csv(csv)
    st = [(it.path, it.status, it.label) for it in ds.items]
    assert st[0] == ("a.png", "ok", 0) and st[1] == ("b.png", "ok", 1) and ds.items[1].group == "g1"
    assert st[2][1] == "error" and ds.items[2].reason == "file not found"
    assert st[3][1] == "skipped"
    assert st[4][1] == "skipped" and "twice" in ds.items[4].reason
    assert st[5][1] == "skipped"
    assert st[6][1] == "ok"                                 # allowed without a root restriction
    ds2 = D.from_labels_csv(csv, allowed_root=tmp_path / "imgs")
    assert ds2.items[6].status == "skipped" and "outside the allowed" in ds2.items[6].reason
    assert ds.read(ds.items[0]) == png_bytes()
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(DatasetError, match="path column and a label column"):
        D.from_labels_csv(tmp_path / "bad.csv")


def test_from_path_dispatch_and_allowed_root(tmp_path):
    _tree(tmp_path / "d", {"real/a.png": png_bytes()})
    assert D.from_path(tmp_path / "d").kind == "folder"
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as zf:
        zf.writestr("real/a.png", png_bytes())
    assert D.from_path(tmp_path / "z.zip").kind == "zip"
    (tmp_path / "l.csv").write_text("path,label\nd/real/a.png,real\n")
    assert D.from_path(tmp_path / "l.csv").kind == "csv"
    with pytest.raises(DatasetError, match="outside the allowed"):
        D.from_path(tmp_path / "d", allowed_root=tmp_path / "other")
    assert D.from_path(tmp_path / "d", allowed_root=tmp_path).kind == "folder"
    (tmp_path / "x.bin").write_bytes(b"x")
    with pytest.raises(DatasetError, match="expected a folder"):
        D.from_path(tmp_path / "x.bin")


def test_examples_demo_set_is_labelled_honestly():
    ds = D.from_examples()
    assert ds.items and all(it.status == "ok" for it in ds.items)
    assert {it.group for it in ds.items} <= {"camera", "synthetic", "ai-generated"}
    assert all(it.label == (0 if it.group == "camera" else 1) for it in ds.items)
    assert "not AI-generated" in ds.notes[0] and "not a benchmark" in ds.notes[0]
    assert ds.read(ds.items[0])[:4] == b"\x89PNG"
