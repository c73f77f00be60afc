"""Face-track linking and the video-level assessment rules (pure logic, no video decoding)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from core.video.tracks import Tracker, iou
from core.video.verdict import MIN_FRAMES, assess_video


def _box(x: float, y: float = 50.0, s: float = 40.0):
    return (x, y, x + s, y + s)


def test_iou():
    assert iou(_box(0), _box(0)) == 1.0
    assert iou(_box(0), _box(100)) == 0.0
    assert iou(_box(0), _box(20)) == pytest.approx(800 / 2400)


def test_fast_pan_without_overlap_stays_one_track():
    tr = Tracker(max_gap_s=1.5)
    for k in range(8):                                    # 50 px per sample, faces 40 px: consecutive IoU is 0
        assert tr.update(k, k * 0.5, [_box(10 + 50 * k)]) == [0]
    assert len(tr.tracks) == 1 and len(tr.tracks[0].obs) == 8


def test_two_faces_keep_their_ids_when_listed_in_any_order():
    tr = Tracker(max_gap_s=1.5)
    tr.update(0, 0.0, [_box(10), _box(150)])
    assert tr.update(1, 0.5, [_box(160), _box(20)]) == [1, 0]
    assert tr.update(2, 1.0, [_box(30)]) == [0]           # one face missing for a frame: no new track


def test_gap_and_jump_start_new_tracks():
    tr = Tracker(max_gap_s=1.0)
    tr.update(0, 0.0, [_box(10)])
    assert tr.update(1, 2.0, [_box(12)]) == [1]           # left and came back after the gap: a new track
    assert tr.update(2, 2.5, [_box(250)]) == [2]          # far away at once (a cut): a new track
    assert tr.update(3, 3.0, [_box(250, s=200)]) == [3]   # five times larger at the same place: a new track


@dataclass
class _T:
    id: int
    n_frames: int
    p_mean: float
    p_max: float
    share_above: float
    threshold: float = 0.5


@dataclass
class _S:
    frames_read: int = 10
    stopped: str = ""


FRAMES = [(i * 1.0, {}) for i in range(10)]


@pytest.mark.parametrize("track,level,direction", [
    (_T(0, 10, 0.9, 0.97, 0.9), "strong", "fake"),
    (_T(0, 3, 0.9, 0.97, 1.0), "moderate", "fake"),      # too few frames for strong
    (_T(0, 10, 0.6, 0.9, 0.6), "moderate", "fake"),
    (_T(0, 10, 0.3, 0.8, 0.2), "weak", "fake"),
    (_T(0, 10, 0.1, 0.3, 0.0), "moderate", "real"),
    (_T(0, 10, 0.35, 0.45, 0.0), "weak", "real"),
])
def test_face_rules(track, level, direction):
    a = assess_video(frames=FRAMES, tracks=[track], detectors=[], face_scored=True, stats=_S())
    assert (a.level, a.direction) == (level, direction) and a.reasons


def test_most_suspicious_track_decides():
    tracks = [_T(0, 10, 0.1, 0.2, 0.0), _T(1, 10, 0.85, 0.95, 0.8)]
    a = assess_video(frames=FRAMES, tracks=tracks, detectors=[], face_scored=True, stats=_S())
    assert (a.level, a.direction) == ("strong", "fake") and "face track 1" in a.reasons[0]


def test_inconclusive_cases():
    few = assess_video(frames=FRAMES[: MIN_FRAMES - 1], tracks=[_T(0, 2, 0.9, 0.9, 1.0)], detectors=[],
                       face_scored=True, stats=_S(2, "the file broke off"))
    assert few.level == "inconclusive" and any("broke off" in r for r in few.reasons)
    unscored = assess_video(frames=FRAMES, tracks=[_T(0, 10, math.nan, math.nan, math.nan)], detectors=[],
                            face_scored=False, stats=_S())
    assert unscored.level == "inconclusive" and unscored.headline == "Inconclusive"


def test_whole_frame_detectors_give_weak_evidence_at_most():
    frames = [(i * 1.0, {"A:x": 0.99, "B:y": 0.97}) for i in range(10)]
    a = assess_video(frames=frames, tracks=[], detectors=["A:x", "B:y"], face_scored=False, stats=_S())
    assert (a.level, a.direction) == ("weak", "fake") and any("weak evidence" in r for r in a.reasons)
    split = [(i * 1.0, {"A:x": 0.9, "B:y": 0.1}) for i in range(10)]
    assert assess_video(frames=split, tracks=[], detectors=["A:x", "B:y"], face_scored=False,
                        stats=_S()).level == "inconclusive"
