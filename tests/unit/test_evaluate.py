"""core.evaluation.runner: batching, progress, cancel, the on-disk score cache, rows preserved, predictions CSVs."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import TINY_YAML, make_tiny_checkpoint, png_bytes

from core.errors import BadImage
from core.evaluation import datasets as D
from core.evaluation import runner as E
from core.evaluation.metrics import binary_metrics
from core.models.factory import create_detector


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def two_tiny(tiny_config, weights_home, tmp_path):
    (tiny_config / "tiny2.yaml").write_text(TINY_YAML.format(weight=0.3).replace("id: TINY", "id: TINY2"))
    a = make_tiny_checkpoint(tmp_path / "a.pt", seed=0)
    b = make_tiny_checkpoint(tmp_path / "b.pt", seed=5)
    return (lambda: create_detector("TINY", weights=a)), (lambda: create_detector("TINY2", weights=b))


def count_forwards(det):
    calls = {"n": 0}
    orig = det.forward

    def wrapped(batch):
        calls["n"] += batch.shape[0]
        return orig(batch)
    det.forward = wrapped
    return calls


def labelled_uploads(n_real=5, n_fake=5, corrupt=2):
    files = {f"real/r{i}.png": png_bytes((40 + i, 32), seed=i) for i in range(n_real)}
    files.update({f"fake/gen{i % 2}/f{i}.png": png_bytes((36, 30 + i), seed=100 + i) for i in range(n_fake)})
    files.update({f"fake/bad{i}.png": b"\x89PNG\r\n\x1a\n broken" for i in range(corrupt)})
    files["real/notes.txt"] = b"hello"
    files["loose.png"] = png_bytes(seed=77)
    return files


def test_rows_preserved_with_corrupt_files_and_scores_match_predict(two_tiny):
    mk_a, _ = two_tiny
    det = mk_a()
    files = labelled_uploads()
    ds = D.from_uploads(files)
    run = E.evaluate(ds, [det], batch_size=3, cache=False)
    assert len(run.rows) == len(files) == len(ds.items)
    st = {r.path: r for r in run.rows}
    for i in range(2):
        assert st[f"fake/bad{i}.png"].status == "error"
        assert "truncated or corrupt" in st[f"fake/bad{i}.png"].reason or "not" in st[f"fake/bad{i}.png"].reason
    assert st["real/notes.txt"].status == "skipped" and st["loose.png"].status == "unlabelled"
    key = "TINY:original"
    p = run.p_fake[key]
    for i, r in enumerate(run.rows):
        assert np.isfinite(p[i]) == (r.status == "ok")
        if r.status == "ok":
            from core.io import load_image
            ref = det.predict(load_image(files[r.path]))
            assert p[i] == pytest.approx(ref.p_fake, abs=1e-6)
            assert run.logit[key][i] == pytest.approx(ref.logit, abs=1e-5)
    assert run.sources[0].weights_sha256 and len(run.sources[0].weights_sha256) == 64
    assert run.verdict is None and len(run.sources) == 1                  # one detector: no ensemble


def test_progress_is_monotonic_with_eta_and_batches(two_tiny):
    det = two_tiny[0]()
    calls = count_forwards(det)
    seen = []
    ds = D.from_uploads(labelled_uploads(corrupt=0))
    E.evaluate(ds, [det], batch_size=4, cache=False, progress=lambda d, t, eta: seen.append((d, t, eta)))
    total = sum(it.status == "ok" for it in ds.items)
    assert seen[0] == (0, total, None) and seen[-1][:2] == (total, total) and seen[-1][2] == 0
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen)
    assert all(eta is not None and eta >= 0 for _, _, eta in seen[1:])
    assert len(seen) == 1 + -(-total // 4)
    assert calls["n"] == total


def test_cache_hit_on_rerun_runs_no_forward_pass(two_tiny, tmp_path):
    mk_a, mk_b = two_tiny
    ds = D.from_uploads(labelled_uploads())
    first = mk_a()
    c1 = count_forwards(first)
    run1 = E.evaluate(ds, [first], batch_size=4)
    n_ok = sum(r.status == "ok" for r in run1.rows)
    assert c1["n"] == n_ok and run1.computed == n_ok and run1.from_cache == 0
    assert (tmp_path / "cache" / "scores.sqlite").is_file()

    again = mk_a()                      # a fresh model object, same weights
    c2 = count_forwards(again)
    run2 = E.evaluate(ds, [again], batch_size=4)
    assert c2["n"] == 0 and run2.computed == 0 and run2.from_cache == n_ok
    np.testing.assert_array_equal(run1.p_fake["TINY:original"], run2.p_fake["TINY:original"])
    assert [r.status for r in run1.rows] == [r.status for r in run2.rows]    # corrupt files still reported

    # a different detector (or different weights) is a different cache key; the first stays cached
    other = mk_b()
    c3 = count_forwards(other)
    run3 = E.evaluate(ds, [mk_a(), other])
    assert c3["n"] == n_ok and run3.from_cache == n_ok and run3.computed == n_ok


def test_other_weights_recompute(two_tiny, tmp_path):
    ds = D.from_uploads(labelled_uploads(corrupt=0))
    E.evaluate(ds, [two_tiny[0]()])
    det = create_detector("TINY", weights=make_tiny_checkpoint(tmp_path / "c.pt", seed=9))
    calls = count_forwards(det)
    E.evaluate(ds, [det])
    assert calls["n"] == sum(it.status == "ok" for it in ds.items)


def test_threshold_changes_never_recompute(two_tiny):
    det = two_tiny[0]()
    calls = count_forwards(det)
    run = E.evaluate(D.from_uploads(labelled_uploads()), [det], cache=False)
    n = calls["n"]
    accs = {t: E.compute_report(run, t).sources["TINY:original"].overall.accuracy for t in (0.1, 0.5, 0.9)}
    assert calls["n"] == n and len(accs) == 3


def test_cancel_between_batches_keeps_rows_and_what_was_scored(two_tiny):
    det = two_tiny[0]()
    stop = threading.Event()
    ds = D.from_uploads(labelled_uploads(corrupt=0))

    def progress(done, total, eta):
        if done >= 3:
            stop.set()
    run = E.evaluate(ds, [det], batch_size=3, progress=progress, cancel=stop)
    assert run.cancelled and len(run.rows) == len(ds.items)
    st = [r.status for r in run.rows]
    assert st.count("ok") == 3 and st.count("cancelled") == sum(it.status == "ok" for it in ds.items) - 3
    assert all("cancelled" in r.reason for r in run.rows if r.status == "cancelled")
    # a callable works too, and the partial run can be rebuilt from the cache without any model call
    det2 = two_tiny[0]()
    calls = count_forwards(det2)
    partial = E.evaluate(ds, [det2], cache_only=True)
    assert calls["n"] == 0 and [r.status for r in partial.rows] == st
    run_c = E.evaluate(ds, [det2], cancel=lambda: True)
    assert run_c.cancelled and all(r.status != "ok" for r in run_c.rows)


def test_one_failing_image_does_not_stop_the_batch(two_tiny):
    det = two_tiny[0]()
    orig = det.prepare

    def prepare(img):
        if img.size == (42, 32):
            raise BadImage("<image>", "cannot be analysed by TINY: too odd")
        return orig(img)
    det.prepare = prepare
    run = E.evaluate(D.from_uploads(labelled_uploads(corrupt=0)), [det], batch_size=8, cache=False)
    key = "TINY:original"
    bad = next(i for i, r in enumerate(run.rows) if r.path == "real/r2.png")
    assert run.rows[bad].status == "ok" and not np.isfinite(run.p_fake[key][bad])
    assert "too odd" in run.unscored[key][bad]
    assert np.isfinite(run.p_fake[key]).sum() == sum(r.status == "ok" for r in run.rows) - 1
    rep = E.compute_report(run, 0.5).sources[key].overall
    assert rep.n_unscored == 1
    frame = E.predictions_frame(run)
    assert "too odd" in frame.loc[frame.path == "real/r2.png", "reason"].item()


def test_ensemble_uses_core_ensemble_and_its_verdict(two_tiny):
    from core.io import load_image
    from core.verdict.ensemble import ensemble, load_config
    a, b = two_tiny[0](), two_tiny[1]()
    files = labelled_uploads(corrupt=1)
    run = E.evaluate(D.from_uploads(files), [a, b], cache=False)
    assert [s.kind for s in run.sources] == ["detector", "detector", "ensemble"]
    cfg = load_config()
    for i, r in enumerate(run.rows):
        if r.status != "ok":
            assert run.verdict[i] == -2
            continue
        img = load_image(files[r.path])
        er = ensemble([a.predict(img), b.predict(img)], cfg)
        assert run.p_fake["ensemble"][i] == pytest.approx(er.p_mean_logit, abs=1e-6)
        assert run.verdict[i] == {"FAKE": 1, "REAL": 0, "UNCERTAIN": -1}[er.verdict]
    rep = E.compute_report(run, 0.5).sources["ensemble"]
    assert rep.threshold is None and rep.overall.threshold is None
    m = rep.overall
    assert m.tp + m.fn + m.uncertain_fake == m.n_fake


def test_report_per_group_pairs_single_class_groups_with_ungrouped_other_class(two_tiny):
    run = E.evaluate(D.from_uploads(labelled_uploads(corrupt=0)), [two_tiny[0]()], cache=False)
    rep = E.compute_report(run, 0.5).sources["TINY:original"]
    assert set(rep.groups) == {"gen0", "gen1"}
    g0 = rep.groups["gen0"]
    assert g0.n_fake == 3 and g0.n_real == 5 and g0.roc_auc is not None
    assert "ungrouped real" in rep.group_notes["gen0"]
    assert rep.overall.n == 10


def test_report_values_equal_direct_metric_calls(two_tiny):
    run = E.evaluate(D.from_uploads(labelled_uploads()), [two_tiny[0]()], cache=False)
    key = "TINY:original"
    ok = np.array([r.status == "ok" for r in run.rows])
    y = np.array([r.label if r.label is not None else -1 for r in run.rows])[ok]
    direct = binary_metrics(y, run.p_fake[key][ok], threshold=0.3, logit=run.logit[key][ok])
    got = E.compute_report(run, 0.3).sources[key].overall
    assert got.to_dict() == direct.to_dict()


def test_predictions_csv_round_trip_and_external_only(two_tiny, tmp_path):
    a, b = two_tiny[0](), two_tiny[1]()
    ds = D.from_uploads(labelled_uploads())
    run = E.evaluate(ds, [a, b], cache=False)
    frame = E.predictions_frame(run)
    assert len(frame) == len(run.rows)
    assert {"path", "label", "group", "status", "reason", "TINY:original_logit", "TINY:original_p_fake",
            "TINY2:original_p_fake", "ensemble_p_fake", "ensemble_verdict"} <= set(frame.columns)
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    ds2, ext = E.read_predictions(path)
    assert {s.key for s in ext.sources} == {"TINY:original", "TINY2:original", "ensemble (CSV)"}
    assert len(ds2.items) == len(run.rows)
    assert [it.status for it in ds2.items] == [r.status for r in run.rows]
    run2 = E.evaluate(ds2, [], external=ext)
    r1, r2 = E.compute_report(run, 0.5), E.compute_report(run2, 0.5)
    for key in ("TINY:original", "TINY2:original"):
        m1, m2 = r1.sources[key].overall, r2.sources[key].overall
        for name in ("accuracy", "roc_auc", "average_precision", "eer", "ece", "oracle_threshold"):
            assert m1.value(name) == pytest.approx(m2.value(name), abs=1e-9), (key, name)


def test_external_columns_compared_with_a_detector_and_logit_like_scores(two_tiny, tmp_path):
    files = labelled_uploads(corrupt=0)
    ds = D.from_uploads(files)
    csv = "file,label,toolA,toolB\n" + "".join(
        f"{Path(p).name},{'fake' if p.startswith('fake') else 'real'},{0.9 if p.startswith('fake') else 0.1},"
        f"{5.0 if p.startswith('fake') else -5.0}\n" for p in files if p.endswith(".png") and "/" in p)
    _, ext = E.read_predictions(csv.encode())
    src = {s.key: s for s in ext.sources}
    assert src["toolA"].probabilistic and not src["toolB"].probabilistic and "logit" in src["toolB"].note
    run = E.evaluate(ds, [two_tiny[0]()], external=ext, cache=False)
    rep = E.compute_report(run, 0.5)
    assert rep.sources["toolA"].overall.roc_auc == 1.0 and rep.sources["toolA"].overall.accuracy == 1.0
    assert rep.sources["toolB"].overall.ece is None and rep.sources["toolB"].overall.roc_auc == 1.0
    assert rep.sources["TINY:original"].overall.n == rep.sources["toolA"].overall.n


def test_read_predictions_errors():
    with pytest.raises(D.DatasetError, match="id/path column and a label column"):
        E.read_predictions(b"a,b\n1,2\n")
    with pytest.raises(D.DatasetError, match="no numeric score column"):
        E.read_predictions(b"path,label,comment\na.png,fake,hello\n")


def test_metrics_json_is_strict_json_with_identity_and_versions(two_tiny):
    import json
    run = E.evaluate(D.from_uploads(labelled_uploads()), [two_tiny[0](), two_tiny[1]()], cache=False)
    doc = E.metrics_json(run, E.compute_report(run))
    text = json.dumps(doc, allow_nan=False)
    d = doc["detectors"]["TINY:original"]
    assert d["detector_id"] == "TINY" and len(d["weights_sha256"]) == 64 and d["threshold"] == 0.5
    assert "ImageNet" in d["preprocessing"] and d["metrics"]["n"] == 10
    assert doc["versions"]["torch"] and doc["versions"]["scikit-learn"] and doc["dataset"]["files"] == len(run.rows)
    assert doc["detectors"]["ensemble"]["kind"] == "ensemble" and "NaN" not in text


def test_unusable_cache_is_turned_off_not_fatal(two_tiny, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("DEEPFAKE_LENS_CACHE", str(blocker / "sub"))
    run = E.evaluate(D.from_uploads(labelled_uploads(corrupt=0)), [two_tiny[0]()])
    assert any("score cache disabled" in n for n in run.notes)
    assert np.isfinite(run.p_fake["TINY:original"]).sum() == 10


def test_thumbnails_for_scored_images(two_tiny):
    run = E.evaluate(D.from_uploads(labelled_uploads()), [two_tiny[0]()], thumbnails=32)
    ok = [i for i, r in enumerate(run.rows) if r.status == "ok"]
    assert set(run.thumbnails) == set(ok)
    assert all(t[:2] == b"\xff\xd8" for t in run.thumbnails.values())
    run2 = E.evaluate(D.from_uploads(labelled_uploads()), [two_tiny[0]()], thumbnails=32)   # cache hits
    assert set(run2.thumbnails) == set(ok) and run2.computed == 0


def test_transient_failures_are_reported_but_never_cached(two_tiny):
    ds = D.from_uploads(labelled_uploads(corrupt=0))
    det = two_tiny[0]()
    orig = det.forward
    state = {"fail": True}

    def flaky(batch):
        if state["fail"] and batch.shape[-1] == 41:          # real/r1.png (41×32) only
            raise RuntimeError("out of memory")
        return orig(batch)
    det.forward = flaky
    run = E.evaluate(ds, [det], batch_size=4)
    i = next(k for k, r in enumerate(run.rows) if r.path == "real/r1.png")
    assert "RuntimeError: out of memory" in run.unscored["TINY:original"][i]
    state["fail"] = False
    again = two_tiny[0]()
    calls = count_forwards(again)
    run2 = E.evaluate(ds, [again], batch_size=4)
    assert calls["n"] == 1 and np.isfinite(run2.p_fake["TINY:original"][i])      # only the failed one recomputed


def test_cached_labels_follow_the_current_threshold(two_tiny, tiny_config):
    ds = D.from_uploads(labelled_uploads(corrupt=0))
    run = E.evaluate(ds, [two_tiny[0](), two_tiny[1]()])
    ps = run.p_fake["TINY:original"][np.isfinite(run.p_fake["TINY:original"])]
    # raise TINY's YAML threshold above every score: cached values must now read as "real"
    (tiny_config / "tiny.yaml").write_text((tiny_config / "tiny.yaml").read_text().replace(
        "threshold: 0.5", f"threshold: {min(0.99, float(ps.max()) + 0.001):.4f}"))
    det = two_tiny[0]()
    calls = count_forwards(det)
    ok = [k for k, r in enumerate(run.rows) if r.status == "ok"]
    v = E.ScoreCache().get_many(E.detector_fingerprint(det), [run.rows[k].sha256 for k in ok])
    assert len(v) == len(ok) and calls["n"] == 0
    assert all(E._from_value(x, det).label == "real" for x in v.values())
