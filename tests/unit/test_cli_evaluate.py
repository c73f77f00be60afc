"""`python -m core evaluate` end to end on a generated labelled folder with TINY weights made by the test."""
from __future__ import annotations

import csv
import json
import zipfile

import pytest
from tests.helpers import TINY_YAML, make_tiny_checkpoint, png_bytes
from tests.unit.test_cli import run

from core.cli.main import main


@pytest.fixture()
def env(tiny_config, weights_home, tmp_path, monkeypatch):
    (tiny_config / "tiny2.yaml").write_text(TINY_YAML.format(weight=0.3).replace("id: TINY", "id: TINY2"))
    cache = tmp_path / "cache"
    monkeypatch.setenv("DEEPFAKE_LENS_CACHE", str(cache))
    return {"DEEPFAKE_LENS_CONFIG_DIRS": str(tiny_config), "DEEPFAKE_LENS_WEIGHTS": str(weights_home),
            "HF_HUB_CACHE": str(tmp_path / "hub"), "DEEPFAKE_LENS_CACHE": str(cache)}


def make_folder(root):
    files = {}
    for i in range(4):
        files[f"0_Real/r{i}.png"] = png_bytes((40 + i, 36), seed=i)
        files[f"1_fake/progan/f{i}.png"] = png_bytes((36, 30 + i), seed=50 + i)
    files["0_Real/corrupt.png"] = b"\x89PNG\r\n\x1a\nbroken"
    files["1_fake/empty.jpg"] = b""
    files["README.txt"] = b"labels come from the folder names"
    files["unsorted/x.png"] = png_bytes(seed=99)
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return files


@pytest.mark.slow
def test_evaluate_end_to_end_then_cache_hit(env, tmp_path):
    files = make_folder(tmp_path / "data")
    a = make_tiny_checkpoint(tmp_path / "a.pt", seed=0)
    b = make_tiny_checkpoint(tmp_path / "b.pt", seed=4)
    out = tmp_path / "out"
    args = ["evaluate", str(tmp_path / "data"), "--detectors", "TINY,TINY2:original", "--weights", f"TINY={a}",
            "--weights", f"TINY2:original={b}", "--threshold", "0.52", "--out", str(out)]
    res = run(args, env)
    assert res.returncode == 0, res.stderr
    assert "evaluate:" in res.stderr and "img" in res.stderr and "100%" in res.stderr       # tqdm bar on stderr
    assert "Traceback" not in res.stderr
    assert "8 scored" in res.stdout and "2 unreadable" in res.stdout and f"wrote {out}" in res.stdout

    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == len(files)                                   # one row per input file
    by = {r["path"]: r for r in rows}
    assert set(by) == set(files)
    assert by["0_Real/corrupt.png"]["status"] == "error" and by["0_Real/corrupt.png"]["reason"]
    assert by["1_fake/empty.jpg"]["status"] == "error" and "empty" in by["1_fake/empty.jpg"]["reason"]
    assert by["README.txt"]["status"] == "skipped" and by["unsorted/x.png"]["status"] == "unlabelled"
    ok = by["1_fake/progan/f0.png"]
    assert ok["label"] == "fake" and ok["group"] == "progan" and ok["status"] == "ok"
    for col in ("TINY:original_logit", "TINY:original_p_fake", "TINY2:original_logit", "TINY2:original_p_fake",
                "ensemble_p_fake", "ensemble_verdict"):
        assert col in ok and ok[col] != "", col
    assert 0 <= float(ok["TINY:original_p_fake"]) <= 1
    assert by["0_Real/corrupt.png"]["TINY:original_p_fake"] == ""

    doc = json.loads((out / "metrics.json").read_text())
    assert doc["threshold"] == 0.52 and doc["dataset"]["files"] == len(files)
    assert doc["dataset"]["by_status"] == {"ok": 8, "unlabelled": 1, "skipped": 1, "error": 2, "cancelled": 0}
    t = doc["detectors"]["TINY:original"]
    assert t["detector_id"] == "TINY" and t["variant"] == "original" and len(t["weights_sha256"]) == 64
    assert t["threshold"] == 0.52 and t["metrics"]["threshold"] == 0.52 and t["preprocessing"]
    m = t["metrics"]
    assert m["n"] == 8 and m["n_real"] == 4 and m["n_fake"] == 4
    for k in ("accuracy", "balanced_accuracy", "tpr", "tnr", "roc_auc", "average_precision", "eer",
              "eer_threshold", "tpr_at_fpr_1", "tpr_at_fpr_5", "oracle_threshold", "oracle_accuracy", "ece"):
        assert isinstance(m[k], float), k
    assert "progan" in t["groups"] and t["groups"]["progan"]["n"] == 8
    assert doc["detectors"]["ensemble"]["kind"] == "ensemble"
    assert {"python", "torch", "scikit-learn", "numpy"} <= set(doc["versions"])

    res2 = run(args, env)                                             # same inputs: everything from the cache
    assert res2.returncode == 0, res2.stderr
    assert "0 scores computed, 16 from the cache" in res2.stdout
    assert json.loads((out / "metrics.json").read_text())["detectors"]["TINY:original"]["metrics"] == m


