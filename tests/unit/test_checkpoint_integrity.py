"""Checkpoint integrity: identity from the bytes (never a sidecar), non-finite and wrong-kind tensors refused, loads
from an immutable snapshot, one accurate sentence per kind of bad file, and no NaN score ever becomes a label."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core import WeightsCorrupt, WeightsRefused, WeightsUnavailable, create_detector, get_spec
from core.cli.main import main as cli_main
from core.errors import ScoreError
from core.evaluation import datasets as D
from core.evaluation import runner as E
from core.models import install
from core.models import weights as W
from core.models.checkpoint import load_snapshot, load_verified
from core.models.detectors.tiny import TinyCNN
from core.models.snapshot import read_snapshot
from core.results import DetectionResult
from core.verdict.assessment import assess
from core.verdict.ensemble import ensemble
from tests.helpers import TINY_YAML, make_tiny_checkpoint, png_bytes


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _official_yaml(config_dir: Path, digest: str | None) -> None:
    """TINY with a known official sha256 (like the published detectors), replacing the fixture's YAML."""
    text = TINY_YAML.format(weight=0.5)
    if digest is not None:
        text = text.replace("  container: model\n", f"  container: model\n  sha256: {digest}\n")
    (config_dir / "tiny.yaml").write_text(text)


def _forge_sidecar(path: Path, claimed: str) -> None:
    """A sidecar that claims ``claimed`` and copies the file's real identity (dev, inode, size, times)."""
    st = path.stat()
    path.with_name(path.name + ".sha256.json").write_text(json.dumps({
        "sha256": claimed, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "dev": st.st_dev, "inode": st.st_ino,
        "ctime_ns": st.st_ctime_ns, "source": "official"}))


def _one_sentence(exc: BaseException, *names: str) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    for n in names:
        assert n in text, (n, text)
    return text


# --------------------------------------------------------------------------------------------- forged sidecar

@pytest.fixture()
def official_and_tampered(tmp_path, tiny_config, weights_home):
    official = make_tiny_checkpoint(tmp_path / "official.pt", seed=0)
    tampered = make_tiny_checkpoint(tmp_path / "tampered.pt", seed=1, bias=9.0)
    _official_yaml(tiny_config, _sha(official))
    return official, tampered


def test_forged_sidecar_does_not_make_a_tampered_file_official_at_import(official_and_tampered, weights_home):
    official, tampered = official_and_tampered
    _forge_sidecar(tampered, _sha(official))
    with pytest.raises(WeightsCorrupt) as exc:
        install.import_file(tampered, get_spec("TINY"))
    _one_sentence(exc.value, "TINY", "checksum mismatch")
    assert not W.installed_path(get_spec("TINY")).exists()
    assert cli_main(["weights", "import", str(tampered), "--detector", "TINY"]) == 2


def test_forged_sidecar_next_to_an_installed_file_is_not_believed(official_and_tampered, weights_home, capsys):
    official, tampered = official_and_tampered
    spec = get_spec("TINY")
    dest = W.installed_path(spec)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(tampered.read_bytes())            # swapped in behind our back, sidecar forged to match
    _forge_sidecar(dest, _sha(official))
    for verify in ([], ["--verify"]):
        assert cli_main(["weights", "status", "--json", *verify]) == 0
        row = next(r for r in json.loads(capsys.readouterr().out) if r["detector"] == "TINY")
        assert row["state"] == "corrupt" and row["sha256"] is None and "checksum mismatch" in row["message"]
    with pytest.raises(WeightsCorrupt, match="checksum mismatch"):
        create_detector("TINY")
    # the real file is still accepted: the check follows the bytes, in both directions
    dest.write_bytes(official.read_bytes())
    assert W.status(spec, verify=True).sha256 == _sha(official)
    assert create_detector("TINY").weights_sha256 == _sha(official)


