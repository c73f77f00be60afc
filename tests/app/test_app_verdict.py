"""AppTest: the graded headline and the rule choice on Home, the Face page's two numbers, the Evaluation page's
confined server path, and untrusted names shown as plain text on every analysis page."""
from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.helpers import install_tiny_detectors, png_bytes

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "![n](http://127.0.0.1:9/n.png) ## VERDICT REAL :red[x] <b>bold</b> $x$"
MARKERS = ("127.0.0.1:9", "VERDICT", "<b>", ":red[x]")


@pytest.fixture(autouse=True)
def _fresh(weights_home):
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()


@pytest.fixture()
def decided(tiny_config, weights_home):
    """Two installed test detectors: TA says fake (logit +3, weight 0.6), TB says real (logit -3, weight 0.4)."""
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    return tiny_config


def _home() -> AppTest:
    return AppTest.from_file(str(ROOT / "Home.py"), default_timeout=180).run()


def _elements(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _elements(child)


def rendered_as_markdown(at: AppTest) -> str:
    """Every string the page sends to an element that renders Markdown or HTML: everything but plain text
    elements, dataframes (cells are text) and the options of select boxes (shown as text)."""
    out = []
    for el in _elements(at._tree):
        proto = getattr(el, "proto", None)
        if proto is None or el.type in ("text", "dataframe", "arrow_data_frame", "plotly_chart"):
            continue                      # Plotly figures: checked by plotly_strings (their labels read HTML)
        if el.type in ("selectbox", "multiselect"):
            out.append(str(proto.label))
        else:
            out.append(str(proto))
    return "\n".join(out)


def plotly_strings(at: AppTest) -> str:
    """Every figure's JSON, decoded (Plotly renders tags such as <b> and <a href> in titles, legends, hovers)."""
    specs = [json.loads(el.proto.spec) for el in _elements(at._tree) if el.type == "plotly_chart"]
    return json.dumps(specs, ensure_ascii=False)


def plain_text(at: AppTest) -> str:
    return "\n".join(str(t.value) for t in at.text)


def _texts(at: AppTest) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
    return "\n".join(str(m.value) for k in kinds for m in at.get(k)) + "\n" + plain_text(at)


def assert_inert(at: AppTest, literal: str = HOSTILE) -> None:
    """The hostile string reached the page only as plain text, never as Markdown/HTML."""
    assert not at.exception, at.exception
    md = rendered_as_markdown(at)
    for bad in MARKERS:
        assert bad not in md, (bad, md[max(0, md.find(bad) - 300):md.find(bad) + 100])
    assert literal in plain_text(at)


# --------------------------------------------------------------------------------------------- Home / Ensemble

def test_home_offers_the_rule_in_the_sidebar_and_it_acts_on_the_headline(decided):
    at = _home()
    assert at.sidebar.selectbox(key="ensemble.rule._w").value == "graded"
    at.file_uploader(key="home.upload").upload("x.png", png_bytes((160, 140)), "image/png").run()
    at.button(key="home.run").click().run()
    text = _texts(at)
    assert ":orange[Inconclusive: the voting detectors are split evenly (1 fake, 1 real)]" in text
    assert "Weighted vote of the original app: :red[FAKE], 2 of 2 detectors voted" in text
    at.sidebar.selectbox(key="ensemble.rule._w").set_value("vote").run()
    assert not at.exception
    text = _texts(at)                 # the original weights decide: 60 % of the weighted votes, 65 % needed
    assert "Inconclusive: the voting detectors are split (1 fake, 1 real): 60% of the votes agree" in text
    assert "65% needed" in text
    at.switch_page("pages/2_Ensemble.py").run()   # one choice, shared with the Ensemble page
    assert at.sidebar.selectbox(key="ensemble.rule._w").value == "vote"


def test_headline_words_fused_numbers_and_no_jargon(decided):
    at = _home()
    at.switch_page("pages/2_Ensemble.py").run()
    at.file_uploader(key="ensemble.upload").upload("x.png", png_bytes((160, 140)), "image/png").run()
    at.button(key="ensemble.run").click().run()
    assert not at.exception
    labels = [m.label for m in at.metric]
    assert "Weighted votes fake / real (uncalibrated)" in labels and "Mean logit (uncalibrated)" in labels
    assert all("uncalibrated" in lab for lab in labels), labels          # no profile: every fused number says so
    table = next(d.value for d in at.dataframe if "effective weight" in d.value.columns)
    assert "calibrated P(fake)" not in table.columns                     # no profile: no empty column
    text = _texts(at) + "\n".join(labels)
    assert "seed" not in text.lower()
    assert "uncalibrated" in text and "No probability: the detectors' scores are uncalibrated" in text
    at.switch_page("Home.py").run()
    assert "seed" not in _texts(at).lower()


def test_home_does_not_import_the_forensics_page_helpers():
    """Home's ui imports, followed through ui/, never reach ui.forensics_* (issue 11 item 7)."""
    seen: set[str] = set()

    def visit(path: Path) -> None:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                if name.startswith("ui.") and name not in seen:
                    seen.add(name)
                    visit(ROOT / (name.replace(".", "/") + ".py"))
    visit(ROOT / "Home.py")
    assert "ui.status" in seen and "ui.verdict" in seen
    assert not [m for m in seen if m.startswith("ui.forensics")], seen


@pytest.mark.parametrize("page,key,run", [("Home.py", "home", "home.run"),
                                          ("pages/2_Ensemble.py", "ensemble", "ensemble.run"),
                                          ("pages/1_Single_Detector.py", "single", "single.run")])
def test_an_uploaded_name_is_plain_text_on_the_analysis_pages(decided, page, key, run):
    at = _home()
    at.switch_page(page).run()
    if key == "single":
        at.selectbox(key="single.detector").set_value("TA").run()
    at.file_uploader(key=f"{key}.upload").upload(HOSTILE + ".png", png_bytes((96, 80)), "image/png").run()
    at.button(key=run).click().run()
    assert_inert(at, HOSTILE + ".png · 96×80")


def test_an_uploaded_profile_with_hostile_fields_is_plain_text(decided):
    from core.verdict.fitting import ScoreColumn, fit_profile
    at = _home()
    at.file_uploader(key="home.upload").upload("x.png", png_bytes((160, 140)), "image/png").run()
    at.button(key="home.run").click().run()
    res = at.session_state["analyse.results"][at.session_state["analyse.image"].sha256]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    cols = [ScoreColumn(k, 3.0 * (2 * y - 1) + rng.normal(0, 2, 200), r.weights_sha256, r.detector_id, r.variant)
            for k, r in res.items()]
    doc = fit_profile(y, cols).to_dict()
    doc["provenance"]["name"] = HOSTILE
    doc["detectors"]["TB:original"]["weights_sha256"] = "f" * 64          # not these weights: "not applied"
    at.file_uploader(key="settings.profile_upload").upload(HOSTILE + ".json", json.dumps(doc).encode(),
                                                           "application/json").run()
    assert_inert(at, f"of {HOSTILE};")
    assert at.sidebar.selectbox(key="settings.profile_pick._w").value == HOSTILE + ".json (uploaded)"   # in use now
    assert [m for m in at.metric if m.label == "Calibrated P(fake)"]
    assert "TB:original: calibration not applied" in plain_text(at)
    at.switch_page("pages/4_Evaluation.py").run()
    assert_inert(at, f"of {HOSTILE};")


# --------------------------------------------------------------------------------------------- Face

def test_face_labels_name_detection_confidence_and_p_fake_apart():
    from core.results import FaceResult
    from ui.faces import DETECTION, P_FAKE, face_boxes, face_rows
    faces = [FaceResult(0, (10, 10, 50, 60), 0.994, (), 2.0, 0.881, "fake"),
             FaceResult(1, (70, 10, 99, 40), 0.91, (), -1.0, 0.269, "real")]
    labels, colours = face_boxes(faces, 0.5)
    assert labels == ["#0 P(fake) 0.881 FAKE", "#1 P(fake) 0.269 real"] and colours[0] != colours[1]
    labels, _ = face_boxes(faces, None)           # not scored: the number is named, never a bare "p="
    assert labels == ["#0 face detection confidence 0.99", "#1 face detection confidence 0.91"]
    rows = face_rows(faces, 0.5)
    assert rows[0][DETECTION] == 0.994 and rows[0][P_FAKE] == 0.881 and rows[0]["verdict"] == "FAKE (swapped)"
    unscored = face_rows([FaceResult(0, (1, 2, 3, 4), 0.99, ())], None)
    assert unscored[0][P_FAKE] is None and unscored[0]["verdict"].startswith("not scored")


def test_face_page_table_and_a_hostile_name(weights_home):
    from core.examples import example_bytes, list_examples
    from ui.faces import DETECTION, P_FAKE
    data = example_bytes(next(e for e in list_examples() if e.name.startswith("Astronaut")))
    at = _home()
    at.switch_page("pages/3_Face_GradCAM.py").run()
    at.file_uploader(key="face.upload").upload(HOSTILE + ".png", data, "image/png").run()
    assert_inert(at, HOSTILE)
    table = next(d.value for d in at.dataframe if DETECTION in d.value.columns)
    assert P_FAKE in table.columns and table[DETECTION].iloc[0] > 0.9 and table[P_FAKE].isna().all()
    assert not [s for s in at.slider if s.key == "face.threshold"]


# --------------------------------------------------------------------------------------------- Evaluation

def _evaluation() -> AppTest:
    return AppTest.from_file(str(ROOT / "pages" / "4_Evaluation.py"), default_timeout=120).run()


def test_no_server_path_without_a_data_root(monkeypatch):
    monkeypatch.delenv("DEEPFAKE_LENS_DATA_ROOT", raising=False)
    at = _evaluation()
    assert not at.exception
    assert "Path on the server" not in at.radio(key="eval.source").options
    assert not [t for t in at.text_input if t.key == "eval.path"]


def test_server_path_is_confined_to_the_data_root(monkeypatch, tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    for d in (root / "data" / "real", root / "data" / "fake", outside / "real", outside / "fake"):
        d.mkdir(parents=True)
    for i, d in enumerate((root / "data" / "real", root / "data" / "fake", outside / "real", outside / "fake")):
        (d / f"{i}.png").write_bytes(png_bytes(seed=i))
    (root / "link").symlink_to(outside, target_is_directory=True)
    monkeypatch.setenv("DEEPFAKE_LENS_DATA_ROOT", str(root))
    at = _evaluation()
    at.radio(key="eval.source").set_value("Path on the server").run()
    at.text_input(key="eval.path").input("data").run()           # relative to the data root
    assert not at.exception
    assert any("2 file(s)" in t and "2 to score" in t for t in plain_text(at).splitlines())
    for escape in ("../outside", "link", "data/../../outside", str(outside), "/etc"):
        at.text_input(key="eval.path").input(escape).run()
        assert not at.exception, escape
        assert at.error and "outside the allowed data folder" in plain_text(at), escape
        assert not any("to score" in t for t in plain_text(at).splitlines()), escape


def test_evaluation_shows_names_and_columns_from_a_csv_as_plain_text():
    n = 8
    frame = pd.DataFrame({"path": [f"{HOSTILE} {i}.png" for i in range(n)],
                          "label": ["real", "fake"] * (n // 2),
                          HOSTILE: [0.9, 0.8] * (n // 2)})           # every real image is a false positive
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    at = _evaluation()
    at.radio(key="eval.source").set_value("Predictions CSV only").run()
    at.file_uploader(key="eval.predictions").upload(HOSTILE + ".csv", buf.getvalue().encode(), "text/csv").run()
    at.button(key="eval.start").click().run()
    assert_inert(at, "VERDICT REAL :red[x] <b>bold</b> $x$ 0.png (real)")     # the path, "//" normalised
    assert "4 false positives" in _texts(at)
    figures = plotly_strings(at)
    assert "&lt;b&gt;bold" in figures and "<b>bold" not in figures        # the column name, inert in every figure
    assert "uncalibrated" in _texts(at)


def test_plot_names_are_inert():
    from ui.evaluation import plot_name
    assert plot_name("<a href='x'>a</a> %{x}") == "&lt;a href=&#x27;x&#x27;&gt;a&lt;/a&gt; %&#123;x}"


def test_a_probe_run_on_the_ensemble_page_redraws_the_headline_once(decided):
    at = _home()
    at.switch_page("pages/2_Ensemble.py").run()
    at.file_uploader(key="ensemble.upload").upload("x.png", png_bytes((160, 140)), "image/png").run()
    at.button(key="ensemble.run").click().run()
    at.button(key="ensemble.probe_run").click().run()      # reruns the page once, then settles
    assert not at.exception
    sha = at.session_state["analyse.image"].sha256
    assert at.session_state["forensics.probe"][sha]
    assert sum(str(m.value).startswith("### :") for m in at.markdown) == 1       # one headline, drawn once
