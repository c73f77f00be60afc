"""AppTest: every page starts without weights, and each page's behaviour with test detectors installed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from tests.helpers import install_tiny_detectors, png_bytes
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pages").glob("*.py"))


@pytest.fixture(autouse=True)
def _fresh(weights_home, monkeypatch):
    st.cache_resource.clear()
    st.cache_data.clear()
    yield


def _home() -> AppTest:
    return AppTest.from_file(str(ROOT / "Home.py"), default_timeout=180).run()


def _frame(at: AppTest, column: str):
    """The first dataframe or static table shown that has ``column`` (AppTest does not expose their keys)."""
    frames = [d.value for d in at.dataframe] + [t.value.reset_index() for t in at.table]
    return next(f for f in frames if column in f.columns)


def _texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.info] + [m.value for m in at.warning] + \
            [m.value for m in at.caption] + [m.value for m in at.error] + [m.value for m in at.success]
    return "\n".join(str(p) for p in parts)


def _home_table(at: AppTest):
    """Home's detector table (a static st.table, so no long column is cut off), detector id as a column."""
    return at.table[0].value.reset_index()


def test_home_without_weights_lists_detectors_as_not_installed():
    at = _home()
    assert not at.exception
    df = _home_table(at)
    assert {"CLIP-D", "R50_TF", "R50_nodown", "P2G", "NPR", "FACE"} <= set(df["detector"])
    assert set(df["status"]) == {"weights not installed"}
    # where the weights come from, how large they are and their licence, in full
    clip = df[df.detector == "CLIP-D"].iloc[0]
    assert "backbone from Hugging Face laion/CLIP-ViT-L-14-CommonPool.XL-s13B-b90K (~1.7 GB)" in clip["weights"]
    assert clip["licence"] == "Apache-2.0"
    assert "0 of" in _texts(at) and "detectors ready" in _texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_weights(page):
    at = _home()
    at.switch_page(page).run()
    assert not at.exception, at.exception


@pytest.fixture()
def decided(tiny_config, weights_home):
    """Two installed test detectors: A says fake (logit +3), B says real (logit -3); weights 0.6 / 0.4."""
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    return tiny_config


def _order(at: AppTest, *needles: str) -> list[int]:
    """Position of the first markdown block containing each needle (AppTest lists elements in page order)."""
    blocks = [str(m.value) for m in at.markdown]
    return [next(i for i, b in enumerate(blocks) if n in b) for n in needles]


def test_home_upload_shows_the_headline_above_the_original_vote(decided):
    at = _home()
    at.file_uploader(key="home.upload").upload("x.png", png_bytes((96, 80)), "image/png").run()
    assert not at.exception
    at.button(key="home.run").click().run()
    assert not at.exception
    text = _texts(at)
    assert ":orange[Inconclusive: the voting detectors are split evenly (1 fake, 1 real)]" in text
    assert "Weighted vote of the original app: :red[FAKE], 2 of 2 detectors voted" in text
    head, reasons, vote = _order(at, "Inconclusive:", "- the voting detectors are split evenly",
                                 "Weighted vote of the original app")
    assert head < vote and reasons < vote
    assert not any(m.label.startswith(("Weighted confidence", "Soft-OR", "Mean-logit")) for m in at.metric)
    assert "uncalibrated" in text


def test_home_headline_with_agreeing_detectors_and_a_tiny_image(tiny_config, weights_home):
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, 2.0)})
    at = _home()
    at.file_uploader(key="home.upload").upload("x.png", png_bytes((96, 80)), "image/png").run()
    at.button(key="home.run").click().run()
    text = _texts(at)
    assert ":red[Moderate evidence of AI generation]" in text and "- 2 of 2 voting detectors say AI-generated" in text
    assert "(96×80): few pixels carry the traces" in text
    at.file_uploader(key="home.upload").upload("tiny.png", png_bytes((16, 16)), "image/png").run()
    at.button(key="home.run").click().run()
    assert ":orange[Inconclusive: the image is only 16×16 pixels" in _texts(at)


