"""Case report: content, self-containment, determinism, and the ``report`` command."""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import re

import numpy as np
import pytest
from tests.helpers import install_tiny_detectors
from PIL import Image

from core.cli import report as report_cmd
from core.cli.main import main as cli_main
from core.report import build_report, library_versions, svg_line_chart

T1 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
T2 = dt.datetime(2026, 6, 7, 8, 9, 10, tzinfo=dt.timezone.utc)


def jpeg_bytes(w: int = 96, h: int = 80, quality: int = 70, gps: bool = True) -> bytes:
    arr = np.random.default_rng(3).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ex = Image.Exif()
    ex[271], ex[272] = "Nikon", "D850"
    if gps:
        g = ex.get_ifd(0x8825)
        g[1], g[2], g[3], g[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality, exif=ex)
    return buf.getvalue()


@pytest.fixture()
def decided(tiny_config, weights_home):
    """TA says fake (logit +3, weight 0.6), TB says real (logit −3, weight 0.4)."""
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    from core.models.factory import create_detector
    return [create_detector("TA"), create_detector("TB")]


def test_report_holds_the_evidence(decided):
    data = jpeg_bytes()
    rep = build_report(data, decided, name="case.jpg", timestamp=T1)
    d = rep.data
    assert d["generated_at"] == "2025-01-02T03:04:05Z"
    assert d["file"]["sha256"] == hashlib.sha256(data).hexdigest() and d["file"]["phash"]
    assert d["metadata"]["exif"]["camera"] == "Nikon D850" and d["metadata"]["jpeg"]["quality"] == 70
    assert set(d["forensics"]) == {"frequency", "npr", "ela", "noise"}
    dets = {r["detector_id"]: r for r in d["detectors"]}
    assert set(dets) == {"TA", "TB"}
    assert dets["TA"]["weights_sha256"] == decided[0].weights_sha256 and len(dets["TA"]["weights_sha256"]) == 64
    assert dets["TA"]["preprocessing"] and dets["TA"]["label"] == "fake" and dets["TB"]["label"] == "real"
    assert "elapsed_s" not in dets["TA"]                               # timings are not evidence
    assert d["ensemble"]["settings"]["vote_threshold"] == 0.6
    assert d["ensemble"]["settings"]["weights"]["TA"] == 0.6 and d["ensemble"]["result"]["verdict"] == "FAKE"
    assert len(d["robustness"]["rows"]) == 14 and d["robustness"]["summary"]
    codes = [r["code"] for r in d["abstention"]]
    assert "recompressed" in codes and "centre_crop" in codes           # quality 70 < 80; TINY crops to 64×64
    assert any("disagree strongly" in r["text"] for r in d["abstention"])   # p_fake 0.95 vs 0.05
    assert any(r["code"] == "recompressed" for r in dets["TA"]["reasons"])
    assert d["environment"]["numpy"] == np.__version__ and d["environment"]["python"]
    assert "48.0" not in rep.json_text() and "48.85" not in rep.json_text()     # GPS left out by default
    assert json.loads(rep.json_text()) == d


def test_html_is_self_contained(decided):
    rep = build_report(jpeg_bytes(), decided, name="case.jpg", timestamp=T1)
    h = rep.html
    assert h.startswith("<!DOCTYPE html>") and "</html>" in h
    assert h.count("data:image/png;base64,") >= 5 and h.count("<svg") >= 2
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", h)           # nothing fetched from outside
    assert "<script" not in h and "<link" not in h
    for text in ("case.jpg", "Reasons to doubt", "Robustness probe", "TA", "weights sha256", "Nikon D850",
                 "Environment", "quantisation table 0", "2025-01-02T03:04:05Z"):
        assert text in h, text