def test_results_and_reports_record_the_hash_of_the_bytes(tmp_path, tiny_config, weights_home):
    """Without an official hash (a custom or unpublished file), what is recorded is still the file's true sha256."""
    from core.report.build import build_report
    _official_yaml(tiny_config, None)
    src = make_tiny_checkpoint(tmp_path / "mine.pt", seed=3)
    rep = install.import_file(src, get_spec("TINY"))
    dest = rep.path
    swapped = make_tiny_checkpoint(tmp_path / "other.pt", seed=4)
    dest.write_bytes(swapped.read_bytes())            # replaced after import; sidecar rewritten to claim the old one
    _forge_sidecar(dest, rep.sha256)
    st = W.status(get_spec("TINY"), verify=True)
    assert st.state == "corrupt" and "changed since it was imported" in st.message
    det = create_detector("TINY")
    assert det.weights_sha256 == _sha(swapped) != rep.sha256
    result = det.predict(Image.open(io.BytesIO(png_bytes())))
    assert result.weights_sha256 == _sha(swapped)
    report = build_report(png_bytes(), [det], name="x.png", probe=False)
    recorded = [r["weights_sha256"] for r in report.data["detectors"] if r["detector_id"] == "TINY"]
    assert recorded == [_sha(swapped)]


# --------------------------------------------------------------------------------------------- tensor checks

def _tiny_sd_with(key: str, value: torch.Tensor) -> dict:
    torch.manual_seed(0)
    sd = TinyCNN().state_dict()
    sd[key] = value
    return {"model": sd}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_non_finite_weights_are_refused_at_load_and_import(tmp_path, tiny_config, weights_home, value, legacy):
    sd = _tiny_sd_with("conv2.weight", torch.zeros(16, 8, 3, 3))
    sd["model"]["conv2.weight"][3, 2, 1, 0] = value         # one bad value among many
    path = tmp_path / "weird.pt"
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(WeightsCorrupt) as exc:
        create_detector("TINY", weights=path)
    _one_sentence(exc.value, "TINY", "weird.pt", "NaN or infinite")
    with pytest.raises(WeightsCorrupt) as exc:
        install.import_file(path, get_spec("TINY"))
    _one_sentence(exc.value, "TINY", "weird.pt", "NaN or infinite")
    assert not W.installed_path(get_spec("TINY")).exists()


def test_finite_values_that_overflow_when_narrowed_are_refused(tmp_path, tiny_config):
    path = tmp_path / "huge64.pt"
    torch.save(_tiny_sd_with("conv1.bias", torch.full((8,), 1e300, dtype=torch.float64)), path)
    assert load_verified(path, "TINY")                      # finite as stored (their float64 sum overflows)
    with pytest.raises(WeightsCorrupt) as exc:
        create_detector("TINY", weights=path)
    _one_sentence(exc.value, "TINY", "huge64.pt", "conv1.bias", "too large for torch.float32")


def _quantized(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.quantize_per_tensor(torch.zeros(shape), 0.1, 0, torch.qint8)


WRONG_KINDS = {
    "int64": (lambda s: torch.ones(s, dtype=torch.int64), "int64"),
    "bool": (lambda s: torch.ones(s, dtype=torch.bool), "torch.bool"),
    "complex": (lambda s: torch.ones(s, dtype=torch.complex64), "complex64"),
    "sparse_coo": (lambda s: torch.ones(s).to_sparse(), "sparse"),
    "sparse_csr": (lambda s: torch.ones(s).to_sparse_csr(), "sparse"),
    "quantized": (_quantized, "quantized"),
    "meta": (lambda s: torch.empty(s, device="meta"), "meta"),
    "nested": (lambda s: torch.nested.nested_tensor([torch.ones(3), torch.ones(5)]), "nested"),
}


@pytest.mark.parametrize("kind", list(WRONG_KINDS))
def test_wrong_tensor_kinds_are_one_sentence(tmp_path, tiny_config, kind):
    make, phrase = WRONG_KINDS[kind]
    path = tmp_path / f"{kind}.pt"
    torch.save(_tiny_sd_with("fc.weight", make((1, 16))), path)
    for attempt in (lambda: create_detector("TINY", weights=path), lambda: install.import_file(path,
                                                                                                get_spec("TINY"))):
        with pytest.raises(WeightsCorrupt) as exc:
            attempt()
        _one_sentence(exc.value, "TINY", f"{kind}.pt", phrase)


def _rewrite_zip(src: Path, dst: Path, edit) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, edit(info.filename, zin.read(info)))
    return dst


