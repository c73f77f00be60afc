"""The Ray engine gives the local engine's results: on a private local instance, on a two-node loopback cluster,
after an actor is killed mid-run, and after an interrupted run resumes from its shards.

Ray is an optional extra (requirements-scale.txt, part of the test requirements). Every Ray process a test starts
carries a private RAY_AUTH_TOKEN, which is how the tests find and count them (none may be left behind).
"""
from __future__ import annotations

import csv
import json
import math
import os
import secrets
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import TINY_YAML, make_tiny_checkpoint, png_bytes
from tests.helpers.ray_cluster import LoopbackCluster, pids_with
from tests.unit.test_cli import run

pytest.importorskip("ray")

from core.cli.main import main  # noqa: E402
from core.evaluation import datasets as D  # noqa: E402
from core.evaluation import runner as E  # noqa: E402
from core.evaluation.distributed.cluster import plan_resources  # noqa: E402
from core.evaluation.distributed.engine import evaluate_ray  # noqa: E402
from core.evaluation.distributed.shards import ShardStore  # noqa: E402
from core.models import install  # noqa: E402
from core.models.factory import create_detector  # noqa: E402
from core.models.registry import get_spec  # noqa: E402

DETS = {"TINYA": 0.5, "TINYB": 0.3}           # id → ensemble weight


def huge_png() -> bytes:
    """A valid 1×1 PNG whose header claims 60000×60000 pixels (a decompression bomb by its dimensions)."""
    raw = png_bytes((1, 1))
    ihdr = bytearray(raw[16:29])
    ihdr[0:8] = struct.pack(">II", 60000, 60000)
    chunk = b"IHDR" + bytes(ihdr)
    return raw[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


def make_folder(root: Path, n_each: int = 5, size: int = 40) -> dict[str, bytes]:
    files = {}
    for i in range(n_each):
        files[f"0_real/r{i:03d}.png"] = png_bytes((size + i % 7, size), seed=i)
        files[f"1_fake/gan/f{i:03d}.png"] = png_bytes((size, size + i % 5), seed=1000 + i)
    files.update({"0_real/empty.png": b"", "1_fake/truncated.png": png_bytes((64, 64), seed=7)[:80],
                  "1_fake/not_an_image.png": b"<html>this is not an image</html>", "0_real/huge.png": huge_png(),
                  "README.txt": b"labels come from the folder names", "unsorted/x.png": png_bytes(seed=3)})
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


@pytest.fixture()
def env(tiny_config, weights_home, tmp_path, monkeypatch):
    """Two tiny test detectors installed in an isolated weights folder; a private Ray token for this test."""
    (tiny_config / "tiny.yaml").unlink()
    for i, (det_id, weight) in enumerate(DETS.items()):    # random convolutions: scores differ per image
        (tiny_config / f"{det_id.lower()}.yaml").write_text(TINY_YAML.replace("id: TINY", f"id: {det_id}")
                                                            .format(weight=weight))
        install.import_file(make_tiny_checkpoint(tmp_path / f"{det_id}.pt", seed=i + 1), get_spec(det_id),
                            weights_dir=weights_home)
    token = secrets.token_hex(16)
    monkeypatch.setenv("RAY_AUTH_TOKEN", token)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    yield {"DEEPFAKE_LENS_CONFIG_DIRS": str(tiny_config), "DEEPFAKE_LENS_WEIGHTS": str(weights_home),
           "HF_HUB_CACHE": str(tmp_path / "hub"), "DEEPFAKE_LENS_CACHE": os.environ["DEEPFAKE_LENS_CACHE"],
           "RAY_AUTH_TOKEN": token, "RAY_AUTH_MODE": "token", "token": token}
    assert not pids_with(token), "Ray processes left behind"


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_same_predictions(a: Path, b: Path) -> None:
    """Same rows in the same order, same columns and statuses; scores equal to 1e-5 (p_fake) / 1e-4 (logit)."""
    ra, rb = read_rows(a), read_rows(b)
    assert len(ra) == len(rb) and [r["path"] for r in ra] == [r["path"] for r in rb]
    assert list(ra[0]) == list(rb[0])
    for x, y in zip(ra, rb):
        for col in x:
            if col.endswith(("_p_fake", "_logit")) and x[col] and y[col]:
                tol = 1e-5 if col.endswith("_p_fake") else 1e-4
                assert abs(float(x[col]) - float(y[col])) <= tol, (x["path"], col)
            else:
                assert x[col] == y[col], (x["path"], col, x[col], y[col])


def assert_close(a, b, where="") -> None:  # noqa: ANN001
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{k}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5), where
    else:
        assert a == b, where