def test_ensemble_weights_change_the_verdict_without_rerunning(decided):
    at = _home()
    at.switch_page("pages/2_Ensemble.py").run()
    at.file_uploader(key="ensemble.upload").upload("x.png", png_bytes((96, 80)), "image/png").run()
    at.button(key="ensemble.run").click().run()
    assert not at.exception
    assert ":red[FAKE]" in _texts(at)
    head, vote = _order(at, "Inconclusive:", "Weighted vote of the original app")
    assert head < vote
    table = _frame(at, "effective weight")
    assert set(table["detector"]) == {"TA", "TB"}
    results_before = dict(at.session_state["analyse.results"])
    at.number_input(key="ensemble.w.TA._w").set_value(0.1).run()
    assert not at.exception
    assert ":green[REAL]" in _texts(at)
    assert at.session_state["analyse.results"] == results_before      # nothing was re-run
    at.switch_page("Home.py").run()                  # settings and results survive page switches
    assert "Weighted vote of the original app: :green[REAL]" in _texts(at)
    at.switch_page("pages/2_Ensemble.py").run()
    assert at.number_input(key="ensemble.w.TA._w").value == 0.1 and ":green[REAL]" in _texts(at)
    at.button(key="reset.ensemble").click().run()
    assert ":red[FAKE]" in _texts(at)


def test_single_detector_page_scores_and_explains(decided):
    at = _home()
    at.switch_page("pages/1_Single_Detector.py").run()
    at.selectbox(key="single.detector").set_value("TA").run()
    at.file_uploader(key="single.upload").upload("x.png", png_bytes((80, 70)), "image/png").run()
    at.button(key="single.run").click().run()
    assert not at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["P(fake)"] == "95.3 %" and labels["Logit (positive = fake)"] == "+3.000"
    assert "64×64" in _texts(at)                       # the test detector centre-crops to 64
    at.checkbox(key="single.cam").check().run()
    assert not at.exception


def test_single_detector_without_weights_says_how_to_get_them():
    at = _home()
    at.switch_page("pages/1_Single_Detector.py").run()
    at.selectbox(key="single.detector").set_value("NPR").run()
    assert not at.exception
    assert "weights not installed" in _texts(at) and "weights import" in _texts(at)
    assert not at.metric


def test_example_image_shared_across_pages(decided):
    at = _home()
    at.selectbox(key="home.example").set_value("Coffee (camera photo)").run()
    assert not at.exception
    assert at.session_state["analyse.image"].name == "Coffee (camera photo)"
    at.slider(key="settings.threads._w").set_value(1).run()
    at.switch_page("pages/2_Ensemble.py").run()
    assert not at.exception and at.session_state["analyse.image"].name == "Coffee (camera photo)"
    assert at.slider(key="settings.threads._w").value == 1 and at.session_state["settings.threads"] == 1


def test_face_page_finds_faces_without_classifier_weights():
    at = _home()
    at.switch_page("pages/3_Face_GradCAM.py").run()
    at.selectbox(key="face.example").set_value("Astronaut (camera photo, one face)").run()
    assert not at.exception
    text = _texts(at)
    assert "weights not installed" in text and "1 face(s) found" in text
    assert not at.metric
    # without the classifier there is no P(fake): no P(fake) threshold beside the face detection confidences
    assert not [s for s in at.slider if s.key == "face.threshold"]
    assert any("face detection confidence (not P(fake))" in c.value for c in at.caption)


def test_face_page_scores_each_face_with_test_weights(weights_home, tmp_path):
    from core.models import install
    from core.models.factory import create_detector
    from core.models.registry import get_spec
    det = create_detector("FACE", pretrained=False)
    ckpt = tmp_path / "face.pth"
    torch.save({"model_state_dict": det.model.state_dict()}, ckpt)
    install.import_file(ckpt, get_spec("FACE"))
    at = _home()
    at.switch_page("pages/3_Face_GradCAM.py").run()
    at.selectbox(key="face.example").set_value("Astronaut (camera photo, one face)").run()
    assert not at.exception
    assert [m.label for m in at.metric] == ["Face #0 P(fake)"]
    assert any("face detection confidence" in c.value for c in at.caption)
    at.slider(key="face.threshold").set_value(0.95).run()
    assert not at.exception


