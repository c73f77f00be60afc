"""The video's graded assessment (core.video.verdict over core.verdict's rules): pure logic, no video decoding."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pytest

from core.results import DetectionResult
from core.verdict.assessment import Assessment
from core.verdict.rules import load_rules
from core.video.verdict import FACE_CAP, MIN_FRAMES, FrameSeries, assess_video

RULES = dataclasses.replace(load_rules(), weights={"A": 1.0, "B": 1.0, "C": 1.0})


@dataclass
class _T:
    id: int
    p_fakes: tuple[float, ...]
    threshold: float = 0.5

    @property
    def n_frames(self) -> int:
        return len(self.p_fakes)


@dataclass
class _S:
    frames_read: int = 10
    stopped: str = ""
    decode_errors: int = 0


def _r(det: str, logit: float, size=(320, 240)) -> DetectionResult:
    p = 1 / (1 + math.exp(-logit))
    return DetectionResult(det, "v", logit, p, "fake" if p > 0.5 else "real", 0.5, 0.01, size, size, None, False,
                           "full frame", weights_sha256="0" * 64)


def _assess(tracks=(), frames=(), n=10, face=True, **kw) -> Assessment:
    return assess_video(n_frames=n, tracks=list(tracks), frame_results=list(frames), face_scored=face,
                        stats=kw.pop("stats", _S()), rules=RULES, **kw)


@pytest.mark.parametrize("ps,level,direction", [
    ((0.95,) * 10, FACE_CAP, "fake"),                   # unanimous, 10 sightings: one classifier caps it
    ((0.95,) * 3, "weak", "fake"),                      # 3 votes: strong and moderate need 5 voting sightings
    ((0.9,) * 8 + (0.1,) * 2, "moderate", "fake"),      # 80 % agree
    ((0.9,) * 7 + (0.1,) * 3, "weak", "fake"),          # 70 % agree
    ((0.9,) * 6 + (0.1,) * 4, "inconclusive", None),    # 60 %: below the weakest level's 65 %
    ((0.1,) * 10, "moderate", "real"),
])
def test_face_track_sightings_vote(ps, level, direction):
    a = _assess([_T(0, ps)])
    assert (a.level, a.direction) == (level, direction), a.reasons
    assert a.reasons[0].startswith("face track 0:") and a.p_fake is None      # uncalibrated: no probability
    if direction == "real":
        assert a.headline == "Moderate evidence that the video is camera-made"
    capped = any("one face classifier" in r for r in a.reasons)
    assert capped == (ps in ((0.95,) * 10, (0.1,) * 10))          # unanimous over 10: strong, capped


def test_unconfident_sightings_do_not_vote():
    a = _assess([_T(0, (0.55, 0.45, 0.52) * 4)])
    assert a.level == "inconclusive" and "too few to judge" in a.reasons[0]
    assert a.headline.startswith("Inconclusive: face track 0")


def test_the_most_suspicious_track_decides_and_an_unjudged_track_blocks_real():
    a = _assess([_T(0, (0.1,) * 10), _T(1, (0.9,) * 8 + (0.1,) * 2)])
    assert (a.level, a.direction) == ("moderate", "fake") and a.reasons[0].startswith("face track 1")
    b = _assess([_T(0, (0.1,) * 10), _T(1, (0.5,) * 10)])
    assert b.level == "inconclusive" and any("cannot be called camera-made" in r for r in b.reasons)


def test_calibrated_faces_give_a_probability_and_abstain_in_the_band():
    a = _assess([_T(0, (0.9,) * 10)], face_calibrated=True)
    assert (a.level, a.direction, a.p_fake) == ("moderate", "fake", pytest.approx(0.9))
    low = _assess([_T(0, (0.62,) * 10)], face_calibrated=True)      # votes agree, but P(fake) 0.62 < weak's 0.65
    assert low.level == "inconclusive"


def test_whole_frames_are_graded_by_the_image_rule_and_capped_weak():
    both = _assess(frames=[_r("A", 4.0), _r("B", 3.0)], face=False)
    assert (both.level, both.direction) == ("weak", "fake")          # the image rule says moderate (2 of 2)
    assert any("compressed video frames are weak evidence" in r for r in both.reasons)
    assert [v.detector_id for v in both.voices] == ["A", "B"]
    one = _assess(frames=[_r("A", 4.0)], face=False)
    assert one.level == "inconclusive" and any("only 1 detector" in r for r in one.reasons)
    split = _assess(frames=[_r("A", 4.0), _r("B", -4.0)], face=False)
    assert split.level == "inconclusive"
    tiny = _assess(frames=[_r("A", 4.0, (40, 30)), _r("B", 4.0, (40, 30))], face=False, frame_size=(40, 30))
    assert tiny.level == "inconclusive" and any("too small" in r for r in tiny.reasons)


def test_faces_decide_and_fake_frames_cap_a_real_face_call():
    fake_face = _assess([_T(0, (0.95,) * 10)], frames=[_r("A", -4.0), _r("B", -4.0)])
    assert (fake_face.level, fake_face.direction) == (FACE_CAP, "fake")      # AIGI detectors miss face swaps
    real_face = _assess([_T(0, (0.1,) * 10)], frames=[_r("A", 4.0), _r("B", 4.0)])
    assert (real_face.level, real_face.direction) == ("weak", "real")
    assert any("lean AI-generated while the faces look camera-made" in r for r in real_face.reasons)
    unscored = _assess([_T(0, (math.nan,) * 10)], frames=[_r("A", 4.0), _r("B", 4.0)], face=False)
    assert (unscored.level, unscored.direction) == ("weak", "fake")
    assert any("weights are not installed" in r for r in unscored.reasons)


def test_inconclusive_without_frames_or_anything_to_score():
    few = _assess([_T(0, (0.9,) * 2)], n=MIN_FRAMES - 1, stats=_S(2, "the file broke off"))
    assert few.level == "inconclusive" and few.direction is None
    assert few.reasons[0] == f"only {MIN_FRAMES - 1} frames could be analysed (at least {MIN_FRAMES} needed)"
    assert any("broke off" in r for r in few.reasons)
    nothing = _assess([], face=False)
    assert nothing.level == "inconclusive" and nothing.reasons[0] == "no face was found in any sampled frame"
    assert nothing.headline == "Inconclusive: no face was found in any sampled frame"
    no_face = _assess([], face=True)
    assert no_face.level == "inconclusive" and "no face was found in any sampled frame" in no_face.reasons


def test_contract_keys():
    d = _assess([_T(0, (0.95,) * 10)]).to_dict()
    assert list(d)[:4] == ["level", "direction", "p_fake", "reasons"] and d["rule"] == "graded"


def test_frame_series_median_over_scored_frames():
    s = FrameSeries()
    assert s.summary() is None
    for z in (1.0, 5.0, -2.0, math.nan):
        s.add(_r("A", z) if math.isfinite(z) else dataclasses.replace(_r("A", 0.0), logit=z, p_fake=z))
    r = s.summary()
    assert r.logit == 1.0 and r.label == "fake" and r.details["frames"] == 3 and r.image_size == (320, 240)