def assert_same_metrics(a: Path, b: Path) -> None:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    assert_close(da["dataset"], db["dataset"], "dataset")
    assert_close(da["detectors"], db["detectors"], "detectors")
    assert da["threshold"] == db["threshold"]


# ------------------------------------------------------------------------------------------ fast checks

def test_pools_always_leave_room_for_reads():
    for cpus, nodes, dets, workers in [(2, 1, 1, None), (2, 2, 1, None), (2, 1, 2, None), (2, 1, 1, 8),
                                       (64, 8, 3, None), (1, 1, 1, None), (2, 2, 2, 1)]:
        p = plan_resources(cpus, nodes, dets, workers)
        assert p.pool >= 1 and 0 < p.actor_cpus <= 1
        assert p.pool * dets * p.actor_cpus + p.read_cpus * nodes <= cpus + 1e-9, (cpus, nodes, dets, workers)
    assert plan_resources(2, 2, 1).pool == 2            # one actor per node on the loopback cluster


def test_shards_round_trip_and_skip_damaged(tmp_path):
    store = ShardStore(tmp_path / "s", "k1")
    store.write([{"i": 0, "sha": "a", "status": "ok", "reason": ""}])
    store.write([{"i": 1, "sha": "b", "status": "error", "reason": "empty"}, {"i": 0, "sha": "x", "status": "ok"}])
    (store.folder / "part-000099.jsonl").write_text("{not json")
    done = ShardStore(tmp_path / "s", "k1").load()
    assert sorted(done) == [0, 1] and done[0]["sha"] == "a"          # the first record of a row wins
    store.remove()
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("extra, why", [(["--workers", "2"], "--engine ray"), (["--address", "auto"], "--engine ray"),
                                        (["--engine", "ray", "--workers", "0"], "at least 1")])
def test_ray_options_are_checked_first(extra, why, tmp_path, capsys):
    (tmp_path / "d").mkdir()
    code = main(["evaluate", str(tmp_path / "d"), "--detectors", "NPR", "--out", str(tmp_path / "o"), *extra])
    assert code == 2 and why in capsys.readouterr().err


