"""`python -m core ...` end to end in a subprocess: stable commands, exit code 2 + one sentence on user errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
from tests.helpers import ROOT, make_tiny_checkpoint, png_bytes

# each test starts a Python process that imports torch (~5 s): full suite only, not the fast lane
pytestmark = pytest.mark.slow


def run(args, env_extra, timeout=120):
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture()
def env(tiny_config, weights_home, tmp_path):
    return {"DEEPFAKE_LENS_CONFIG_DIRS": str(tiny_config), "DEEPFAKE_LENS_WEIGHTS": str(weights_home),
            "HF_HUB_CACHE": str(tmp_path / "hub")}


def test_list_shows_every_detector_with_status(env):
    out = run(["list"], env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for det_id in ("R50_TF", "R50_nodown", "CLIP-D", "P2G", "NPR", "FACE", "TINY"):
        assert any(l.split()[0] == det_id for l in lines), det_id
    tiny = next(l for l in lines if l.startswith("TINY"))
    assert tiny.split()[1:3] == ["original", "missing"]


def test_import_status_detect_json(env, tmp_path):
    ckpt = make_tiny_checkpoint(tmp_path / "t.pt")
    out = run(["weights", "import", str(ckpt), "--detector", "TINY"], env)
    assert out.returncode == 0, out.stderr
    assert "imported TINY:original" in out.stdout
    out = run(["weights", "status", "--json"], env)
    rows = json.loads(out.stdout)
    assert next(r for r in rows if r["detector"] == "TINY")["state"] == "installed"
    assert next(l for l in run(["list"], env).stdout.splitlines() if l.startswith("TINY")).split()[2] == "installed"
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((40, 30)))
    out = run(["detect", str(img), "--detector", "TINY", "--json"], env)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["detector_id"] == "TINY" and 0 <= res["p_fake"] <= 1 and res["input_size"] == [40, 30]
    assert res["label"] in ("real", "fake") and len(res["weights_sha256"]) == 64
    out = run(["detect", str(img), "--detector", "TINY"], env)
    assert out.returncode == 0 and "p_fake=" in out.stdout


def test_bundle_import_from_cli(env, tiny_config, tmp_path):
    (tiny_config / "tiny_tf.yaml").write_text(
        "id: TINY\nvariant: truefake\narch: tiny_cnn\n"
        "weights: {file: best.pt, container: model, sources: [{type: bundle, member: 'TINY/**/best.pt'}]}\n"
        "preprocess: {mode: full}\n")
    bundle = tmp_path / "b.zip"
    with zipfile.ZipFile(bundle, "w") as zf:
        zf.write(make_tiny_checkpoint(tmp_path / "t.pt"), "TINY/run/best.pt")
    out = run(["weights", "import", str(bundle)], env)
    assert out.returncode == 0, out.stderr
    assert "imported TINY:truefake" in out.stdout


@pytest.mark.parametrize("case", ["unknown_id", "missing_weights", "corrupt_weights", "refused_weights",
                                  "bad_image", "missing_image", "wrong_arch"])
def test_user_errors_exit_2_with_one_sentence(env, tmp_path, case):
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes())
    args = ["detect", str(img), "--detector", "TINY"]
    if case == "unknown_id":
        args[3] = "NOPE"
    elif case == "missing_weights":
        pass
    elif case == "corrupt_weights":
        bad = tmp_path / "bad.pt"
        bad.write_bytes(make_tiny_checkpoint(tmp_path / "t.pt").read_bytes()[:100])
        args += ["--weights", str(bad)]
    elif case == "refused_weights":
        import torch
        from tests.unit.test_weights import _Evil
        evil = tmp_path / "evil.pt"
        torch.save({"model": _Evil(str(tmp_path / "pwned"))}, evil)
        args += ["--weights", str(evil)]
    elif case == "wrong_arch":
        import torch
        wrong = tmp_path / "wrong.pt"
        torch.save({"model": {"x": torch.zeros(1)}}, wrong)
        args += ["--weights", str(wrong)]
    elif case == "bad_image":
        img.write_bytes(b"<html>not an image</html>")
        args += ["--weights", str(make_tiny_checkpoint(tmp_path / "t.pt"))]
    elif case == "missing_image":
        args[1] = str(tmp_path / "nope.png")
    out = run(args, env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    err = out.stderr.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert out.stdout == ""
    assert not (tmp_path / "pwned").exists()