def test_same_image_and_settings_give_the_same_report_apart_from_the_timestamp(decided):
    data = jpeg_bytes()
    a = build_report(data, decided, name="case.jpg", timestamp=T1)
    b = build_report(data, decided, name="case.jpg", timestamp=T2)
    ja, jb = json.loads(a.json_text()), json.loads(b.json_text())
    assert ja.pop("generated_at") != jb.pop("generated_at")
    assert ja == jb
    assert a.html.replace("2025-01-02T03:04:05Z", "T") == b.html.replace("2026-06-07T08:09:10Z", "T")
    c = build_report(data, decided, name="case.jpg", timestamp=T1, ela_quality=75)
    assert c.json_text() != a.json_text()                              # a setting change shows


def test_report_without_any_weights_still_gives_evidence(tmp_path):
    p = tmp_path / "photo.jpg"
    p.write_bytes(jpeg_bytes(gps=False))
    rep = build_report(p, [], timestamp=T1)
    d = rep.data
    assert d["file"]["name"] == "photo.jpg" and d["detectors"] == [] and d["ensemble"] is None
    assert d["robustness"] is None and d["abstention"] == []
    assert d["forensics"]["frequency"]["summary"] and d["metadata"]["findings"]
    assert "No detector ran" in rep.html


def test_gps_only_on_request_and_precomputed_results_are_reused(decided):
    data = jpeg_bytes()
    first = build_report(data, decided, timestamp=T1, probe=False)
    assert first.data["robustness"] is None
    from core.results import DetectionResult
    fake = DetectionResult("TA", "original", 9.0, 0.9999, "fake", 0.5, 0.0, (96, 80), (64, 64), None, False, "x",
                           "abc")
    rep = build_report(data, decided, results={"TA:original": fake}, include_gps=True, timestamp=T1, probe=False)
    ta = next(r for r in rep.data["detectors"] if r["detector_id"] == "TA")
    assert ta["weights_sha256"] == "abc"                               # not run again
    gps = rep.data["metadata"]["exif"]["gps"]
    assert gps["latitude"] == pytest.approx(48.858056, abs=1e-5)


def test_svg_line_chart_is_plain_svg():
    svg = svg_line_chart([("a", [0, 1, 2], [0.1, float("nan"), 0.9])], x_labels=["x", "y", "z"], y_range=(0, 1),
                         hline=0.5)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and svg.count("<polyline") == 2   # NaN breaks the line
    assert "stroke-dasharray" in svg
    assert library_versions()["pillow"] == Image.__version__


# ----------------------------------------------------------------------------------------------- CLI

def main(argv):
    """``python -m core report ...`` in process."""
    return cli_main(["report", *argv])


def test_cli_writes_both_files(decided, tmp_path, capsys):
    img = tmp_path / "x.jpg"
    img.write_bytes(jpeg_bytes())
    out = tmp_path / "case"
    assert cli_main(["report", str(img), "--out", str(out), "--no-probe"]) == 0
    d = json.loads((out / "report.json").read_text())
    assert {r["detector_id"] for r in d["detectors"]} == {"TA", "TB"}
    assert d["robustness"] is None
    assert "weights not installed" in d["not_run"]["CLIP-D"]
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert "verdict: FAKE" in capsys.readouterr().out


def test_cli_explicit_detectors_and_weights(tiny_config, weights_home, tmp_path):
    from tests.helpers import make_tiny_checkpoint
    ckpt = make_tiny_checkpoint(tmp_path / "mine.pt", bias=-2.0)
    img = tmp_path / "x.png"
    Image.new("RGB", (70, 60), (10, 20, 30)).save(img)
    out = tmp_path / "o"
    assert cli_main(["report", str(img), "--out", str(out), "--detectors", "TINY", "--weights", f"TINY={ckpt}",
                 "--ela-quality", "80"]) == 0
    d = json.loads((out / "report.json").read_text())
    assert [r["detector_id"] for r in d["detectors"]] == ["TINY"] and d["detectors"][0]["label"] == "real"
    assert d["settings"]["ela_quality"] == 80 and len(d["robustness"]["rows"]) == 7