def test_models_page_imports_and_deletes(tiny_config, weights_home, tmp_path, monkeypatch):
    from tests.helpers import make_tiny_checkpoint
    monkeypatch.setenv("DEEPFAKE_LENS_DATA_ROOT", str(tmp_path))     # server paths exist only inside this folder
    src = make_tiny_checkpoint(tmp_path / "mine.pt")
    at = _home()
    at.switch_page("pages/5_Models.py").run()
    at.text_input(key="models.TINY:original.weights.path").input(str(src)).run()
    at.button(key="models.TINY:original.weights.import").click().run()
    assert not at.exception
    assert any("Installed" in s.value for s in at.success)
    df = _frame(at, "in use")                        # refreshed at once: no reload needed
    assert df[df.detector == "TINY"]["status"].tolist() == ["installed"]
    at.button(key="models.TINY:original.weights.del").click().run()
    assert not at.exception and "Delete the weights of TINY:original?" in _texts(at)
    at.button(key="models.TINY:original.weights.del_no").click().run()           # cancel keeps the file
    df = _frame(at, "in use")
    assert df[df.detector == "TINY"]["status"].tolist() == ["installed"]
    at.button(key="models.TINY:original.weights.del").click().run()
    at.button(key="models.TINY:original.weights.del_yes").click().run()
    assert not at.exception and "Deleted the weights of TINY:original." in _texts(at)
    df = _frame(at, "in use")
    assert df[df.detector == "TINY"]["status"].tolist() == ["weights not installed"]


def test_models_page_download_offline_is_one_sentence(tiny_config):
    at = _home()
    at.switch_page("pages/5_Models.py").run()
    at.button(key="models.TINY:original.weights.dl").click().run()
    assert not at.exception
    assert at.error and "offline" in at.error[0].value


@pytest.mark.parametrize("data", [b"<html>not an image</html>", b"", png_bytes((64, 64))[:200]])
def test_bad_upload_is_one_clear_sentence(decided, data):
    at = _home()
    at.file_uploader(key="home.upload").upload("evil.png", data, "image/png").run()
    assert not at.exception
    assert at.error and any(t.value.startswith("evil.png: ") for t in at.text)   # the name shown as plain text
    assert not at.button                                 # nothing to analyse


def test_fast_mode_applies_only_where_validated(tiny_config, weights_home, tmp_path):
    from tests.helpers import TINY_YAML, make_tiny_checkpoint

    from core.models import install
    from core.models.registry import get_spec
    (tiny_config / "tiny.yaml").write_text(TINY_YAML.format(weight=0.5).replace(
        "explain: {target_layer: conv2}", "explain: {target_layer: conv2}\noptions: {fast_bf16: true}"))
    (tiny_config / "slow.yaml").write_text(TINY_YAML.format(weight=0.5).replace("id: TINY", "id: SLOW"))
    for det_id in ("TINY", "SLOW"):
        install.import_file(make_tiny_checkpoint(tmp_path / f"{det_id}.pt", bias=2.0), get_spec(det_id))
    at = _home()
    at.toggle(key="settings.fast._w").set_value(True).run()
    at.switch_page("pages/1_Single_Detector.py").run()
    at.file_uploader(key="single.upload").upload("x.png", png_bytes((40, 30)), "image/png").run()
    for det_id, fast in (("TINY", True), ("SLOW", False)):
        at.selectbox(key="single.detector").set_value(det_id).run()
        at.button(key="single.run").click().run()
        assert not at.exception
        assert ("fast mode (bfloat16)" in _texts(at)) is fast, det_id
        res = at.session_state["analyse.results"][at.session_state["analyse.image"].sha256][f"{det_id}:original"]
        assert res.details.get("precision") == ("bf16" if fast else None)


def test_ensemble_rule_and_a_calibration_profile_change_the_headline(decided, tmp_path):
    import json

    import numpy as np

    from core.verdict.fitting import ScoreColumn, fit_profile
    at = _home()
    at.switch_page("pages/2_Ensemble.py").run()
    at.file_uploader(key="ensemble.upload").upload("x.png", png_bytes((96, 80)), "image/png").run()
    at.button(key="ensemble.run").click().run()
    assert ":orange[Inconclusive: the voting detectors are split evenly" in _texts(at)
    at.selectbox(key="ensemble.rule._w").set_value("vote").run()
    at.number_input(key="ensemble.w.TA._w").set_value(1.0).run()
    at.number_input(key="ensemble.w.TB._w").set_value(0.1).run()
    assert not at.exception
    text = _texts(at)                 # the original weights decide: 91 % of the weighted votes say fake ...
    assert ":red[Weak evidence of AI generation]" in text and "- 1 of 2 voting detectors say AI-generated (TA)" in text
    assert "- detectors disagree strongly (TA p_fake 0.95 vs TB 0.05)" in text    # ... capped by the disagreement
    at.selectbox(key="ensemble.rule._w").set_value("graded").run()
    # a profile fitted on the two test detectors' weights: the headline gains a calibrated P(fake)
    res = at.session_state["analyse.results"][at.session_state["analyse.image"].sha256]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    cols = [ScoreColumn(k, 3.0 * (2 * y - 1) + rng.normal(0, 2, 200), r.weights_sha256, r.detector_id, r.variant)
            for k, r in res.items()]
    data = json.dumps(fit_profile(y, cols).to_dict()).encode()
    at.file_uploader(key="settings.profile_upload").upload("mine.json", data, "application/json").run()
    assert not at.exception
    assert [m.label for m in at.metric if m.label == "Calibrated P(fake)"]
    table = _frame(at, "effective weight")
    assert table["calibrated P(fake)"].notna().all()
    at.file_uploader(key="settings.profile_upload").upload("bad.json", b"{", "application/json").run()
    assert not at.exception and any("profile was refused" in e.value for e in at.error)
    assert any("not valid JSON" in t.value for t in at.text)          # the sentence itself: plain text