def test_summary_shows_tpr_and_tnr(env, tmp_path, capsys):
    make_folder(tmp_path / "data", n_each=3)
    code = main(["evaluate", str(tmp_path / "data"), "--detectors", "TINYA", "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert code == 0
    header = out.splitlines()[0].split()
    assert {"tpr", "tnr", "accuracy", "roc_auc"} <= set(header)
    row = next(line for line in out.splitlines() if line.startswith("TINYA:original")).split()
    assert len(row) == len(header)


# ------------------------------------------------------------------------------------------ Ray runs

@pytest.mark.slow
def test_local_instance_gives_the_local_engines_results(env, tmp_path):
    make_folder(tmp_path / "data")
    outs = {}
    for engine in ("local", "ray"):
        outs[engine] = tmp_path / engine
        res = run(["evaluate", str(tmp_path / "data"), "--detectors", "TINYA,TINYB", "--engine", engine,
                   "--batch-size", "3", "--no-cache", "--out", str(outs[engine])], env, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "Traceback" not in res.stderr and "100%" in res.stderr
    assert_same_predictions(outs["local"] / "predictions.csv", outs["ray"] / "predictions.csv")
    assert_same_metrics(outs["local"] / "metrics.json", outs["ray"] / "metrics.json")
    by = {r["path"]: r for r in read_rows(outs["ray"] / "predictions.csv")}
    for name in ("0_real/empty.png", "1_fake/truncated.png", "1_fake/not_an_image.png", "0_real/huge.png"):
        assert by[name]["status"] == "error" and by[name]["reason"], name
    assert "pixels" in by["0_real/huge.png"]["reason"]
    assert "weights: found on the node" in res.stderr and "1 node(s)" in res.stderr
    assert not (outs["ray"] / ".ray-shards").exists()                 # merged and removed after a full run


def _actor_pids(token: str) -> list[int]:
    out = []
    for pid in pids_with(token):
        try:
            if b"Scorer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            continue
    return out


@pytest.mark.slow
def test_killed_actor_is_replaced_and_no_row_is_lost_or_doubled(env, tmp_path):
    files = make_folder(tmp_path / "data", n_each=40, size=96)
    dets = [create_detector(k) for k in DETS]
    ds = D.from_path(tmp_path / "data")
    local = E.evaluate(ds, dets, batch_size=2, cache=False)
    killed: list[tuple[int, int]] = []

    def progress(done: int, total: int, eta: float | None) -> None:
        if done and not killed:
            for pid in _actor_pids(env["token"]):
                os.kill(pid, signal.SIGKILL)
                killed.append((pid, done))

    got = evaluate_ray(ds, dets, batch_size=2, cache=False, progress=progress, shards_dir=tmp_path / "shards")
    assert killed and all(done < len(local.rows) // 2 for _, done in killed), killed      # killed mid-run
    assert not got.cancelled and len(got.rows) == len(files)
    assert got.rows == local.rows                                     # every row once, same order and statuses
    for key in local.p_fake:
        np.testing.assert_allclose(got.p_fake[key], local.p_fake[key], atol=1e-5)
    assert got.computed >= local.computed


@pytest.mark.slow
def test_interrupted_run_resumes_without_recomputing(env, tmp_path):
    make_folder(tmp_path / "data", n_each=20)
    dets = [create_detector("TINYA")]
    ds = D.from_path(tmp_path / "data")
    local = E.evaluate(ds, dets, batch_size=2, cache=False)
    seen = [0]
    first = evaluate_ray(ds, dets, batch_size=2, cache=False, progress=lambda d, t, e: seen.append(d),
                         cancel=lambda: seen[-1] >= 8, shards_dir=tmp_path / "shards")       # Ctrl-C midway
    done = sum(r.status == "ok" for r in first.rows)
    assert first.cancelled and 0 < done < sum(r.status == "ok" for r in local.rows)
    assert any((tmp_path / "shards").rglob("part-*.jsonl"))
    again = evaluate_ray(ds, dets, batch_size=2, cache=False, shards_dir=tmp_path / "shards")
    assert again.rows == local.rows and not again.cancelled
    scored = sum(r.status == "ok" for r in local.rows)
    assert again.from_cache == done and again.computed == scored - done     # finished images were not recomputed
    np.testing.assert_allclose(again.p_fake["TINYA:original"], local.p_fake["TINYA:original"], atol=1e-5)
    assert not (tmp_path / "shards").exists()


@pytest.fixture()
def cluster(env, tmp_path):
    """Two nodes whose weights folders are empty: only the driver has the weights, and ships them."""
    empty = tmp_path / "no-weights"
    empty.mkdir()
    keep = {k: v for k, v in env.items() if k.startswith(("DEEPFAKE_LENS", "HF_"))}
    with LoopbackCluster(2, env={**keep, "DEEPFAKE_LENS_WEIGHTS": str(empty)}, token=env["token"]) as c:
        yield c


@pytest.mark.slow
def test_two_node_loopback_cluster(env, cluster, tmp_path):
    make_folder(tmp_path / "data", n_each=12)
    args = ["evaluate", str(tmp_path / "data"), "--detectors", "TINYA", "--batch-size", "2", "--no-cache"]
    local = run([*args, "--out", str(tmp_path / "local")], env, timeout=300)
    assert local.returncode == 0, local.stderr
    res = run([*args, "--engine", "ray", "--address", cluster.address, "--out", str(tmp_path / "ray")], env,
              timeout=300)
    assert res.returncode == 0, res.stderr + cluster.logs()
    assert "2 node(s)" in res.stderr and "TINYA:original weights: shipped by the driver on" in res.stderr
    assert_same_predictions(tmp_path / "local" / "predictions.csv", tmp_path / "ray" / "predictions.csv")
    assert_same_metrics(tmp_path / "local" / "metrics.json", tmp_path / "ray" / "metrics.json")
    no_token = {**env, "RAY_AUTH_TOKEN": "wrong" * 8}
    bad = run([*args, "--engine", "ray", "--address", cluster.address, "--out", str(tmp_path / "bad")], no_token,
              timeout=300)
    assert bad.returncode == 2 and "RAY_AUTH_TOKEN" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