@pytest.mark.parametrize("args,msg", [
    (["--weights", "NPR"], "expects ID=PATH"),
    (["--detectors", "NOPE"], "unknown detector 'NOPE'"),
    (["--detectors", "NPR"], "weights not installed"),
    (["--ela-quality", "0"], "--ela-quality must be between 1 and 100"),
])
def test_cli_user_errors_are_one_sentence(weights_home, tmp_path, capsys, args, msg):
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(img)
    assert cli_main(["report", str(img), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and "Traceback" not in err


def test_cli_missing_image(weights_home, tmp_path, capsys):
    assert cli_main(["report", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_add_parser_registers_the_subcommand(weights_home, tmp_path):
    p = argparse.ArgumentParser()
    report_cmd.add_parser(p.add_subparsers(dest="command", required=True))
    img = tmp_path / "x.png"
    Image.new("RGB", (40, 40), (200, 0, 0)).save(img)
    args = p.parse_args(["report", str(img), "--out", str(tmp_path / "o"), "--no-probe"])
    assert args.func(args) == 0 and (tmp_path / "o" / "report.html").is_file()


def test_report_command_is_wired_into_the_main_cli(tmp_path, capsys):
    from tests.helpers import png_bytes
    main = cli_main
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((64, 48)))
    assert main(["report", str(img), "--out", str(tmp_path / "out"), "--no-probe"]) == 0
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "report.json").is_file()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "missing.png"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_untrusted_text_is_escaped_in_the_html():
    """File names, EXIF and PNG text chunks come from the file: they must never become markup in the page."""
    from PIL import PngImagePlugin
    ex = Image.Exif()
    ex[271], ex[272] = "<script>alert(1)</script>", "D850"
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<img src=x onerror=alert(2)>")
    buf = io.BytesIO()
    Image.new("RGB", (48, 40), (90, 40, 10)).save(buf, format="PNG", pnginfo=info, exif=ex)
    rep = build_report(buf.getvalue(), [], name="<b onmouseover=alert(3)>.png", timestamp=T1, probe=False)
    h = rep.html
    for raw in ("<script", "<img src=x", "<b onmouseover"):
        assert raw not in h, raw
    assert "&lt;b onmouseover=alert(3)&gt;.png" in h and "&lt;img src=x onerror=alert(2)&gt;" in h
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in h
    assert rep.data["file"]["name"] == "<b onmouseover=alert(3)>.png"          # the JSON keeps the real text


def test_a_non_image_is_named_in_the_error(tmp_path):
    from core.errors import BadImage
    p = tmp_path / "preds.csv"
    p.write_text("path,label,score\na.png,1,0.3\n")
    with pytest.raises(BadImage, match=r"preds\.csv: is not an image"):
        build_report(p, [], timestamp=T1)
    with pytest.raises(BadImage, match=r"^upload\.bin: "):
        build_report(b"not an image at all", [], name="upload.bin", timestamp=T1)


def test_write_refuses_a_file_in_place_of_the_folder(decided, tmp_path):
    rep = build_report(jpeg_bytes(), decided, timestamp=T1, probe=False)
    (tmp_path / "taken").write_text("x")
    with pytest.raises(OSError):
        rep.write(tmp_path / "taken")
    pj, ph = rep.write(tmp_path / "ok")
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == ["report.html", "report.json"]   # no .part left
    assert json.loads(pj.read_text()) == rep.data and ph.read_text() == rep.html


def test_a_users_own_file_keeps_its_detector_and_says_custom(tiny_config, weights_home, tmp_path):
    from tests.helpers import make_tiny_checkpoint

    from core.models.factory import create_detector
    det = create_detector("TINY", weights=make_tiny_checkpoint(tmp_path / "mine.pt", bias=2.0))
    rep = build_report(jpeg_bytes(), [det], timestamp=T1, probe=False)
    (r,) = rep.data["detectors"]
    assert r["variant"] == "custom" and r["weights_sha256"] == det.weights_sha256
    assert r["model_card"]["paper"] == "none" and "user's own" in r["model_card"]["training_data"]
    assert "mine.pt" in rep.html