def test_evaluation_shows_calibrated_and_stacked_rows_with_a_profile(tmp_path):
    import io as _io
    import json

    import pandas as pd

    from tests.unit.test_calibration import complementary
    from core.verdict.fitting import ScoreColumn, fit_profile
    y, za, zb = complementary(200)
    frame = pd.DataFrame({"path": [f"i{i}.png" for i in range(200)], "label": ["fake" if v else "real" for v in y],
                          "toolA": 1 / (1 + np.exp(-za)), "toolB": zb})
    buf = _io.StringIO()
    frame.to_csv(buf, index=False)
    profile = fit_profile(y, [ScoreColumn("toolA", za), ScoreColumn("toolB", zb)])      # keyed by CSV column
    at = _home()
    at.switch_page("pages/4_Evaluation.py").run()
    at.radio(key="eval.source").set_value("Predictions CSV only").run()
    at.file_uploader(key="eval.predictions").upload("theirs.csv", buf.getvalue().encode(), "text/csv").run()
    at.button(key="eval.start").click().run()
    at.file_uploader(key="settings.profile_upload").upload(
        "p.json", json.dumps(profile.to_dict()).encode(), "application/json").run()
    assert not at.exception
    table = _frame(at, "ROC-AUC")
    assert {"toolA (CSV) (calibrated)", "Learned fusion (stacked, calibrated)"} <= set(table["source"])
    cv = _frame(at, "ece_after")
    assert "learned fusion (stacked, cross-validated)" in set(cv["source"])


TWO_VARIANTS = """\
id: TWO
arch: tiny_cnn
weights:
  file: two.pt
  container: model
  sources:
    - {type: url, url: "http://127.0.0.1:9/two.pt"}
preprocess: {mode: full, large_crop: 64}
ensemble_weight: 0.5
card: {title: Two-variant test detector, paper: none, licence: MIT, training_data: none}
variants:
  original:
    default: true
  truefake: {}
"""


@pytest.fixture()
def two_variants(tiny_config, weights_home, tmp_path):
    """TWO (variants original and truefake) with only truefake installed; TINY registered, not installed."""
    from core.models import install
    from core.models.registry import get_spec
    from tests.helpers import make_tiny_checkpoint
    (tiny_config / "two.yaml").write_text(TWO_VARIANTS)
    install.import_file(make_tiny_checkpoint(tmp_path / "two.pt", bias=2.0), get_spec("TWO:truefake"))
    return tiny_config


def _row(at: AppTest, det_id: str):
    df = _home_table(at)
    return df[df.detector == det_id].iloc[0]


def test_a_new_session_uses_the_installed_variant_and_remembers_a_pick(two_variants):
    from core import preferences
    at = _home()
    row = _row(at, "TWO")
    assert (row["variant"], row["status"]) == ("truefake", "installed")      # not the registry's original
    assert "1 of" in _texts(at) and "detectors ready" in _texts(at)
    box = at.selectbox(key="settings.variant.TWO._w")
    assert box.value == "truefake" and box.format_func("original") == "original · no weights"
    box.set_value("original").run()
    assert not at.exception
    assert _row(at, "TWO")["status"] == "weights not installed"              # this session follows the pick
    assert preferences.load_variants() == {"TWO": "original"}
    fresh = _home()                          # a new session: the remembered pick is not installed → the installed one
    assert _row(fresh, "TWO")["variant"] == "truefake"


