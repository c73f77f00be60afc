"""Video analysis end to end on PyAV-made clips: face tracks, the FACE classifier, whole-frame detectors, outputs, CLI."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from core.cli.main import main
from core.errors import BadVideo
from core.models.factory import create_detector
from core.verdict.fitting import ScoreColumn, fit_profile
from core.video.analyse import analyse_video
from core.video.report import write_outputs
from core.video.sampling import SamplingPlan
from core.video.verdict import FACE_CAP
from tests.helpers import hooks_left, install_tiny_detectors
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


def decided_face(logit: float):
    """A FACE classifier that gives every face the same logit (its last layer ignores the features)."""
    det = create_detector("FACE", pretrained=False)
    with torch.no_grad():
        det.model.logits.weight.zero_()
        det.model.logits.bias.fill_(logit)
    return det


@pytest.fixture()
def two_fake(tiny_config, weights_home):
    """Two installed whole-frame test detectors that both say fake (logit +3)."""
    install_tiny_detectors(tiny_config, weights_home, {"TA": (1.0, 3.0), "TB": (1.0, 3.0)})
    return tiny_config


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
    assert list(tr.p_fakes) == ps and a.face_classifier == "FACE:original"
    # an untrained classifier sits near 0.5: its sightings are not confident enough to vote
    assert a.assessment.level == "inconclusive" and "too few to judge" in a.assessment.reasons[0]


def test_a_decided_face_classifier_gives_graded_evidence(clips):
    a = analyse_video(str(clips["one"]), plan=PLAN, face=decided_face(4.0), with_cam=False)
    s = a.assessment
    assert (s.level, s.direction, s.p_fake) == (FACE_CAP, "fake", None)       # one classifier: capped
    assert s.reasons[0] == "face track 0: 6 of 6 sightings confident enough to vote, 6 fake, 0 real (100% agree)"
    assert s.headline == "Moderate evidence of AI generation"
    real = analyse_video(str(clips["two"]), plan=PLAN, face=decided_face(-4.0), with_cam=False).assessment
    assert (real.level, real.direction) == (FACE_CAP, "real") and "the video is camera-made" in real.headline


def test_whole_frame_detectors_graded_by_the_image_rule_and_capped(clips, two_fake):
    dets = [create_detector("TA"), create_detector("TB")]
    a = analyse_video(str(clips["none"]), plan=PLAN, detectors=dets)
    assert all(math.isclose(f.scores["TA:original"], 1 / (1 + math.exp(-3.0)), rel_tol=1e-5) for f in a.frames)
    s = a.assessment
    assert (s.level, s.direction) == ("weak", "fake")          # 2 of 2 agree (moderate for an image), capped weak
    assert s.reasons[0] == "whole frames: 2 of 2 voting detectors say AI-generated (TA, TB)"
    assert "no face was found in any sampled frame" in s.reasons
    assert [v.detector_id for v in s.voices] == ["TA", "TB"]
    assert a.to_dict()["caveat"].startswith("Whole-frame detectors")
    one = analyse_video(str(clips["none"]), plan=PLAN, detectors=dets[:1]).assessment
    assert one.level == "inconclusive" and any("only 1 detector" in r for r in one.reasons)


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


def test_cli_detectors_and_keyframes(clips, tmp_path, tiny_config, weights_home, capsys):
    install_tiny_detectors(tiny_config, weights_home, {"TA": (1.0, -3.0), "TB": (1.0, -3.0)})
    rc = main(["video", str(clips["none"]), "--out", str(tmp_path / "o"), "--keyframes", "--detectors", "TA,TB",
               "--quiet"])
    assert rc == 0 and "Weak evidence that the video is camera-made" in capsys.readouterr().out
    doc = json.loads((tmp_path / "o" / "video.json").read_text())
    assert doc["sampling"].startswith("keyframes") and doc["detectors"] == ["TA:original", "TB:original"]
    assert (doc["assessment"]["level"], doc["assessment"]["direction"]) == ("weak", "real")


def test_cli_profile_applies_where_it_matches(clips, two_fake, tmp_path, capsys):
    sha = create_detector("TA").weights_sha256
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    fit_profile(y, [ScoreColumn("TA:original", 3.0 * (2 * y - 1) + rng.normal(0, 2, 200), sha, "TA", "original")]
                ).save(tmp_path / "p.json")
    rc = main(["video", str(clips["none"]), "--out", str(tmp_path / "o"), "--detectors", "TA,TB", "--fps", "2",
               "--profile", str(tmp_path / "p.json"), "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0 and "TB:original: calibration not applied: the profile has no calibration for TB:original" in out
    doc = json.loads((tmp_path / "o" / "video.json").read_text())
    raw = 1 / (1 + math.exp(-3.0))
    ta = {round(f["scores"]["TA:original"], 6) for f in doc["frames"]}
    assert len(ta) == 1 and not math.isclose(ta.pop(), raw, rel_tol=1e-3)            # TA calibrated
    assert all(math.isclose(f["scores"]["TB:original"], raw, rel_tol=1e-5) for f in doc["frames"])   # TB not
    voices = {v["detector_id"]: v["calibrated"] for v in doc["assessment"]["voices"]}
    assert voices == {"TA": True, "TB": False} and doc["assessment"]["p_fake"] is not None
    assert main(["video", str(clips["none"]), "--out", str(tmp_path / "o2"), "--profile",
                 str(tmp_path / "missing.json"), "--quiet"]) == 2


def test_cli_fast_uses_bf16_only_where_validated(clips, tiny_config, weights_home, tmp_path, capsys):
    install_tiny_detectors(tiny_config, weights_home, {"TA": (1.0, 3.0), "TB": (1.0, 3.0)})
    (tiny_config / "ta.yaml").write_text((tiny_config / "ta.yaml").read_text() + "options: {fast_bf16: true}\n")
    rc = main(["video", str(clips["none"]), "--out", str(tmp_path / "o"), "--detectors", "TA,TB", "--fast",
               "--quiet"])
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "o" / "video.json").read_text())
    assert doc["precision"] == {"TA:original": "bf16", "TB:original": "fp32"}


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


def test_a_broken_file_says_how_many_frames_were_read(tmp_path, weights_home, capsys):
    data = write_video(tmp_path / "full.mkv", no_face(), n=30).read_bytes()
    (tmp_path / "t.mkv").write_bytes(data[: len(data) * 6 // 10])
    rc = main(["video", str(tmp_path / "t.mkv"), "--out", str(tmp_path / "o"), "--fps", "2", "--quiet"])
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "o" / "video.json").read_text())
    n = doc["reading"]["frames_read"]
    assert rc == 0 and 1 <= n < 6 and out.startswith(f"t.mkv: {n} frames, 0 face track(s)")
    assert doc["reading"]["stopped_early"].startswith("the frames end at")
    assert any(r.startswith(f"reading stopped early after {n} frames: the frames end at")
               for r in doc["assessment"]["reasons"])
