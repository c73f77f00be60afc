"""Calibration profiles: fitting (Platt / isotonic by cross-validated log-loss, thresholds, learned fusion), the
profile file, and the CLI contract (calibrate, detect --detector ALL, evaluate --profile, report --profile)."""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import ROOT, install_tiny_detectors, png_bytes

from core.errors import ProfileError
from core.results import DetectionResult
from core.verdict.calibration import Calibrator, load_profile
from core.verdict.fitting import ScoreColumn, choose_threshold, ece, fit_profile


def complementary(n: int = 400, seed: int = 0):
    """Two tools, each informative on a different half of the data and overconfident (miscalibrated):
    tool A writes P(fake) in [0, 1], tool B a logit-like score."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    half = np.arange(n) < n // 2
    s = 2 * y - 1
    za = 3.0 * np.where(half, 3.0 * s + rng.normal(0, 1.5, n), rng.normal(0, 1.5, n))
    zb = 3.0 * np.where(~half, 3.0 * s + rng.normal(0, 1.5, n), rng.normal(0, 1.5, n))
    return y, za, zb


def write_csv(path: Path, y, za, zb) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "toolA", "toolB"])
        for i, (lab, a, b) in enumerate(zip(y, za, zb)):
            w.writerow([f"img{i}.png", "fake" if lab else "real", f"{1 / (1 + math.exp(-a)):.8f}", f"{b:.5f}"])
    return path


def run(args, env_extra=None, timeout=300):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


# --------------------------------------------------------------------------------------------- fitting

def test_calibrating_two_complementary_tools_lowers_ece_and_the_fusion_beats_both(tmp_path):
    y, za, zb = complementary()
    out = run(["calibrate", str(write_csv(tmp_path / "preds.csv", y, za, zb)), "--out", str(tmp_path / "p.json")])
    assert out.returncode == 0, out.stderr
    assert "ECE before → after" in out.stdout and "learned fusion (stacked, cross-validated)" in out.stdout
    prof = load_profile(tmp_path / "p.json")
    a, b = prof.detectors["toolA"], prof.detectors["toolB"]
    for cal in (a, b):
        assert cal.after["ece"] < cal.before["ece"] / 2, cal.key        # cross-validated ECE, at least halved
        assert cal.weights_sha256 is None and 0 < cal.threshold < 1
    best_single = max(a.before["auc"], b.before["auc"])
    assert prof.stacker is not None and prof.stacker.cv_auc > best_single + 0.05
    prov = prof.provenance
    assert (prov["n"], prov["n_real"] + prov["n_fake"]) == (400, 400) and len(prov["fingerprint"]) == 64
    assert prov["created"] and "5-fold" in prov["cross_validation"]


def test_auto_chooses_the_method_with_the_lower_cross_validated_log_loss():
    rng = np.random.default_rng(3)
    z = rng.uniform(-5, 5, 600)
    step = rng.random(600) < np.where(z > 1.0, 0.95, 0.05)          # a step: isotonic fits it, a sigmoid cannot
    prof = fit_profile(step.astype(int), [ScoreColumn("S", z)], method="auto")
    cal = prof.detectors["S"]
    assert cal.calibrator.method == "isotonic" and cal.cv_log_loss["isotonic"] < cal.cv_log_loss["platt"]
    smooth = rng.random(600) < 1 / (1 + np.exp(-0.8 * z))           # a logistic truth: Platt wins
    assert fit_profile(smooth.astype(int), [ScoreColumn("L", z)]).detectors["L"].calibrator.method == "platt"


def test_thresholds_max_balanced_accuracy_or_target_fpr():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.8, 0.9, 0.95])
    assert choose_threshold(y, p) == (0.3, "max balanced accuracy")   # p > 0.3 and p > 0.7 tie: the lower wins
    t, rule = choose_threshold(y, p, target_fpr=0.0)
    assert t == 0.7 and rule == "FPR <= 0%" and not (p[y == 0] > t).any()


def test_ece_of_perfect_and_of_overconfident_scores():
    y = np.array([0] * 50 + [1] * 50)
    assert ece(y, np.full(100, 0.5)) == pytest.approx(0.0)
    assert ece(y, np.where(y == 1, 1.0, 0.0)) == pytest.approx(0.0)
    assert ece(y, np.full(100, 0.99)) == pytest.approx(0.49)


def test_too_few_images_of_a_class_is_one_sentence():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    with pytest.raises(ProfileError, match="needs at least 5 scored real and 5 scored fake images"):
        fit_profile(y, [ScoreColumn("A", np.linspace(-1, 1, 10))])


def test_profile_round_trip_and_bad_files(tmp_path):
    y, za, zb = complementary(200)
    prof = fit_profile(y, [ScoreColumn("A:original", za, "a" * 64, "A", "original"), ScoreColumn("B", zb)])
    path = prof.save(tmp_path / "p.json")
    back = load_profile(path)
    assert back.detectors["A:original"].calibrator == prof.detectors["A:original"].calibrator
    assert back.stacker == prof.stacker and back.name == "p.json"
    bad = tmp_path / "bad.json"
    for text, msg in (("{", "not valid JSON"), ("[]", "not a Deepfake Lens calibration profile"),
                      ('{"format": "deepfake-lens-calibration-profile", "version": 9}', "version 9"),
                      ('{"format": "deepfake-lens-calibration-profile", "version": 1, "detectors": {"A": {"key": "A",'
                       ' "threshold": 0.5, "calibrator": {"method": "platt", "a": "x", "b": 0}}}}',
                       "the calibration of A is malformed")):
        bad.write_text(text)
        with pytest.raises(ProfileError, match=msg):
            load_profile(bad)
    with pytest.raises(ProfileError, match="cannot read the profile"):
        load_profile(tmp_path / "missing.json")


def test_a_profile_applies_only_to_the_weights_it_was_fitted_on():
    y, za, _ = complementary(200)
    prof = fit_profile(y, [ScoreColumn("A:original", za, "a" * 64, "A", "original")])

    def res(sha):
        return DetectionResult("A", "original", 2.0, 0.88, "fake", 0.5, 0.1, (64, 64), (64, 64), None, False, "t",
                               weights_sha256=sha)
    ok = prof.apply([res("a" * 64)])
    assert ok.scores["A:original"].p_fake == pytest.approx(float(prof.detectors["A:original"].calibrator.predict(2.0)))
    other = prof.apply([res("b" * 64), DetectionResult("Z", "original", 1.0, 0.7, "fake", 0.5, 0.1, (64, 64),
                                                       (64, 64), None, False, "t")])
    assert not other.scores
    assert other.notes == ("A:original: calibration not applied: fitted on weights aaaaaaaaaaaa…, this result came "
                           "from weights bbbbbbbbbbbb….",
                           "Z:original: calibration not applied: the profile has no calibration for Z:original.")


def test_isotonic_calibrator_is_monotone_and_clipped():
    cal = Calibrator("isotonic", x=(-1.0, 0.0, 1.0), y=(0.0, 0.5, 1.0))
    p = cal.predict(np.array([-9.0, -0.5, 0.5, 9.0, np.nan]))
    assert p[0] == pytest.approx(1e-4) and p[3] == pytest.approx(1 - 1e-4) and np.isnan(p[4])
    assert list(p[:4]) == sorted(p[:4])


# --------------------------------------------------------------------------------------------- CLI contract

@pytest.mark.slow
def test_evaluate_with_a_profile_adds_calibrated_and_stacked_columns(tmp_path):
    y, za, zb = complementary()
    preds = write_csv(tmp_path / "preds.csv", y, za, zb)
    assert run(["calibrate", str(preds), "--out", str(tmp_path / "p.json")]).returncode == 0
    out = run(["evaluate", str(preds), "--profile", str(tmp_path / "p.json"), "--out", str(tmp_path / "ev")])
    assert out.returncode == 0, out.stderr
    header = (tmp_path / "ev" / "predictions.csv").read_text().splitlines()[0].split(",")
    assert {"toolA_calibrated_p_fake", "toolB_calibrated_p_fake", "stacked_p_fake"} <= set(header)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["detectors"]
    assert any("calibrated" in k for k in metrics) and "stacked" in metrics
    assert metrics["toolA_calibrated"]["metrics"]["ece"] < metrics["toolA"]["metrics"]["ece"]
    bad = run(["evaluate", str(preds), "--profile", str(preds), "--out", str(tmp_path / "ev2")])
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not valid JSON" in bad.stderr


@pytest.fixture()
def two_tiny(tiny_config, weights_home, tmp_path):
    """TA says fake (logit +3), TB says real (logit -3): a 1-1 split."""
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    return {"DEEPFAKE_LENS_CONFIG_DIRS": str(tiny_config), "DEEPFAKE_LENS_WEIGHTS": str(weights_home),
            "HF_HUB_CACHE": str(tmp_path / "hub")}


@pytest.mark.slow
def test_detect_all_json_contract_and_profile(two_tiny, tmp_path):
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((96, 80)))
    out = run(["detect", str(img), "--detector", "ALL", "--json"], two_tiny)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert {r["detector_id"] for r in d["results"]} == {"TA", "TB"}
    assert d["vote"]["verdict"] == "FAKE" and d["vote"]["summary"] == ("weighted vote of the original app: FAKE, "
                                                                       "2 of 2 detectors voted")
    a = d["assessment"]
    assert (a["level"], a["direction"], a["p_fake"]) == ("inconclusive", None, None)
    assert "the voting detectors are split evenly (1 fake, 1 real)" in a["reasons"]
    assert "weights not installed" in d["not_run"]["CLIP-D"]
    # a profile fitted on TA's and TB's weights gives a calibrated p_fake
    shas = {r["detector_id"]: r["weights_sha256"] for r in d["results"]}
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    cols = [ScoreColumn(f"{k}:original", 3.0 * (2 * y - 1) + rng.normal(0, 2, 200), shas[k], k, "original")
            for k in ("TA", "TB")]
    fit_profile(y, cols).save(tmp_path / "p.json")
    out = run(["detect", str(img), "--detector", "ALL", "--profile", str(tmp_path / "p.json"), "--json"], two_tiny)
    a = json.loads(out.stdout)["assessment"]
    assert a["p_fake"] is not None and 0 < a["p_fake"] < 1 and a["fused_by"].startswith("learned fusion")
    text = run(["detect", str(img), "--detector", "ALL"], two_tiny).stdout
    assert text.startswith("Inconclusive: the voting detectors are split evenly")
    assert "Weighted vote of the original app: FAKE, 2 of 2 detectors voted" in text


@pytest.mark.slow
def test_report_json_carries_the_assessment(two_tiny, tmp_path):
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((96, 80)))
    out = run(["report", str(img), "--out", str(tmp_path / "case"), "--no-probe"], two_tiny)
    assert out.returncode == 0, out.stderr
    d = json.loads((tmp_path / "case" / "report.json").read_text())
    assert d["assessment"]["level"] == "inconclusive" and d["assessment"]["direction"] is None
    assert "Inconclusive: the voting detectors are split evenly" in (tmp_path / "case" / "report.html").read_text()
    assert "seed" not in (tmp_path / "case" / "report.html").read_text().lower()


def test_a_column_profile_applies_to_csv_columns_only():
    y, za, _ = complementary(200)
    prof = fit_profile(y, [ScoreColumn("NPR:original", za)])            # from a CSV: no weights recorded
    p, why = prof.calibrate_column("NPR:original", np.array([1.0]), "a" * 64)
    assert p is None and "without recording its weights" in why
    p, why = prof.calibrate_column("NPR:original", np.array([1.0]), None, by_column=True)
    assert p is not None and why == ""
    r = DetectionResult("NPR", "original", 1.0, 0.73, "fake", 0.5, 0.1, (64, 64), (64, 64), None, False, "t",
                        weights_sha256="a" * 64)
    assert "fit it again with --weights NPR=PATH" in prof.apply([r]).notes[0]


@pytest.mark.slow
def test_calibrating_our_own_predictions_csv_binds_the_weights_from_metrics_json(tiny_config, weights_home,
                                                                                  tmp_path):
    from tests.helpers import make_tiny_checkpoint

    from core.models import install
    from core.models.registry import get_spec
    install.import_file(make_tiny_checkpoint(tmp_path / "t.pt"), get_spec("TINY"), weights_dir=weights_home)
    env = {"DEEPFAKE_LENS_CONFIG_DIRS": str(tiny_config), "DEEPFAKE_LENS_WEIGHTS": str(weights_home),
           "HF_HUB_CACHE": str(tmp_path / "hub")}
    for label in ("real", "fake"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(6):
            (tmp_path / "data" / label / f"{i}.png").write_bytes(png_bytes((40, 32), seed=i + (label == "fake") * 50))
    out = run(["evaluate", str(tmp_path / "data"), "--detectors", "TINY", "--out", str(tmp_path / "ev")], env)
    assert out.returncode == 0, out.stderr
    out = run(["calibrate", str(tmp_path / "ev" / "predictions.csv"), "--out", str(tmp_path / "p.json")], env)
    assert out.returncode == 0, out.stderr
    sha = load_profile(tmp_path / "p.json").detectors["TINY:original"].weights_sha256
    assert sha is not None and len(sha) == 64
    out = run(["detect", str(tmp_path / "data" / "fake" / "0.png"), "--detector", "TINY", "--profile",
               str(tmp_path / "p.json"), "--json"], env)
    d = json.loads(out.stdout)
    assert d["weights_sha256"] == sha and d["calibrated"]["applied"] is True and 0 < d["calibrated"]["p_fake"] < 1


def test_a_profile_follows_the_users_own_weights_file_across_variant_names():
    # `calibrate --weights NPR=mine.pth` keys the column NPR:original; `detect --weights NPR=mine.pth` reports the
    # variant "custom": the weights' sha256 is what identifies them
    y, za, zb = complementary(200)
    prof = fit_profile(y, [ScoreColumn("NPR:original", za, "a" * 64, "NPR", "original"),
                           ScoreColumn("CLIP-D:original", zb, "b" * 64, "CLIP-D", "original")])
    mine = [DetectionResult("NPR", "custom", 2.0, 0.88, "fake", 0.5, 0.1, (64, 64), (64, 64), None, False, "t",
                            weights_sha256="a" * 64),
            DetectionResult("CLIP-D", "original", 1.0, 0.73, "fake", 0.5, 0.1, (64, 64), (64, 64), None, False, "t",
                            weights_sha256="b" * 64)]
    app = prof.apply(mine)
    assert set(app.scores) == {"NPR:custom", "CLIP-D:original"} and app.notes == ()
    assert app.stacked_inputs == ("NPR:original", "CLIP-D:original") and app.stacked_p is not None
    other = prof.apply([DetectionResult("NPR", "custom", 2.0, 0.88, "fake", 0.5, 0.1, (64, 64), (64, 64), None,
                                        False, "t", weights_sha256="c" * 64)])
    assert not other.scores and "no calibration for NPR:custom" in other.notes[0]
