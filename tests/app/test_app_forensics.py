"""Forensics page (AppTest) with no weights and with tiny test detectors; its pure figure builders."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from core.forensics import frequency_view
from core.results import DetectionResult
from core.verdict.robustness import run_probe
from tests.helpers import install_tiny_detectors
from ui.forensics_figures import heatmap_figure, probe_figure, radial_spectrum_figure

ROOT = Path(__file__).resolve().parents[2]
PAGE = "pages/6_Forensics.py"
UPSAMPLED = "Nearest-neighbour upsampled texture (rendered by this project; shows up-sampling traces)"
XMP = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
       '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:'
       'DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/></rdf:RDF>'
       '</x:xmpmeta>')


@pytest.fixture(autouse=True)
def _fresh(weights_home):
    st.cache_resource.clear()
    st.cache_data.clear()
    yield


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=180).run()
    at.switch_page(PAGE).run()
    assert not at.exception, at.exception
    return at


def _markdown_texts(at: AppTest) -> list[str]:
    """Every element Streamlit renders as Markdown (titles, markdown, captions, alert boxes)."""
    kinds = ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success")
    return [str(m.value) for k in kinds for m in at.get(k)]


def _texts(at: AppTest) -> str:
    return "\n".join(_markdown_texts(at) + [str(t.value) for t in at.text])


def _generated_jpeg() -> bytes:
    arr = np.random.default_rng(0).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    ex = Image.Exif()
    ex[305] = "Some Editor 1.0"
    g = ex.get_ifd(0x8825)
    g[1], g[2], g[3], g[4] = "N", (40.0, 26.0, 46.0), "W", (79.0, 58.0, 56.0)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=60, xmp=XMP.encode(), exif=ex)
    return buf.getvalue()


def test_page_gives_real_evidence_with_zero_weights():
    at = _page()
    assert "Upload an image" in _texts(at)
    at.selectbox(key="forensics.example").set_value(UPSAMPLED).run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "Periodic peaks at period(s) 2" in text                       # frequency view
    assert "The NPR residual is almost zero" in text                      # NPR residual
    assert "Re-saving at JPEG quality 90" in text and "Noise residual std" in text
    facts = next(d.value for d in at.dataframe if "fact" in d.value.columns)
    sha = dict(zip(facts["fact"], facts["value"]))["SHA-256"]
    assert sha == at.session_state["analyse.image"].sha256
    assert "No detector weights are installed" in text                   # probe tab explains itself
    at.slider(key="forensics.ela_quality").set_value(70).run()
    assert not at.exception and "Re-saving at JPEG quality 70" in _texts(at)
    at.button(key="forensics.report_build").click().run()
    assert not at.exception
    assert [b.key for b in at.get("download_button")] == ["forensics.report_html", "forensics.report_json"]
    rep = at.session_state["forensics.report"][sha]
    assert rep.data["detectors"] == [] and rep.data["settings"]["ela_quality"] == 70
    assert rep.data["forensics"]["frequency"]["peaks"]


def test_declared_ai_source_is_flagged_and_gps_hidden_until_asked():
    at = _page()
    at.file_uploader(key="forensics.upload").upload("gen.jpg", _generated_jpeg(), "image/jpeg").run()
    assert not at.exception, at.exception
    assert any("Declared as AI-generated" in e.value and "trainedAlgorithmicMedia" in e.value for e in at.error)
    text = _texts(at)
    assert "estimated quality 60" in text and "below 80" in text          # reason to doubt any detector
    assert sum("quality 60" in w.value for w in at.warning) == 1 and "erases the fine traces" not in text  # once
    assert "The file contains a GPS position (hidden)." in text and "latitude 40." not in text
    at.checkbox(key="forensics.show_gps").check().run()
    assert not at.exception
    assert "GPS: latitude 40.446" in _texts(at)


def test_probe_and_report_with_installed_test_detectors(tiny_config, weights_home):
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    at = _page()
    at.file_uploader(key="forensics.upload").upload("x.png", _generated_jpeg(), "image/jpeg").run()
    at.button(key="forensics.probe_run").click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("TA is stable: fake under all 6 degradations") for s in at.success)
    sha = at.session_state["analyse.image"].sha256
    (keys, probe), = at.session_state["forensics.probe"][sha].items()
    assert keys == ("TA:original", "TB:original") and len(probe.rows) == 14
    assert "DOES NOT MATCH" in "\n".join(str(v) for d in at.dataframe for v in d.value.get("value", []))
    at.button(key="forensics.report_build").click().run()
    assert not at.exception
    rep = at.session_state["forensics.report"][sha]
    assert {r["detector_id"] for r in rep.data["detectors"]} == {"TA", "TB"}
    assert len(rep.data["robustness"]["rows"]) == 14 and rep.data["ensemble"]["result"]["verdict"] == "FAKE"
    assert set(at.session_state["analyse.results"][sha]) >= {"TA:original", "TB:original"}   # shared with pages


def test_probe_can_be_embedded_on_another_page_for_one_detector(tiny_config, weights_home):
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0)})

    def app():
        import numpy as np
        import streamlit as st
        from PIL import Image

        from ui.forensics_views import render_probe, result_doubts
        from ui.state import init_state
        from ui.widgets import CurrentImage
        init_state()
        img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8))
        cur = CurrentImage("x.png", b"png", "sha-x")
        probe = render_probe(cur, img, keys=["TA:original"], key_prefix="single")
        if probe is not None:
            from core.models.factory import create_detector
            st.write(f"doubts: {len(result_doubts(cur, create_detector('TA').predict(img)))}")
    at = AppTest.from_function(app, default_timeout=120).run()
    assert not at.exception, at.exception
    at.button(key="single.probe_run").click().run()
    assert not at.exception, at.exception
    assert list(at.session_state["forensics.probe"]["sha-x"]) == [("TA:original",)]
    assert any(s.value.startswith("TA is stable") for s in at.success)
    assert "doubts: " in _texts(at)


def test_reason_helpers_render_for_other_pages():
    def app():
        import io

        import numpy as np
        from PIL import Image

        from core.results import DetectionResult
        from core.verdict.ensemble import EnsembleConfig, ensemble
        from ui.forensics_views import ensemble_doubts, render_reasons, result_doubts
        from ui.widgets import CurrentImage
        buf = io.BytesIO()
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(buf, format="JPEG", quality=50)
        cur = CurrentImage("x.jpg", buf.getvalue(), "sha")
        a = DetectionResult("A", "original", 3.0, 0.95, "fake", 0.5, 0.0, (40, 40), (40, 40), None, False, "t")
        b = DetectionResult("B", "original", -3.0, 0.05, "real", 0.5, 0.0, (40, 40), (40, 40), None, False, "t")
        render_reasons(result_doubts(cur, a))
        render_reasons(ensemble_doubts(cur, ensemble([a, b], EnsembleConfig(weights={"A": .5, "B": .5})), [a, b]))
    at = AppTest.from_function(app).run()
    assert not at.exception, at.exception
    texts = [w.value for w in at.warning]
    assert texts[0].startswith("Reason to doubt: the file is a JPEG of estimated quality 50")
    assert any("disagree strongly" in t for t in texts) and all(t.endswith(".") for t in texts)


# ----------------------------------------------------------------------------------------------- figures

def test_radial_spectrum_figure_marks_the_peaks():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).resize((192, 192), Image.NEAREST)
    view = frequency_view(img)
    fig = radial_spectrum_figure(view)
    assert [t.name for t in fig.data] == ["residual", "residual energy"] and fig.data[1].yaxis == "y2"
    assert len(fig.data[0].x) == len(view.radial_freq)
    assert [s.x0 for s in fig.layout.shapes] == pytest.approx([1 / 3])


def test_probe_figure_has_one_line_per_detector_over_the_conditions():
    class Const:
        def __init__(self, name, p):
            self.detector_id, self.p = name, p

        def predict(self, image):
            return DetectionResult(self.detector_id, "original", math.log(self.p / (1 - self.p)), self.p,
                                   "fake" if self.p > 0.5 else "real", 0.5, 0.0, image.size, image.size, None, False,
                                   "t")
    probe = run_probe(Image.new("RGB", (32, 32)), [Const("A", 0.9), Const("B", 0.2)])
    fig = probe_figure(probe)
    assert [t.name for t in fig.data] == ["A", "B"]
    assert list(fig.data[0].x) == [c.label for c in probe.conditions]
    assert list(fig.data[1].y) == pytest.approx([0.2] * 7)
    assert fig.layout.shapes[0].y0 == 0.5 and fig.layout.yaxis.range == (0, 1)


def test_heatmap_figure_has_a_colour_bar_in_the_map_units():
    arr = np.random.default_rng(0).normal(0, 3, (40, 60))
    fig = heatmap_figure(arr, "signed", unit="residual")
    image, bar = fig.data
    assert image.type == "image" and image.source.startswith("data:image/png;base64,")
    assert bar.marker.showscale and bar.marker.colorbar.title.text == "residual"
    s = float(np.percentile(np.abs(arr), 99.5))
    assert (bar.marker.cmin, bar.marker.cmax) == pytest.approx((-s, s))      # signed: symmetric around 0
    mag = heatmap_figure(np.abs(arr), "magnitude", unit="|difference|").data[1].marker
    assert mag.cmin == 0 and mag.cmax == pytest.approx(float(np.percentile(np.abs(arr), 99.5)))


# ----------------------------------------------------------------------------------------------- hostile text

PAYLOADS = ("![x](http://127.0.0.1:9/x.png)", "## VERDICT: REAL", "<script>alert(1)</script>")


def _hostile_jpeg() -> bytes:
    ex = Image.Exif()
    ex[271], ex[272], ex[305], ex[270] = PAYLOADS[1], "Canon EOS", PAYLOADS[0] + " Midjourney", PAYLOADS[2]
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="## VERDICT: REAL '
           '![y](http://127.0.0.1:9/y.png) &lt;script&gt;alert(2)&lt;/script&gt;"/></rdf:RDF></x:xmpmeta>')
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(
        buf, format="JPEG", quality=92, exif=ex, xmp=xmp.encode())
    return buf.getvalue()


def test_untrusted_file_name_and_metadata_are_shown_as_text_never_markdown():
    at = _page()
    name = "![n](http://127.0.0.1:9/n.png) ## VERDICT: REAL <script>x</script>.jpg"
    at.file_uploader(key="forensics.upload").upload(name, _hostile_jpeg(), "image/jpeg").run()
    assert not at.exception, at.exception
    rendered = "\n".join(_markdown_texts(at))
    for bad in ("127.0.0.1:9", "VERDICT", "<script>", "alert("):
        assert bad not in rendered, bad                     # nothing from the file reached a Markdown element
    plain = "\n".join(str(t.value) for t in at.text)
    assert "names a generator" in plain and PAYLOADS[0] in plain      # shown, literally, as text elements
    cells = "\n".join(str(v) for d in at.dataframe for col in d.value.columns for v in d.value[col])
    assert name in cells and PAYLOADS[1] in cells and PAYLOADS[2] in cells
    facts = next(d for d in at.dataframe if "fact" in d.value.columns)
    assert json.loads(facts.proto.columns)["value"]["width"] == "large"      # the long column gets the room
    assert max(len(str(v)) for v in facts.value["value"]) <= 100             # short facts: nothing cut off


def test_hostile_xmp_gives_one_sentence_and_the_page_still_works():
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta>" * 22_000 + "</x:xmpmeta>")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(
        buf, format="PNG", pnginfo=info)
    at = _page()
    at.file_uploader(key="forensics.upload").upload("deep.png", buf.getvalue(), "image/png").run()
    assert not at.exception, at.exception
    assert "XMP could not be parsed" in _texts(at) and "Noise residual std" in _texts(at)


def test_a_large_image_is_analysed_whole_and_the_page_says_how_it_is_shown():
    rng = np.random.default_rng(5)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (1500, 2100, 3), dtype=np.uint8)).save(buf, format="PNG")
    at = _page()
    at.file_uploader(key="forensics.upload").upload("big.png", buf.getvalue(), "image/png").run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    for what in ("mean |r|", "mean error", "mean |residual|"):        # NPR, ELA, noise: each states its scale
        assert any(c.startswith("Whole image (2100×1500 px) analysed at full resolution; the map is shown at 1/3 "
                                f"scale ({what} of each 3×3-pixel block)") for c in captions), what
    assert any(c.startswith("Whole image (2100×1500 px) analysed as 6 tiles of 1024×1024 px") for c in captions)
    charts = [c for c in at.get("plotly_chart")]
    bars = [json.loads(c.proto.spec)["data"] for c in charts]
    assert sum(1 for d in bars if d and d[0].get("type") == "image" and d[1]["marker"]["showscale"]) == 4


def test_long_steps_say_what_is_done_and_how_long_is_left():
    from ui.forensics_views import eta_progress, eta_text
    assert eta_text(0, 12, 0.0, "scorings") == "0 of 12 scorings · 0 s so far"          # no guess before a step
    assert eta_text(3, 12, 41.0, "scorings") == "3 of 12 scorings · 41 s so far · about 2 min 3 s left"
    assert eta_text(12, 12, 90.0, "scorings") == "12 of 12 scorings · 90 s so far"

    class Bar:
        def progress(self, value, text):
            self.value, self.text = value, text
    bar = Bar()
    eta_progress(bar, "scorings")(1, 4, "TA:original · JPEG 75")
    assert bar.value == 0.25 and bar.text.startswith("TA:original · JPEG 75 — 1 of 4 scorings")
