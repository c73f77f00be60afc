"""The command line's side of the graded assessment and of calibration profiles: `detect --detector ALL`,
`report`, `calibrate` on images, `evaluate --profile`, and hostile profiles (exit 2, one sentence)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.cli.main import main
from core.verdict.calibration import load_profile
from core.verdict.fitting import ScoreColumn, fit_profile
from tests.helpers import TINY_YAML, install_tiny_detectors, make_tiny_checkpoint, png_bytes


@pytest.fixture()
def five(tiny_config, weights_home):
    """Five decided tiny detectors: only TA is confident (p_fake 0.95); the others hover near 0.5."""
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.3, 3.0), "TB": (0.25, 0.2), "TC": (0.2, -0.1),
                                                        "TD": (0.15, 0.3), "TE": (0.1, -0.2)})


def _detect(capsys, *args: str) -> dict:
    assert main(["detect", *args, "--detector", "ALL", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_single_voter_is_inconclusive_and_the_vote_stays_beneath(five, tmp_path, capsys):
    img = tmp_path / "big.png"
    img.write_bytes(png_bytes((320, 240)))
    d = _detect(capsys, str(img))
    a = d["assessment"]
    assert list(a)[:4] == ["level", "direction", "p_fake", "reasons"]
    assert (a["level"], a["direction"], a["p_fake"]) == ("inconclusive", None, None)
    assert a["reasons"][0] == "only 1 of 5 detectors was confident enough to vote (2 needed)"
    assert d["vote"]["verdict"] == "FAKE"
    assert d["vote"]["summary"] == "weighted vote of the original app: FAKE, 1 of 5 detectors voted"
    assert d["vote"]["fusions_note"].startswith("uncalibrated")
    assert main(["detect", str(img), "--detector", "ALL"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == "Inconclusive: only 1 of 5 detectors was confident enough to vote (2 needed)"
    assert any(line.startswith("  · no probability: the detectors' scores are uncalibrated") for line in lines)
    vote_at = lines.index("Weighted vote of the original app: FAKE, 1 of 5 detectors voted")
    assert "uncalibrated fusions" in lines[vote_at + 1] and vote_at > 2
    assert "seed" not in text.lower()
    assert "CLIP-D" in d["not_run"] and not any("CLIP-D" in r for r in a["reasons"])   # no weights: no doubt


def test_a_tiny_solid_image_is_inconclusive_whatever_the_detectors_say(tiny_config, weights_home, tmp_path, capsys):
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.3, 4.0), "TB": (0.25, 4.0), "TC": (0.2, 4.0)})
    red = tmp_path / "red.png"
    Image.new("RGB", (16, 16), (255, 0, 0)).save(red)
    d = _detect(capsys, str(red))
    assert d["vote"]["verdict"] == "FAKE" and d["vote"]["n_voted"] == 3          # the original vote: unanimous
    a = d["assessment"]
    assert a["level"] == "inconclusive" and a["direction"] is None
    assert a["headline"] == ("Inconclusive: the image is only 16×16 pixels (shorter side below 64): too small "
                             "to judge")


def test_report_json_carries_the_same_assessment_as_detect(five, tmp_path, capsys):
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((200, 150), seed=3))
    a = _detect(capsys, str(img))["assessment"]
    assert main(["report", str(img), "--out", str(tmp_path / "case"), "--no-probe"]) == 0
    capsys.readouterr()
    r = json.loads((tmp_path / "case" / "report.json").read_text())["assessment"]
    assert {k: r[k] for k in ("level", "direction", "p_fake", "reasons")} == \
        {k: a[k] for k in ("level", "direction", "p_fake", "reasons")}


def _random_tiny(config: Path, weights: Path, ids: dict[str, int]) -> None:
    """Tiny detectors with random (image-dependent) outputs, one seed each."""
    from core.models import install
    from core.models.registry import get_spec
    for det_id, seed in ids.items():
        (config / f"{det_id.lower()}.yaml").write_text(TINY_YAML.replace("id: TINY", f"id: {det_id}")
                                                       .format(weight=0.3))
        install.import_file(make_tiny_checkpoint(config / f"{det_id}.pt", seed=seed), get_spec(det_id),
                            weights_dir=weights)


def _folder(root: Path, n: int = 7) -> Path:
    for label in ("real", "fake"):
        (root / label).mkdir(parents=True)
        for i in range(n):
            rng = np.random.default_rng(i + (label == "fake") * 100)
            base = 60 if label == "real" else 190                       # fakes are brighter: a learnable cue
            arr = np.clip(base + rng.normal(0, 40, (48, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / label / f"{i}.png")
    return root


def test_calibrate_on_images_then_detect_evaluate_and_report_with_the_profile(tiny_config, weights_home, tmp_path,
                                                                               capsys):
    _random_tiny(tiny_config, weights_home, {"TA": 1, "TB": 2})
    data = _folder(tmp_path / "data")
    prof_path = tmp_path / "p.json"
    assert main(["calibrate", str(data), "--detectors", "TA,TB", "--out", str(prof_path), "--target-fpr", "0.05",
                 "--no-cache"]) == 0
    table = capsys.readouterr().out
    assert "ECE before → after" in table and "weighted vote of the original app" in table
    assert "learned fusion (stacked, cross-validated)" in table
    prof = load_profile(prof_path)
    assert set(prof.detectors) == {"TA:original", "TB:original"}
    assert all(len(c.weights_sha256) == 64 and c.threshold_rule == "FPR <= 5%" for c in prof.detectors.values())
    assert (prof.provenance["n_real"], prof.provenance["n_fake"]) == (7, 7) and prof.vote is not None
    # detect: the profile applies to these weights, so the assessment has a calibrated P(fake)
    a = _detect(capsys, str(data / "fake" / "0.png"), "--profile", str(prof_path))["assessment"]
    assert a["p_fake"] is not None and 0 < a["p_fake"] < 1 and a["calibration"] == []
    # evaluate: calibrated and stacked columns, their metrics, the profile's own table
    assert main(["evaluate", str(data), "--detectors", "TA,TB", "--profile", str(prof_path), "--out",
                 str(tmp_path / "ev"), "--no-cache"]) == 0
    capsys.readouterr()
    header = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()[0].split(",")
    assert {"TA:original_calibrated_p_fake", "TB:original_calibrated_p_fake", "stacked_p_fake"} <= set(header)
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {"TA:original_calibrated", "TB:original_calibrated", "stacked"} <= set(m["detectors"])
    assert m["calibration_profile"]["name"] == "p.json"
    sources = [r["source"] for r in m["calibration_profile"]["cross_validated_when_fitted"]]
    assert sources[-2:] == ["learned fusion (stacked, cross-validated)", "weighted vote of the original app"]
    # report: the same profile reaches report.json
    assert main(["report", str(data / "real" / "1.png"), "--out", str(tmp_path / "case"), "--no-probe",
                 "--profile", str(prof_path)]) == 0
    rep = json.loads((tmp_path / "case" / "report.json").read_text())["assessment"]
    assert rep["p_fake"] is not None


def test_a_profile_fitted_on_other_weights_is_not_applied_and_says_why(five, tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    cols = [ScoreColumn(f"{k}:original", 3.0 * (2 * y - 1) + rng.normal(0, 2, 100), "f" * 64, k, "original")
            for k in ("TA", "TB")]
    fit_profile(y, cols).save(tmp_path / "other.json")
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((200, 150)))
    a = _detect(capsys, str(img), "--profile", str(tmp_path / "other.json"))["assessment"]
    assert a["p_fake"] is None
    assert any(n.startswith("TA:original: calibration not applied: fitted on weights ffffffffffff…")
               for n in a["calibration"])


def _profile_doc() -> dict:
    y = np.array([0, 1] * 20)
    z = np.where(y == 1, 1.0, -1.0) + np.linspace(-1.5, 1.5, 40)
    return fit_profile(y, [ScoreColumn("TA:original", z, "a" * 64, "TA", "original")]).to_dict()


def _hostile(kind: str) -> str:
    doc = _profile_doc()
    entry = doc["detectors"]["TA:original"]
    if kind == "nan_threshold":
        entry["threshold"] = math.nan
    elif kind == "string_metric":
        entry["before"] = {"auc": "high"}
    elif kind == "short_sha":
        entry["weights_sha256"] = "abc"
    elif kind == "bad_isotonic":
        entry["calibrator"] = {"method": "isotonic", "x": [1, 0], "y": [0.2, 0.1]}
    elif kind == "vote":
        doc["vote"] = {"auc": "x"}
    elif kind == "stacker":
        doc["stacker"] = {"inputs": ["TA:original"], "coef": [], "missing_coef": [], "intercept": 0}
    elif kind == "detectors":
        doc["detectors"] = ["TA:original"]
    elif kind == "negative_count":
        entry["n_real"] = -3
    return json.dumps(doc, allow_nan=True)


@pytest.mark.parametrize("kind", ["nan_threshold", "string_metric", "short_sha", "bad_isotonic", "vote", "stacker",
                                  "detectors", "negative_count"])
def test_a_hostile_profile_is_refused_in_one_sentence(five, tmp_path, capsys, kind):
    bad = tmp_path / "bad.json"
    bad.write_text(_hostile(kind))
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((64, 64)))
    for argv in (["detect", str(img), "--detector", "ALL", "--profile", str(bad)],
                 ["detect", str(img), "--detector", "TA", "--profile", str(bad)],
                 ["report", str(img), "--out", str(tmp_path / "r"), "--profile", str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and str(bad) in err, (kind, err)
