"""Weights: resolution, verification, download against a real local HTTP server, import, refusal of code."""
from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from tests.helpers import ROOT, make_tiny_checkpoint
from tests.helpers.http_server import Route, serve

from core import (
    DownloadError,
    WeightsCorrupt,
    WeightsRefused,
    WeightsUnavailable,
    create_detector,
    get_spec,
)
from core.models import install
from core.models import weights as W
from core.models.specs import parse_spec


def _tiny_spec(url: str, sha256: str | None = None, size: int | None = None, extra_sources=()):
    sources = [{"type": "url", "url": url}, *extra_sources]
    return parse_spec({
        "id": "TINY", "variant": "original", "arch": "tiny_cnn",
        "weights": {"file": "tiny.pt", "container": "model", "sha256": sha256, "size": size, "sources": sources},
        "preprocess": {"mode": "full"},
    })


@pytest.fixture()
def online(monkeypatch):
    monkeypatch.delenv("DEEPFAKE_LENS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture()
def ckpt_bytes(tmp_path) -> bytes:
    return make_tiny_checkpoint(tmp_path / "src.pt").read_bytes()


def test_download_with_matching_checksum_installs_and_loads(online, weights_home, ckpt_bytes):
    digest = hashlib.sha256(ckpt_bytes).hexdigest()
    seen = []
    with serve({"/tiny.pt": Route(ckpt_bytes)}) as srv:
        spec = _tiny_spec(srv.base + "/tiny.pt", digest, len(ckpt_bytes))
        path = W.download(spec, progress=lambda done, total: seen.append((done, total)))
    assert path == weights_home / "TINY" / "original" / "tiny.pt"
    assert path.read_bytes() == ckpt_bytes and W.sha256_file(path) == digest
    assert seen and seen[-1] == (len(ckpt_bytes), len(ckpt_bytes))
    assert W.resolve_weights(spec) == path and W.status(spec).state == "installed"
    assert not list(path.parent.glob("*.part"))


def test_checksum_mismatch_rejects_and_removes(online, weights_home, ckpt_bytes):
    with serve({"/tiny.pt": Route(ckpt_bytes)}) as srv:
        spec = _tiny_spec(srv.base + "/tiny.pt", "0" * 64)
        with pytest.raises(WeightsCorrupt, match="checksum mismatch"):
            W.download(spec)
    folder = weights_home / "TINY" / "original"
    assert not (folder / "tiny.pt").exists() and not list(folder.glob("*.part"))
    assert W.status(spec).state == "missing"


def test_interrupted_transfer_leaves_nothing(online, weights_home, ckpt_bytes):
    with serve({"/tiny.pt": Route(ckpt_bytes, mode="truncate")}) as srv:
        spec = _tiny_spec(srv.base + "/tiny.pt")
        with pytest.raises(DownloadError):
            W.download(spec)
    folder = weights_home / "TINY" / "original"
    assert not folder.exists() or not any(folder.iterdir())


def test_http_404_is_a_clear_error(online, weights_home):
    with serve({}) as srv:
        spec = _tiny_spec(srv.base + "/missing.pt")
        with pytest.raises(DownloadError, match="HTTP 404"):
            W.download(spec)


def test_sources_are_tried_in_order(online, weights_home, ckpt_bytes):
    with serve({"/good.pt": Route(ckpt_bytes)}) as srv:
        spec = _tiny_spec(srv.base + "/gone.pt", extra_sources=[{"type": "url", "url": srv.base + "/good.pt"}])
        path = W.download(spec)
        assert srv.hits == ["GET /gone.pt", "GET /good.pt"]
    assert path.read_bytes() == ckpt_bytes


def test_offline_fails_within_seconds(online, weights_home):
    spec = _tiny_spec("http://127.0.0.1:9/tiny.pt")       # discard port: nothing listens
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="could not download"):
        W.download(spec)
    assert time.monotonic() - t0 < 10
    os.environ["DEEPFAKE_LENS_OFFLINE"] = "1"
    try:
        with pytest.raises(DownloadError, match="offline"):
            W.download(spec)
    finally:
        del os.environ["DEEPFAKE_LENS_OFFLINE"]


