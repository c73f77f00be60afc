"""Face-track linking (pure logic, no video decoding)."""
from __future__ import annotations

import pytest

from core.video.tracks import Tracker, iou


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
