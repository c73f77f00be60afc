"""AppTest for pages/4_Evaluation.py (TINY detector with test-made weights) and the pure figure builders."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import streamlit as st
from tests.helpers import ROOT, TINY_YAML, make_tiny_checkpoint, png_bytes
from streamlit.testing.v1 import AppTest

PAGE = str(ROOT / "pages" / "4_Evaluation.py")


@pytest.fixture(autouse=True)
def _env(tiny_config, weights_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_CACHE", str(tmp_path / "cache"))
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture()
def installed(tiny_config, weights_home, tmp_path):
    from core.models import install
    from core.models.registry import get_spec
    (tiny_config / "tiny2.yaml").write_text(TINY_YAML.format(weight=0.3).replace("id: TINY", "id: TINY2"))
    install.import_file(make_tiny_checkpoint(tmp_path / "a.pt", seed=0), get_spec("TINY"))
    install.import_file(make_tiny_checkpoint(tmp_path / "b.pt", seed=3), get_spec("TINY2"))


def labelled_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i in range(4):
            zf.writestr(f"eval/Real/r{i}.png", png_bytes((40 + i, 32), seed=i))
            zf.writestr(f"eval/1_fake/gan/f{i}.png", png_bytes((36, 30 + i), seed=40 + i))
        zf.writestr("eval/Real/broken.png", b"\x89PNG\r\n\x1a\nbroken")
        zf.writestr("../evil.png", png_bytes(seed=9))
        zf.writestr("eval/notes.txt", b"x")
    return buf.getvalue()


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120).run()


def metrics_table(at: AppTest):
    """The comparison table (read-only dataframes carry no key in AppTest: found by its columns)."""
    return next(d.value for d in at.dataframe if "ROC-AUC" in d.value.columns and "group" not in d.value.columns)


def images_table(at: AppTest):
    return next(d.value for d in at.dataframe if "path" in d.value.columns)


def test_page_without_any_weights_explains_what_is_missing():
    at = page()
    assert not at.exception
    assert at.multiselect(key="eval.detectors").options == []
    assert any("Not installed" in c.value and "CLIP-D" in c.value for c in at.caption)
    assert at.button(key="eval.demo").disabled and at.button(key="eval.start").disabled
    assert at.session_state["eval.result"] is None


def test_upload_zip_run_see_metrics_move_threshold_and_download(installed):
    at = page()
    assert set(at.multiselect(key="eval.detectors").value) == {"TINY:original", "TINY2:original"}
    at.radio(key="eval.source").set_value("Zip file").run()
    at.file_uploader(key="eval.zip").upload("eval.zip", labelled_zip(), "application/zip").run()
    assert not at.exception
    assert any("11 file(s)" in t.value and "9 to score" in t.value for t in at.text)
    at.button(key="eval.start").click().run()
    assert not at.exception, at.exception
    run = at.session_state["eval.result"]
    assert run is not None and len(run.rows) == 11 and run.computed == 16
    assert {r.status for r in run.rows} == {"ok", "error", "skipped"}
    assert any("11 files" in s.value and "8 scored" in s.value and "1 unreadable" in s.value for s in at.success)

    table = metrics_table(at)
    assert list(table["source"]) == ["TINY:original", "TINY2:original", "Ensemble (weighted vote)"]
    assert set(table["n"]) == {8}
    for col in ("accuracy", "ROC-AUC", "EER", "TPR @ 1% FPR", "oracle threshold", "ECE"):
        assert all(v == "n/a" or 0 <= float(v) <= 1 for v in table[col]), col

    images = images_table(at)
    assert len(images) == 11 and "TINY:original call" in images.columns
    assert {d.key for d in at.download_button} >= {"eval.dl_csv", "eval.dl_json"}

    # the threshold slider changes the threshold metrics without any model call
    acc_before = list(metrics_table(at)["accuracy"])
    at.slider(key="eval.threshold").set_value(0.01).run()
    assert not at.exception
    assert at.session_state["eval.result"].computed == 16           # the same stored run, nothing recomputed
    assert list(metrics_table(at)["accuracy"])[:2] == ["0.500", "0.500"]    # everything called fake: 4 of 8
    assert 0.01 in at.session_state["eval.reports"] and acc_before is not None

    # running again hits the score cache
    at.button(key="eval.start").click().run()
    again = at.session_state["eval.result"]
    assert again.computed == 0 and again.from_cache == 16


def test_error_gallery_and_filters(installed):
    at = page()
    at.file_uploader(key="eval.zip").upload("eval.zip", labelled_zip(), "application/zip").run()
    at.button(key="eval.start").click().run()
    at.slider(key="eval.threshold").set_value(0.01).run()         # all real images become false positives
    at.selectbox(key="eval.gallery_source").set_value("TINY:original").run()
    at.radio(key="eval.gallery_kind").set_value("false positives").run()
    assert not at.exception
    assert len(at.image) == 4                                    # one thumbnail per false positive
    assert any("4 false positives" in c.value for c in at.caption)
    at.multiselect(key="eval.filter_status").set_value(["error"]).run()
    images = images_table(at)
    assert list(images["status"]) == ["error"] and "broken.png" in images["path"].iloc[0]


def test_demo_evaluation_on_the_examples(installed):
    at = page()
    at.button(key="eval.demo").click().run()
    assert not at.exception
    run = at.session_state["eval.result"]
    assert run.dataset_kind == "examples" and all(r.status == "ok" for r in run.rows)
    assert any("not AI-generated" in t.value for t in at.text)
    assert any("not AI-generated" in c.value for c in at.caption)


def test_server_path_and_unlabelled_report(installed, tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_DATA_ROOT", str(tmp_path))      # server paths exist only with a data root
    d = tmp_path / "server"
    for i in range(2):
        (d / "0_real").mkdir(parents=True, exist_ok=True)
        (d / "1_fake").mkdir(exist_ok=True)
        (d / "0_real" / f"{i}.png").write_bytes(png_bytes(seed=i))
        (d / "1_fake" / f"{i}.png").write_bytes(png_bytes(seed=10 + i))
    (d / "stray.png").write_bytes(png_bytes(seed=5))
    at = page()
    at.radio(key="eval.source").set_value("Path on the server").run()
    at.text_input(key="eval.path").set_value(str(d)).run()
    at.multiselect(key="eval.detectors").set_value(["TINY:original"]).run()
    at.button(key="eval.start").click().run()
    assert not at.exception
    run = at.session_state["eval.result"]
    assert [s.key for s in run.sources] == ["TINY:original"]                  # one detector: no ensemble
    assert sum(r.status == "unlabelled" for r in run.rows) == 1
    at.text_input(key="eval.path").set_value(str(tmp_path / "nope")).run()
    assert at.error and any("not found" in t.value for t in at.text)


def test_predictions_csv_without_any_weights():
    at = page()
    at.radio(key="eval.source").set_value("Predictions CSV only").run()
    at.file_uploader(key="eval.predictions").upload("theirs.csv", PREDICTIONS, "text/csv").run()
    assert not at.button(key="eval.start").disabled
    at.button(key="eval.start").click().run()
    assert not at.exception
    table = metrics_table(at)
    assert list(table["source"]) == ["toolA (CSV)", "toolB (CSV)"]
    assert list(table["ROC-AUC"]) == ["1.000", "1.000"]
    assert table["ECE"].iloc[1] == "n/a"
    assert any("not probabilities" in t.value for t in at.text)


PREDICTIONS = b"path,label,toolA,toolB\na.png,fake,0.9,3\nb.png,real,0.2,-2\nc.png,fake,0.6,1\nd.png,real,0.4,0.5\n"


def test_predictions_csv_as_a_server_path_reads_like_the_upload(tmp_path, monkeypatch):
    # it was read as a labels CSV: every row's image was looked for on the server and became an error
    monkeypatch.setenv("DEEPFAKE_LENS_DATA_ROOT", str(tmp_path))
    (tmp_path / "theirs.csv").write_bytes(PREDICTIONS)
    at = page()
    at.radio(key="eval.source").set_value("Path on the server").run()
    at.text_input(key="eval.path").set_value("theirs.csv").run()
    assert not at.button(key="eval.start").disabled            # no weights needed, as with the upload
    at.button(key="eval.start").click().run()
    assert not at.exception
    run = at.session_state["eval.result"]
    assert run.counts()["error"] == 0 and run.counts()["ok"] == 4
    assert list(metrics_table(at)["ROC-AUC"]) == ["1.000", "1.000"]
    # an "id" column instead of "path" (labels CSVs need a path), and no way out of the data folder
    (tmp_path / "ids.csv").write_bytes(PREDICTIONS.replace(b"path,", b"id,"))
    at.text_input(key="eval.path").set_value("ids.csv").run()
    assert not at.exception and not at.error and not at.button(key="eval.start").disabled
    outside = tmp_path.parent / f"{tmp_path.name}_outside.csv"
    outside.write_bytes(PREDICTIONS)
    at.text_input(key="eval.path").set_value(str(outside)).run()
    assert at.error and any("outside the allowed data folder" in t.value for t in at.text)
    outside.unlink()


def test_comparison_csv_that_matches_no_image_adds_one_note_and_no_rows(installed):
    at = page()
    at.radio(key="eval.source").set_value("Zip file").run()
    at.file_uploader(key="eval.zip").upload("eval.zip", labelled_zip(), "application/zip").run()
    at.file_uploader(key="eval.compare_csv").upload("other.csv", PREDICTIONS, "text/csv").run()
    at.button(key="eval.start").click().run()
    assert not at.exception
    table = metrics_table(at)
    assert not any("(CSV)" in s for s in table["source"])           # no empty rows for the unmatched columns
    assert sum("matched none of the 11 files" in t.value for t in at.text) == 1
    assert not any("CSV" in s.key for s in at.session_state["eval.result"].sources)


def test_face_classifier_is_offered_but_not_preselected(installed, tiny_config, tmp_path):
    from core.models import install
    from core.models.registry import get_spec
    (tiny_config / "tinyface.yaml").write_text(TINY_YAML.format(weight=1.0).replace("id: TINY", "id: TINYFACE")
                                               + "coverage: {content: faces}\n")
    install.import_file(make_tiny_checkpoint(tmp_path / "f.pt", seed=1), get_spec("TINYFACE"))
    at = page()
    picker = at.multiselect(key="eval.detectors")
    assert "TINYFACE:original" in picker.options
    assert set(picker.value) == {"TINY:original", "TINY2:original"}


def test_cancelled_run_is_rebuilt_from_the_cache(installed):
    from core.evaluation import datasets as D
    from ui.evaluation import Job
    at = page()
    ds = D.from_zip(labelled_zip(), name="eval.zip")
    at.session_state["eval.job"] = Job(ds, ("TINY:original",), False, None, 4)
    at.session_state["eval.cancel_requested"] = True
    at.run()
    assert not at.exception
    run = at.session_state["eval.result"]
    assert run.cancelled and len(run.rows) == 11 and run.computed == 0
    assert {r.status for r in run.rows if r.path.startswith("eval/") and r.path.endswith(".png")} <= {"cancelled",
                                                                                                       "error"}
    assert any("Cancelled" in w.value for w in at.warning)
    assert at.session_state["eval.job"] is None


# ---------------------------------------------------------------------------------------------- figures


def test_figure_builders():
    from core.evaluation.metrics import binary_metrics
    from ui import eval_figures as F
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.4, 0.7, 0.3, 0.8, 0.9])
    m = binary_metrics(y, p, threshold=0.5)
    cm = F.confusion_figure(m, "A")
    assert np.asarray(cm.data[0].customdata).tolist() == [[2, 1], [1, 2]] and "p_fake > 0.50" in cm.layout.title.text
    ens = binary_metrics(y, p, y_pred=[0, -1, 1, 0, 1, -1])
    assert list(F.confusion_figure(ens).data[0].x) == ["called real", "called fake", "uncertain"]
    roc = F.roc_figure({"A": m, "B": binary_metrics(y, 1 - p), "single": binary_metrics([1, 1], [0.2, 0.3])})
    names = [t.name for t in roc.data]
    assert names[0].startswith("A (AUC") and names[1].startswith("B (AUC") and len(roc.data) == 3   # + chance
    assert list(roc.data[0].x) == list(m.roc.x)
    pr = F.pr_figure({"A": m})
    assert pr.data[0].name.startswith("A (AP") and list(pr.data[0].y) == list(m.pr.y)
    h = F.histogram_figure(p[y == 0], p[y == 1], 0.5)
    assert [t.name for t in h.data] == ["real (3)", "fake (3)"] and h.layout.shapes[0].x0 == 0.5
    rel = F.reliability_figure({"A": m})
    assert rel.data[0].name.startswith("A (ECE") and sum(rel.data[0].customdata) == 6
    # the last point (a bin at p_fake 1.0 / share 1.0) lies inside the axes with room for its marker
    assert rel.layout.xaxis.range[1] > 1.0 and rel.layout.yaxis.range[1] > 1.0 and rel.layout.xaxis.range[0] < 0


def test_up_to_eight_series_get_eight_different_colour_blind_safe_colours():
    from core.evaluation.metrics import binary_metrics
    from core.style import PALETTE
    from ui import eval_figures as F
    y = np.array([0, 0, 0, 1, 1, 1])
    rng = np.random.default_rng(0)
    ms = {f"S{i}": binary_metrics(y, rng.random(6)) for i in range(8)}
    for fig in (F.roc_figure(ms), F.pr_figure(ms)):
        colours = [t.line.color for t in fig.data if t.name and t.name.startswith("S")]
        assert colours == list(PALETTE) and len(set(colours)) == 8
    assert PALETTE[:3] == ("#0072B2", "#E69F00", "#009E73")          # Okabe–Ito