def test_tensor_record_shorter_than_its_shape_is_refused(tmp_path, tiny_config):
    src = tmp_path / "ok.pt"
    torch.save(_tiny_sd_with("fc.bias", torch.tensor([0.5])), src)
    with zipfile.ZipFile(src) as zf:
        records = {n: zf.getinfo(n).file_size for n in zf.namelist() if "/data/" in n}
    longest = max(records, key=records.get)
    cut = _rewrite_zip(src, tmp_path / "short.pt", lambda n, b: b[:8] if n == longest else b)
    with pytest.raises(WeightsCorrupt) as exc:
        create_detector("TINY", weights=cut)
    _one_sentence(exc.value, "TINY", "short.pt", "truncated record")


# --------------------------------------------------------------------------------------------- snapshot

def test_file_replaced_after_the_snapshot_changes_nothing(tmp_path):
    path = tmp_path / "w.pt"
    a = make_tiny_checkpoint(tmp_path / "a.pt", seed=1).read_bytes()
    b = make_tiny_checkpoint(tmp_path / "b.pt", seed=2, bias=7.0).read_bytes()
    path.write_bytes(a)
    snap = read_snapshot(path, "TINY")
    with open(path, "r+b") as f:                   # rewritten in place (same inode), then truncated
        f.write(b)
        f.truncate(len(b) // 2)
    loaded = load_snapshot(snap, "TINY")
    snap.close()
    want = torch.load(io.BytesIO(a), weights_only=True)["model"]
    assert loaded.sha256 == hashlib.sha256(a).hexdigest() and loaded.size == len(a)
    for k, v in want.items():
        assert torch.equal(loaded.obj["model"][k], v)
    # mapped tensors stay valid although the original file is now short (no SIGBUS)
    path.write_bytes(b"")
    assert all(torch.isfinite(v).all() for v in loaded.obj["model"].values() if v.is_floating_point())


def test_file_replaced_while_loading_never_mixes_files(tmp_path):
    """A writer swaps two checkpoints (rename over, and truncate + rewrite in place) while we load in a loop: each
    load is one whole file whose recorded sha256 is the sha256 of what was loaded, or one sentence."""
    big = {f"w{i}": torch.randn(256, 256) for i in range(24)}            # ~6 MB: several read chunks
    versions = {}
    for seed in (1, 2):
        torch.manual_seed(seed)
        sd = {k: torch.randn_like(v) for k, v in big.items()}
        if seed == 2:
            sd["extra"] = torch.zeros(1000)                              # a different size
        buf = io.BytesIO()
        torch.save(sd, buf)
        versions[hashlib.sha256(buf.getvalue()).hexdigest()] = (buf.getvalue(), sd)
    blobs = [v[0] for v in versions.values()]
    path = tmp_path / "live.pt"
    path.write_bytes(blobs[0])
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            data = blobs[i % 2]
            if i % 4 < 2:
                tmp = tmp_path / "live.tmp"
                tmp.write_bytes(data)
                os.replace(tmp, path)
            else:
                with open(path, "r+b") as f:
                    f.truncate(0)
                    f.write(data)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    outcomes = {"loaded": 0, "refused": 0}
    try:
        for _ in range(40):
            try:
                loaded = load_verified(path, "TINY", name="live.pt")
            except WeightsCorrupt as exc:
                _one_sentence(exc, "live.pt")
                outcomes["refused"] += 1
                continue
            assert loaded.sha256 in versions, "a model was built from bytes of two files"
            for k, v in versions[loaded.sha256][1].items():
                assert torch.equal(loaded.obj[k], v)
            outcomes["loaded"] += 1
    finally:
        stop.set()
        t.join()
    assert outcomes["loaded"] + outcomes["refused"] == 40


# --------------------------------------------------------------------------------------------- sentences

def _random_bytes() -> bytes:
    data = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert data[:1] not in (b"\x80", b"P", b"(", b"c", b"}", b"]", b")", b"<", b"{")
    return data


def _not_torch_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("photos/cat.jpg", b"\xff\xd8\xff" + b"0" * 100)
    return buf.getvalue()


BAD_FILES = {
    "empty.pt": (lambda: b"", "is empty (0 bytes)"),
    "lfs.pt": (lambda: b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32
               + b"\nsize 93456789\n", "Git LFS pointer"),
    "drive.pt": (lambda: b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head>"
                 b"<body>Too many users have viewed or downloaded this file recently.</body></html>",
                 "HTML web page"),
    "notorch.pt": (_not_torch_zip, "zip archive but not a PyTorch checkpoint"),
    "random.pt": (_random_bytes, "match no known format"),
    "._best.pt": (lambda: b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 64,
                  "macOS metadata file"),
    "truncated_pickle.pt": (lambda: pickle.dumps({"model": {"a": [1.0] * 50}}, protocol=2)[:-20],
                            "damaged"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_each_kind_of_bad_file_gets_its_own_accurate_sentence(tmp_path, tiny_config, weights_home, name):
    make, phrase = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(make())
    for attempt in (lambda: create_detector("TINY", weights=path), lambda: install.import_file(path,
                                                                                                get_spec("TINY"))):
        with pytest.raises(WeightsCorrupt) as exc:
            attempt()
        text = _one_sentence(exc.value, "TINY", name, phrase)
        assert "run code" not in text and "refused" not in text
        assert not isinstance(exc.value, WeightsRefused)
    others = [p for n, (_, p) in BAD_FILES.items() if n != name and p != "damaged"]
    assert not any(p in text for p in others)
    assert not W.installed_path(get_spec("TINY")).exists()


def test_apple_double_is_told_by_its_content_or_by_its_name_when_unreadable(tmp_path, tiny_config):
    damaged = tmp_path / "._weights.pt"
    damaged.write_bytes(_random_bytes())                   # no magic, unknown bytes: the name says what it is
    with pytest.raises(WeightsCorrupt, match="macOS metadata file"):
        create_detector("TINY", weights=damaged)
    real = make_tiny_checkpoint(tmp_path / "._mine.pt")    # a real checkpoint is judged by its bytes, not its name
    assert create_detector("TINY", weights=real).weights_sha256 == _sha(real)


class _Payload:
    """Unpickling this would call ``fn(*args)`` (a global that creates a marker file)."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def _payloads(marker: Path) -> dict[str, bytes]:
    buf_zip, buf_legacy = io.BytesIO(), io.BytesIO()
    touch = _Payload(Path.touch, marker)
    shell = _Payload(os.system, f"touch {marker}")
    torch.save({"model": {"fc.weight": touch}}, buf_zip)
    torch.save({"model": shell}, buf_legacy, _use_new_zipfile_serialization=False)
    return {
        "zip": buf_zip.getvalue(),
        "legacy": buf_legacy.getvalue(),
        "raw_pickle": pickle.dumps({"model": touch}, protocol=4),
        "text_pickle": f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(),
    }


@pytest.mark.parametrize("form", ["zip", "legacy", "raw_pickle", "text_pickle"])
def test_only_a_pickle_naming_code_is_refused_as_code_and_it_never_runs(tmp_path, tiny_config, weights_home, form):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil_{form}.pt"
    path.write_bytes(_payloads(marker)[form])
    for attempt in (lambda: create_detector("TINY", weights=path),
                    lambda: install.import_file(path, get_spec("TINY")),
                    lambda: load_verified(path, "TINY")):
        with pytest.raises(WeightsRefused) as exc:
            attempt()
        _one_sentence(exc.value, "TINY", path.name, "would run code", "not executed")
    assert not marker.exists()
    assert not W.installed_path(get_spec("TINY")).exists()


# --------------------------------------------------------------------------------------------- NaN scores

def _overflowing_checkpoint(path: Path, *, inf_only: bool) -> Path:
    """Finite weights whose activations overflow: +inf logits, or inf − inf = NaN logits."""
    sd = TinyCNN().state_dict()
    sd["conv1.weight"] = torch.full_like(sd["conv1.weight"], 3e38)
    sd["conv1.bias"] = torch.full_like(sd["conv1.bias"], 3e38)          # every activation is +inf
    sd["conv2.weight"] = torch.full_like(sd["conv2.weight"], 1.0)
    sd["conv2.bias"] = torch.zeros_like(sd["conv2.bias"])
    w = torch.ones_like(sd["fc.weight"])
    if not inf_only:
        w[0, ::2] = -1.0                                                  # +inf − inf = NaN
    sd["fc.weight"], sd["fc.bias"] = w, torch.zeros_like(sd["fc.bias"])
    torch.save({"model": sd}, path)
    return path


@pytest.mark.parametrize("inf_only", [False, True], ids=["nan", "inf"])
def test_non_finite_scores_never_become_a_label(tmp_path, tiny_config, inf_only):
    det = create_detector("TINY", weights=_overflowing_checkpoint(tmp_path / "overflow.pt", inf_only=inf_only))
    img = Image.open(io.BytesIO(png_bytes()))
    logit = float(det.forward(det.batch([det.prepare(img)]))[0])
    assert (logit == float("inf")) if inf_only else np.isnan(logit)
    with pytest.raises(ScoreError) as exc:
        det.predict(img)
    _one_sentence(exc.value, "TINY", "non-finite")
    with pytest.raises(ScoreError):
        det.predict_batch([img, img])
    # evaluation: an error row with the sentence, no score, no label
    ds = D.from_uploads({"real/a.png": png_bytes(seed=1), "fake/b.png": png_bytes(seed=2)})
    run = E.evaluate(ds, [det], cache=False, ensemble=True)
    key = next(s.key for s in run.sources if s.kind == "detector")
    assert np.isnan(run.p_fake[key]).all() and np.isnan(run.logit[key]).all()
    assert all("non-finite" in why for why in run.unscored[key].values()) and len(run.unscored[key]) == 2
    if run.verdict is not None:
        assert (run.verdict < 0).all()


def test_ensemble_never_votes_with_a_non_finite_score():
    base = {"threshold": 0.5, "elapsed_s": 0.1, "image_size": (8, 8), "input_size": (8, 8), "crop_box": None,
            "resized": False, "preprocessing": ""}
    bad = [DetectionResult("NPR", "original", float("nan"), float("nan"), "real", **base),
           DetectionResult("R50_TF", "original", float("nan"), 0.2, "real", **base),
           DetectionResult("CLIP-D", "original", float("inf"), float("nan"), "fake", **base)]
    ens = ensemble(bad)
    assert ens.verdict not in ("REAL", "FAKE")
    assert not ens.votes
    graded = assess(bad)
    assert graded.direction is None and not graded.voters


# --------------------------------------------------------------------------------------------- TorchScript

class _Holder(torch.nn.Module):
    """A scriptable module that only holds tensors (its forward is trivial and is never run by the reader)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript(state_dict: dict[str, torch.Tensor], path: Path) -> Path:
    """``torch.jit.save`` of a module tree whose ``state_dict()`` is ``state_dict`` (float → parameters, others →
    buffers), the way OpenAI's ``ViT-B-16.pt`` holds its weights (dotted names become nested modules)."""
    root = _Holder()
    for key, value in state_dict.items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if not isinstance(getattr(module, part, None), torch.nn.Module):
                module.add_module(part, _Holder())
            module = getattr(module, part)
        if value.is_floating_point():
            module.register_parameter(leaf, torch.nn.Parameter(value, requires_grad=False))
        else:
            module.register_buffer(leaf, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)         # torch.jit is deprecated, but it is what OpenAI used
        torch.jit.save(torch.jit.script(root), str(path))
    return path


def _openai_like_state_dict() -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    return {
        "positional_embedding": torch.randn(77, 16).half(),
        "visual.proj": torch.randn(24, 8).half(),
        "visual.transformer.resblocks.0.attn.in_proj_weight": torch.randn(72, 24).half(),
        "visual.transformer.resblocks.0.attn.out_proj.bias": torch.randn(24),
        "visual.transformer.resblocks.1.ln_1.weight": torch.randn(24).double(),
        "logit_scale": torch.tensor(4.6052).half(),
        "input_resolution": torch.tensor(224),
        "context_length": torch.tensor(77),
        "vocab_size": torch.tensor(49408),
    }


def test_torchscript_archive_is_read_bit_identical_to_torch_jit_load(tmp_path):
    sd = _openai_like_state_dict()
    path = save_torchscript(sd, tmp_path / "ViT-B-16.pt")
    loaded = load_verified(path, "P2G")
    assert loaded.kind == "torchscript" and loaded.sha256 == _sha(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = torch.jit.load(str(path)).state_dict()      # our own file: safe to run torch's loader here
    assert list(loaded.obj) == list(reference) and set(reference) == set(sd)
    for k, v in reference.items():
        got = loaded.obj[k]
        assert got.dtype == v.dtype and got.shape == v.shape and got.stride() == v.stride()
        assert torch.equal(got.view(torch.uint8) if got.dim() else got, v.view(torch.uint8) if v.dim() else v)


def _edit_member(src: Path, dst: Path, suffix: str, edit) -> Path:
    return _rewrite_zip(src, dst, lambda n, b: edit(b) if n.endswith(suffix) else b)


def test_torchscript_archive_code_is_never_run_and_code_in_its_data_is_refused(tmp_path, tiny_config):
    marker = tmp_path / "pwned"
    src = save_torchscript(_openai_like_state_dict(), tmp_path / "ok.pt")
    # data.pkl that names os.system: refused as code, nothing runs
    evil = pickle.dumps(_Payload(os.system, f"touch {marker}"), protocol=2)
    bad = _edit_member(src, tmp_path / "evil_ts.pt", "/data.pkl", lambda _b: evil)
    with pytest.raises(WeightsRefused) as exc:
        load_verified(bad, "P2G")
    _one_sentence(exc.value, "P2G", "evil_ts.pt", "would run code", "not executed")
    # the archive's own code is never compiled or run: a forward that would create the marker changes nothing
    hostile = _edit_member(src, tmp_path / "code_ts.pt", "__torch__.py",
                           lambda b: b + f"\nimport os\nos.system('touch {marker}')\n".encode())
    assert set(load_verified(hostile, "P2G").obj) == set(_openai_like_state_dict())
    assert not marker.exists()
    # a record shorter than its tensor: one sentence, nothing read past it
    with zipfile.ZipFile(src) as zf:
        rec = max((n for n in zf.namelist() if "/data/" in n), key=lambda n: zf.getinfo(n).file_size)
    short = _rewrite_zip(src, tmp_path / "short_ts.pt", lambda n, b: b[:4] if n == rec else b)
    with pytest.raises(WeightsCorrupt) as exc:
        load_verified(short, "P2G")
    _one_sentence(exc.value, "P2G", "short_ts.pt", "truncated record")


# --------------------------------------------------------------------------------------------- backbone lookup

def _hub_file(cache: Path, repo_id: str, filename: str, data: bytes) -> Path:
    """A file in the Hugging Face cache layout (models--org--name/refs/main → snapshots/<commit>/file)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    path = repo / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_p2g_backbone_is_looked_up_as_open_clip_safetensors_first(tmp_path, weights_home, monkeypatch):
    import huggingface_hub.constants as hub_constants
    from safetensors.torch import save
    cache = tmp_path / "hub"
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    spec = get_spec("P2G")
    repo = next(s.repo_id for s in spec.backbone.sources if s.type == "hf")
    with pytest.raises(WeightsUnavailable) as exc:
        W.resolve_weights(spec, part="backbone")
    assert "open_clip_model.safetensors or open_clip_pytorch_model.bin" in str(exc.value)
    buf = io.BytesIO()
    torch.save({"logit_scale": torch.tensor(4.6)}, buf)
    pickled = _hub_file(cache, repo, "open_clip_pytorch_model.bin", buf.getvalue())
    assert W.resolve_weights(spec, part="backbone") == pickled
    safe = _hub_file(cache, repo, "open_clip_model.safetensors", save({"logit_scale": torch.tensor(4.6)}))
    assert W.resolve_weights(spec, part="backbone") == safe
    st = W.status(spec, "backbone", verify=True)
    assert st.state == "installed" and st.path == safe and st.sha256 == _sha(safe)
    assert load_verified(safe, "P2G").kind == "safetensors"
    # a checksum-pinned file is never swapped for another file of the same state dict
    pinned = dataclasses.replace(spec, backbone=dataclasses.replace(spec.backbone, sha256=_sha(pickled)))
    assert W.resolve_weights(pinned, part="backbone") == pickled


@pytest.mark.parametrize("value, match", [
    (torch.ones(5, 512, dtype=torch.int64), "torch.int64, not floating-point"),
    (torch.ones(5, 512, dtype=torch.bool), "torch.bool, not floating-point"),
    (torch.full((5, 512), 1e300, dtype=torch.float64), "too large for float32"),
], ids=["int64", "bool", "float64-huge"])
def test_p2g_task_keys_are_never_cast_from_integers_or_overflow(value, match):
    from tests.unit.test_p2g import _checkpoint
    det = create_detector("P2G", pretrained=False)
    ckpt = _checkpoint(5)
    ckpt["keys"]["fake_keys_one_cluster"] = value
    with pytest.raises(WeightsCorrupt, match=match) as exc:
        det.load_checkpoint(ckpt, "keys.tar")
    _one_sentence(exc.value, "P2G", "keys.tar")