def test_single_page_opens_on_a_detector_with_weights_and_never_carries_a_variant_over(two_variants):
    at = _home()
    at.switch_page("pages/1_Single_Detector.py").run()
    assert not at.exception
    assert at.selectbox(key="single.detector").value == "TWO"                 # the only one with weights
    assert at.selectbox(key="single.variant.TWO").value == "truefake"
    assert not at.warning
    at.selectbox(key="single.detector").set_value("TINY").run()
    assert at.selectbox(key="single.variant.TINY").value == "original"
    assert "TINY:original: weights not installed." in _texts(at)
    at.selectbox(key="single.detector").set_value("TWO").run()
    assert at.selectbox(key="single.variant.TWO").value == "truefake" and not at.warning


def test_picking_an_example_while_an_upload_is_present_is_shown_and_said(decided):
    at = _home()
    at.file_uploader(key="home.upload").upload("mine.png", png_bytes((64, 64)), "image/png").run()
    assert at.session_state["analyse.image"].name == "mine.png"
    at.selectbox(key="home.example").set_value("Coffee (camera photo)").run()
    assert not at.exception
    assert at.session_state["analyse.image"].name == "Coffee (camera photo)"
    assert any("Showing the example you picked" in i.value for i in at.info)
    at.run()                                                                   # a rerun keeps the latest choice
    assert at.session_state["analyse.image"].name == "Coffee (camera photo)"
    at.selectbox(key="home.example").set_value("—").run()                     # back to the upload
    assert at.session_state["analyse.image"].name == "mine.png"
    assert not any("Showing the example" in i.value for i in at.info)


def test_the_image_uploader_limit_is_the_library_limit(monkeypatch):
    import tomllib
    from core import settings
    from ui.widgets import upload_limit_mb
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * settings.MB == settings.max_bytes()    # one number: 200 MB
    assert config["server"]["fileWatcherType"] == "none" and config["client"]["toolbarMode"] == "minimal"
    at = _home()
    assert at.file_uploader(key="home.upload").proto.max_upload_size_mb == 200
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_BYTES", str(50 * settings.MB))
    at = _home()
    assert at.file_uploader(key="home.upload").proto.max_upload_size_mb == 50
    assert upload_limit_mb() <= config["server"]["maxUploadSize"]


def test_models_page_names_the_uploaded_file_never_a_temporary_path(tiny_config):
    at = _home()
    at.switch_page("pages/5_Models.py").run()
    at.file_uploader(key="models.TINY:original.weights.up").upload("my weights.pth", b"\x80\x04junk not torch",
                                                                  "application/octet-stream").run()
    at.button(key="models.TINY:original.weights.import").click().run()
    assert not at.exception
    said = "\n".join(t.value for t in at.text if "preferences.json" not in t.value)
    assert "checkpoint my weights.pth is damaged" in said and "dl-import" not in said and "upload.pth" not in said


def test_models_page_download_all_lists_sizes_and_licences_and_is_off_offline(tiny_config):
    at = _home()
    at.switch_page("pages/5_Models.py").run()
    plan = _frame(at, "part")
    clip = plan[(plan.detector == "CLIP-D:original") & (plan.part == "backbone")].iloc[0]
    assert clip["size"] == "~1.7 GB" and clip["licence"].startswith("MIT")
    assert "TINY:original" in set(plan.detector)
    assert any("Downloads are off on this server" in i.value for i in at.info)


def test_a_variant_with_only_its_backbone_is_partial_as_on_the_command_line(tiny_config, tmp_path, capsys):
    from core.cli.main import main
    from core.models import install
    from core.models.registry import get_spec
    from tests.helpers import make_tiny_checkpoint
    (tiny_config / "tiny.yaml").write_text(
        "id: TINY\nvariant: original\narch: tiny_cnn\npreprocess: {mode: full, large_crop: 64}\n"
        "weights: {file: tiny.pt, container: model}\nbackbone: {file: bb.pt, container: model}\n"
        "card: {title: Tiny, licence: MIT, training_data: none}\n")
    install.import_file(make_tiny_checkpoint(tmp_path / "bb.pt"), get_spec("TINY"), part="backbone",
                        verify_architecture=False)
    at = _home()
    assert _row(at, "TINY")["status"] == "partial (weights missing)"
    main(["list"])
    assert "partial (weights missing)" in capsys.readouterr().out
