"""Video analysis end to end on PyAV-made clips: face tracks, the FACE classifier, whole-frame detectors, outputs, CLI."""
from __future__ import annotations

import csv
import json
import math

import pytest

from core.cli.main import main
from core.errors import BadVideo
from core.models.factory import create_detector
from core.video.analyse import analyse_video
from core.video.report import write_outputs
from core.video.sampling import SamplingPlan
from tests.helpers import hooks_left, make_tiny_checkpoint
from tests.unit.videogen import cut, no_face, panned, write_video

PLAN = SamplingPlan(fps=2)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {"one": write_video(d / "one.mp4", panned([1]), n=30),
            "two": write_video(d / "two.mp4", panned([1, 2], side=100), n=30),
            "none": write_video(d / "none.mp4", no_face(), n=30),
            "cut": write_video(d / "cut.mp4", cut(), n=40)}


@pytest.fixture(scope="module")
def face_det():
    return create_detector("FACE", pretrained=False)        # deterministic random classifier, no checkpoint needed


def test_panned_face_is_one_track_spanning_the_video(clips):
    a = analyse_video(str(clips["one"]), plan=PLAN)
    assert len(a.frames) == 6 and all(len(f.faces) == 1 for f in a.frames)
    assert len(a.tracks) == 1
    tr = a.tracks[0]
    assert (tr.first_t, tr.last_t, tr.n_frames) == (0.0, 2.5, 6)
    assert not tr.scored and tr.heatmap is None and tr.thumbnail.size == (160, 160)
    assert a.assessment.level == "inconclusive"
    assert any("weights are not installed" in r for r in a.assessment.reasons)


def test_two_faces_are_two_tracks(clips):
    a = analyse_video(str(clips["two"]), plan=PLAN)
    assert len(a.tracks) == 2
    assert all((t.first_t, t.last_t, t.n_frames) == (0.0, 2.5, 6) for t in a.tracks)
    for f in a.frames:                                       # the two faces of a frame never share a track
        assert sorted(x.track for x in f.faces) == [0, 1]


def test_no_face_says_so(clips):
    a = analyse_video(str(clips["none"]), plan=PLAN)
    assert a.tracks == [] and all(f.faces == [] for f in a.frames)
    assert a.assessment.level == "inconclusive" and a.assessment.direction is None
    assert "no face was found in any sampled frame" in a.assessment.reasons


def test_cut_between_shots_starts_a_new_track(clips):
    a = analyse_video(str(clips["cut"]), plan=PLAN)
    assert len(a.tracks) == 2
    first, second = a.tracks
    assert first.last_t < second.first_t
    assert first.first_t == 0.0 and second.last_t == 3.5


def test_face_classifier_scores_tracks_with_gradcam(clips, face_det):
    a = analyse_video(str(clips["one"]), plan=PLAN, face=face_det)
    tr = a.tracks[0]
    assert tr.scored and 0.0 <= tr.p_mean <= tr.p_max <= 1.0 and 0.0 <= tr.share_above <= 1.0
    ps = [f.faces[0].p_fake for f in a.frames]
    assert tr.p_max == pytest.approx(max(ps)) and tr.best_t == a.frames[ps.index(max(ps))].t
    assert tr.heatmap is not None and tr.heatmap.shape == (256, 256)
    assert hooks_left(face_det.model) == []
    assert a.assessment.level != "inconclusive" and a.assessment.direction in ("fake", "real")
    assert a.face_classifier == "FACE:original"


def test_whole_frame_detector_and_caveat(clips, tiny_config, tmp_path, weights_home):
    det = create_detector("TINY", weights=make_tiny_checkpoint(tmp_path / "t.pt", bias=3.0))
    a = analyse_video(str(clips["none"]), plan=PLAN, detectors=[det])
    assert all(math.isclose(f.scores["TINY:original"], 1 / (1 + math.exp(-3.0)), rel_tol=1e-5) for f in a.frames)
    assert (a.assessment.level, a.assessment.direction) == ("weak", "fake")     # frames alone: weak at most
    assert a.to_dict()["caveat"].startswith("Whole-frame detectors")


def test_progress_and_cancel(clips):
    seen = []
    a = analyse_video(str(clips["one"]), plan=PLAN, progress=lambda d, n, s: seen.append((d, n)),
                      should_stop=lambda: len(seen) >= 2)
    assert a.cancelled and len(a.frames) == 2 and seen == [(1, 6), (2, 6)]
    assert a.assessment.level == "inconclusive"


def test_outputs(clips, face_det, tmp_path):
    a = analyse_video(str(clips["two"]), plan=PLAN, face=face_det)
    paths = write_outputs(a, tmp_path / "out", "two.mp4")
    doc = json.loads(paths["json"].read_text())
    assert [t["id"] for t in doc["tracks"]] == [0, 1] and doc["assessment"]["level"] in (
        "strong", "moderate", "weak", "inconclusive")
    f0 = doc["frames"][0]
    assert set(f0) >= {"index", "t", "faces", "scores"} and set(f0["faces"][0]) >= {"box", "track", "p_fake"}
    assert set(doc["tracks"][0]) >= {"id", "first_t", "last_t", "n_frames", "p_fake"}
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 12 and {r["series"] for r in rows} == {"track 0", "track 1"}
    page = paths["html"].read_text()
    assert "<svg" in page and "face track 0" in page and "data:image/jpeg;base64," in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")       # self-contained


def test_cli_writes_outputs(clips, tmp_path, weights_home, capsys):
    rc = main(["video", str(clips["one"]), "--out", str(tmp_path / "o"), "--fps", "2", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "Inconclusive" in out and "1 face track" in out
    assert {p.name for p in (tmp_path / "o").iterdir()} == {"video.json", "timeline.csv", "report.html"}


def test_cli_tiny_detector_and_keyframes(clips, tmp_path, tiny_config, weights_home, capsys):
    ckpt = make_tiny_checkpoint(tmp_path / "t.pt", bias=-3.0)
    rc = main(["video", str(clips["none"]), "--out", str(tmp_path / "o"), "--keyframes", "--detectors", "TINY",
               "--weights", f"TINY={ckpt}", "--quiet", "--fast"])
    assert rc == 0 and "Weak evidence that it is real" in capsys.readouterr().out
    doc = json.loads((tmp_path / "o" / "video.json").read_text())
    assert doc["sampling"].startswith("keyframes") and doc["detectors"] == ["TINY:original"]


@pytest.mark.parametrize("data", [b"", b"not a video at all\n" * 40])
def test_cli_hostile_video_is_one_sentence(tmp_path, weights_home, capsys, data):
    (tmp_path / "bad.mp4").write_bytes(data)
    rc = main(["video", str(tmp_path / "bad.mp4"), "--out", str(tmp_path / "o"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: bad.mp4:") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(BadVideo):
        analyse_video(str(tmp_path / "bad.mp4"))


def test_cli_bad_options(clips, tmp_path, capsys):
    assert main(["video", str(clips["one"]), "--out", str(tmp_path), "--fps", "0"]) == 2
    assert main(["video", str(tmp_path / "missing.mp4"), "--out", str(tmp_path)]) == 2
    assert "no such video" in capsys.readouterr().err