def test_zip_input_and_predictions_csv_only(env, tmp_path, capsys):
    make_tiny_checkpoint(tmp_path / "a.pt")
    z = tmp_path / "set.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("set/real/a.png", png_bytes(seed=1))
        zf.writestr("set/fake/b.png", png_bytes(seed=2))
        zf.writestr("../evil.png", png_bytes(seed=3))
    out = tmp_path / "o1"
    assert main(["evaluate", str(z), "--detectors", "TINY", "--weights", f"TINY={tmp_path / 'a.pt'}",
                 "--out", str(out), "--no-cache"]) == 0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert [r["status"] for r in rows] == ["ok", "ok", "skipped"]
    assert "ensemble_p_fake" not in rows[0]                          # a single detector: no ensemble column
    assert not (tmp_path / "evil.png").exists()

    preds = tmp_path / "other_tool.csv"
    preds.write_text("id,label,score\na,fake,0.9\nb,real,0.2\nc,fake,0.4\nd,real,0.1\ne,,0.5\n")
    out2 = tmp_path / "o2"
    assert main(["evaluate", str(preds), "--out", str(out2)]) == 0
    doc = json.loads((out2 / "metrics.json").read_text())
    m = doc["detectors"]["score"]["metrics"]
    assert m["n"] == 4 and m["roc_auc"] == 1.0 and m["accuracy"] == 0.75
    assert len(list(csv.DictReader((out2 / "predictions.csv").open()))) == 5
    capsys.readouterr()


def test_labels_csv_with_compared_predictions(env, tmp_path):
    a = make_tiny_checkpoint(tmp_path / "a.pt")
    (tmp_path / "i").mkdir()
    for i in range(3):
        (tmp_path / "i" / f"{i}.png").write_bytes(png_bytes(seed=i))
    (tmp_path / "labels.csv").write_text("path,label\ni/0.png,real\ni/1.png,fake\ni/2.png,fake\n")
    (tmp_path / "theirs.csv").write_text("path,label,theirs\ni/0.png,real,0.1\ni/1.png,fake,0.8\ni/2.png,fake,0.7\n")
    out = tmp_path / "o"
    assert main(["evaluate", str(tmp_path / "labels.csv"), "--detectors", "TINY", "--weights", f"TINY={a}",
                 "--predictions", str(tmp_path / "theirs.csv"), "--out", str(out)]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert set(doc["detectors"]) == {"TINY:original", "theirs"}
    assert doc["detectors"]["theirs"]["metrics"]["roc_auc"] == 1.0


@pytest.mark.parametrize("case", ["missing_path", "unknown_detector", "no_detectors", "bad_weights_syntax",
                                  "weights_for_unchosen", "threshold_range", "weights_not_installed",
                                  "empty_folder", "bad_predictions", "duplicate_detector", "unwritable_out"])
def test_user_errors_exit_2_with_one_sentence(env, tmp_path, capsys, case):
    data = tmp_path / "data"
    (data / "real").mkdir(parents=True)
    (data / "real" / "a.png").write_bytes(png_bytes())
    a = make_tiny_checkpoint(tmp_path / "a.pt")
    args = ["evaluate", str(data), "--detectors", "TINY", "--weights", f"TINY={a}", "--out", str(tmp_path / "o")]
    if case == "missing_path":
        args[1] = str(tmp_path / "nope")
    elif case == "unknown_detector":
        args[3] = "NOPE"
    elif case == "no_detectors":
        args = ["evaluate", str(data), "--out", str(tmp_path / "o")]
    elif case == "bad_weights_syntax":
        args[5] = str(a)
    elif case == "weights_for_unchosen":
        args[5] = f"TINY2={a}"
    elif case == "threshold_range":
        args += ["--threshold", "1.5"]
    elif case == "weights_not_installed":
        args = args[:4] + args[6:]
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        args[1] = str(tmp_path / "empty")
    elif case == "bad_predictions":
        (tmp_path / "p.csv").write_text("a,b\n1,2\n")
        args += ["--predictions", str(tmp_path / "p.csv")]
    elif case == "duplicate_detector":
        args[3] = "TINY,TINY:original"
    elif case == "unwritable_out":
        (tmp_path / "o").write_text("a file, not a folder")
        args[-1] = str(tmp_path / "o" / "sub")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").is_dir()                    # nothing created on a user error
