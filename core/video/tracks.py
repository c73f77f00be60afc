"""Linking the faces of sampled frames into face tracks (position and time).

A face joins the live track whose predicted box it overlaps best (IoU) or, failing that, whose predicted centre is
close relative to the face's size; a track not seen for longer than ``max_gap_s`` ends, so a face that leaves and
comes back later starts a new track. Prediction is constant velocity from the track's last two boxes, which keeps a
panned face in one track even when consecutive boxes do not overlap at a low sampling rate.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

Box = tuple[float, float, float, float]

MIN_IOU = 0.3                 # overlap that links a face to a track outright
MAX_CENTRE_DIST = 1.5         # else: centre distance / face size below this links
MAX_SIZE_RATIO = 2.0          # and the two faces' sizes differ by at most this factor


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _size(b: Box) -> float:
    return math.sqrt(max(1e-6, (b[2] - b[0]) * (b[3] - b[1])))


def _centre(b: Box) -> tuple[float, float]:
    return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)


@dataclass
class Observation:
    """One face in one sampled frame."""

    frame: int                    # sampled-frame index
    t: float
    box: Box
    face: int                     # index of the face within its frame
    p_fake: float = float("nan")  # face classifier's P(fake) (NaN without weights)


@dataclass
class Track:
    """A face followed through time."""

    id: int
    obs: list[Observation] = field(default_factory=list)

    @property
    def first_t(self) -> float:
        """Time of the first sighting."""
        return self.obs[0].t

    @property
    def last_t(self) -> float:
        """Time of the last sighting."""
        return self.obs[-1].t

    def predict(self, t: float) -> Box:
        """The box expected at ``t`` (constant velocity from the last two sightings)."""
        last = self.obs[-1].box
        if len(self.obs) < 2 or self.obs[-1].t <= self.obs[-2].t:
            return last
        prev = self.obs[-2]
        k = (t - self.obs[-1].t) / (self.obs[-1].t - prev.t)
        return tuple(l + k * (l - p) for l, p in zip(last, prev.box))  # type: ignore[return-value]


def _match_cost(track: Track, box: Box, t: float) -> float | None:
    pred = track.predict(t)
    overlap = iou(pred, box)
    if overlap >= MIN_IOU:
        return 1.0 - overlap                      # in [0, 0.7]: overlaps are preferred to distances
    s_pred, s_box = _size(pred), _size(box)
    if max(s_pred, s_box) / min(s_pred, s_box) > MAX_SIZE_RATIO:
        return None
    (cx, cy), (px, py) = _centre(box), _centre(pred)
    dist = math.hypot(cx - px, cy - py) / max(s_pred, s_box)
    return 1.0 + dist if dist <= MAX_CENTRE_DIST else None


class Tracker:
    """Incremental tracker: feed each sampled frame's face boxes in time order.

    Args:
        max_gap_s: a track not seen for longer than this ends.
    """

    def __init__(self, max_gap_s: float) -> None:
        self.max_gap_s = max_gap_s
        self.tracks: list[Track] = []

    def update(self, frame: int, t: float, boxes: Sequence[Box],
               p_fakes: Sequence[float] | None = None) -> list[int]:
        """Link one frame's faces; returns the track id given to each face (in ``boxes`` order)."""
        live = [tr for tr in self.tracks if t - tr.last_t <= self.max_gap_s + 1e-9 and tr.obs[-1].frame != frame]
        pairs = sorted((c, ti, fi) for ti, tr in enumerate(live) for fi, b in enumerate(boxes)
                       if (c := _match_cost(tr, b, t)) is not None)
        ids: list[int | None] = [None] * len(boxes)
        used: set[int] = set()
        for _, ti, fi in pairs:                   # greedy on cost: good enough for a handful of faces per frame
            if ti in used or ids[fi] is not None:
                continue
            used.add(ti)
            ids[fi] = live[ti].id
        out: list[int] = []
        for fi, b in enumerate(boxes):
            tid = ids[fi]
            if tid is None:
                tid = len(self.tracks)
                self.tracks.append(Track(id=tid))
            p = float(p_fakes[fi]) if p_fakes is not None else float("nan")
            self.tracks[tid].obs.append(Observation(frame=frame, t=t, box=tuple(map(float, b)), face=fi, p_fake=p))
            out.append(tid)
        return out


__all__ = ["Box", "Observation", "Track", "Tracker", "iou"]