@pytest.mark.slow
def test_hub_source_downloads_through_hf_endpoint(tmp_path, ckpt_bytes, tiny_config):
    """The Hub path runs for real: huggingface_hub talks to a local server through HF_ENDPOINT."""
    (tiny_config / "tinyhub.yaml").write_text(
        "id: TINYHUB\nvariant: original\narch: tiny_cnn\n"
        "weights: {file: w.pt, container: model, sources: [{type: hf, repo_id: org/tiny, filename: w.pt}]}\n"
        "preprocess: {mode: full}\n")
    with serve({"/org/tiny/resolve/main/w.pt": Route(ckpt_bytes, hub=True)}) as srv:
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "DEEPFAKE_LENS_OFFLINE")}
        env.update(HF_ENDPOINT=srv.base, HF_HUB_CACHE=str(tmp_path / "hub"), DEEPFAKE_LENS_WEIGHTS=str(tmp_path / "w"),
                   DEEPFAKE_LENS_CONFIG_DIRS=str(tiny_config), HF_HUB_DISABLE_XET="1")
        out = subprocess.run([sys.executable, "-m", "core", "weights", "download", "TINYHUB"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert any(h.startswith("GET /org/tiny/resolve/main/w.pt") for h in srv.hits)
    cached = list((tmp_path / "hub").rglob("w.pt"))
    assert cached and cached[0].read_bytes() == ckpt_bytes
    # once cached, resolution finds it offline (no server any more)
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run([sys.executable, "-m", "core", "weights", "status"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "TINYHUB" in out.stdout
    line = next(l for l in out.stdout.splitlines() if l.startswith("TINYHUB"))
    assert "installed" in line


def test_local_file_import_verifies_and_copies(weights_home, tiny_config, tmp_path):
    src = make_tiny_checkpoint(tmp_path / "mine.pt")
    spec = get_spec("TINY")
    rep = install.import_file(src, spec)
    assert rep.path == weights_home / "TINY" / "original" / "tiny.pt"
    assert rep.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    det = create_detector("TINY")                         # found in the weights folder now
    assert det.weights_path == rep.path and det.weights_sha256 == rep.sha256
    assert W.delete(spec) and W.status(spec).state == "missing"


def test_import_refuses_wrong_architecture_and_leaves_nothing(weights_home, tiny_config, tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, bad)
    with pytest.raises(WeightsCorrupt, match="does not fit the TINY architecture"):
        install.import_file(bad, get_spec("TINY"))
    assert not (weights_home / "TINY").exists()


def test_truncated_checkpoint_is_reported(tiny_config, tmp_path):
    full = make_tiny_checkpoint(tmp_path / "full.pt").read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(WeightsCorrupt) as exc:
        create_detector("TINY", weights=cut)
    assert "TINY" in str(exc.value) and "cut.pt" in str(exc.value)


def test_installed_file_with_wrong_checksum_is_corrupt(weights_home, tmp_path, ckpt_bytes):
    spec = _tiny_spec("http://127.0.0.1:9/x", hashlib.sha256(ckpt_bytes).hexdigest())
    dest = W.installed_path(spec)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(ckpt_bytes[:-1] + b"x")
    assert W.status(spec).state == "corrupt"
    with pytest.raises(WeightsCorrupt, match="checksum mismatch"):
        W.resolve_weights(spec)


class _Evil:
    """Unpickling this would create a marker file (via a callable global)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_malicious_pickle_is_refused_and_never_runs(tiny_config, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Evil(str(marker))}, evil)
    with pytest.raises(WeightsRefused) as exc:
        create_detector("TINY", weights=evil)
    assert "run code" in str(exc.value) and "TINY" in str(exc.value)
    assert not marker.exists()
    with pytest.raises(WeightsRefused):
        install.import_file(evil, get_spec("TINY"))
    assert not marker.exists()
    # a raw pickle (not a torch zip) with a reduce payload is refused too
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises((WeightsRefused, WeightsCorrupt)):
        create_detector("TINY", weights=raw)
    assert not marker.exists()


def _bundle_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_truebees_bundle_import_zip_and_folder(weights_home, tiny_config, tmp_path, ckpt_bytes):
    (tiny_config / "tiny_tf.yaml").write_text(
        "id: TINY\nvariant: truefake\narch: tiny_cnn\n"
        "weights: {file: best.pt, container: model, sources: [{type: bundle, member: 'TINY/**/best.pt'}]}\n"
        "preprocess: {mode: full}\n")
    bundle = _bundle_zip(tmp_path / "bundle.zip", {
        "weights/TINY/run1/best.pt": ckpt_bytes,         # the whole path matches, inside one top folder
        "../../escape/best.pt": ckpt_bytes,              # path traversal: never extracted
        "OTHER/best.pt": ckpt_bytes,                     # no such detector: reported
        "README.txt": b"hello",
    })
    reports, notes = install.import_bundle(bundle)
    assert [r.key for r in reports] == ["TINY:truefake"]
    assert (weights_home / "TINY" / "truefake" / "best.pt").read_bytes() == ckpt_bytes
    assert any("OTHER/best.pt" in n for n in notes)
    assert not (tmp_path.parent / "escape").exists()
    det = create_detector("TINY:truefake")
    assert det.spec.variant == "truefake"
    # folder form, with a refused (malicious) checkpoint reported, not raised
    W.delete(get_spec("TINY:truefake"))
    folder = tmp_path / "bundle_dir" / "TINY" / "x"
    folder.mkdir(parents=True)
    torch.save({"model": _Evil(str(tmp_path / "pwned"))}, folder / "best.pt")
    reports, notes = install.import_bundle(tmp_path / "bundle_dir")
    assert reports == [] and any("refused" in n for n in notes)
    assert not (tmp_path / "pwned").exists()


def test_read_only_weights_folder_gives_clear_message(tiny_config, tmp_path, monkeypatch):
    if os.geteuid() == 0:
        # root ignores permission bits: make the weights "folder" a file instead, which fails the same way
        blocker = tmp_path / "wfile"
        blocker.write_text("not a folder")
        monkeypatch.setenv("DEEPFAKE_LENS_WEIGHTS", str(blocker))
    else:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        monkeypatch.setenv("DEEPFAKE_LENS_WEIGHTS", str(ro))
    src = make_tiny_checkpoint(tmp_path / "mine.pt")
    with pytest.raises(WeightsCorrupt, match="cannot write"):
        install.import_file(src, get_spec("TINY"))


def test_explicit_missing_path(tiny_config):
    with pytest.raises(WeightsUnavailable, match="not found"):
        create_detector("TINY", weights="/nonexistent/x.pt")


def test_variants_share_files_where_declared(weights_home):
    base = get_spec("NPR")
    resized = get_spec("NPR:original_resize256")
    assert W.installed_path(resized) == W.installed_path(base) == weights_home / "NPR" / "original" / "NPR.pth"
    clip, clip_tf = get_spec("CLIP-D"), get_spec("CLIP-D:truefake")
    assert W.installed_path(clip, "backbone") == W.installed_path(clip_tf, "backbone")


def test_full_disk_gives_clear_message_and_leaves_nothing(tiny_config, weights_home, tmp_path, monkeypatch):
    """ENOSPC cannot be produced on demand here, so the copy raises it the way a full disk does."""
    import errno
    import shutil as _shutil
    src = make_tiny_checkpoint(tmp_path / "mine.pt")

    def full_disk(a, b, *args, **kwargs):
        Path(b).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(_shutil, "copyfile", full_disk)
    with pytest.raises(WeightsCorrupt, match="disk is not full"):
        install.import_file(src, get_spec("TINY"))
    folder = weights_home / "TINY" / "original"
    assert not (folder / "tiny.pt").exists() and not list(folder.glob("*.part"))
