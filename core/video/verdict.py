"""The video-level graded assessment: strong / moderate / weak evidence, or inconclusive, with a direction and reasons.

Same vocabulary as the image assessment. Rules (face-swap evidence first, because the face classifier is the
detector made for videos of people; whole-frame detectors on compressed frames never give more than weak evidence):

* inconclusive: fewer than :data:`MIN_FRAMES` frames read, or nothing to score (no face scored and no detector);
* faces: the most suspicious scored track decides. Fake when its share of frames above the threshold is at least
  one half: strong when its mean P(fake) ≥ 0.8 over ≥ :data:`MIN_TRACK_FRAMES` frames, moderate otherwise; weak
  fake when only some frames exceed the threshold. Real when every scored track stays below the threshold in
  every frame: moderate with mean P(fake) ≤ 0.2 over enough frames, weak otherwise;
* whole frames (only when no face was scored): the median over frames of each detector; weak in the majority's
  direction, inconclusive on a tie.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Level = Literal["strong", "moderate", "weak", "inconclusive"]
Direction = Literal["fake", "real"] | None

MIN_FRAMES = 3                # fewer sampled frames than this: inconclusive
MIN_TRACK_FRAMES = 5          # a track needs this many sightings for strong / moderate evidence


class _Track(Protocol):
    id: int
    n_frames: int
    p_mean: float
    p_max: float
    share_above: float
    threshold: float


class _Stats(Protocol):
    frames_read: int
    stopped: str


@dataclass(frozen=True)
class VideoAssessment:
    """The headline of a video analysis."""

    level: Level
    direction: Direction
    p_fake: float | None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def headline(self) -> str:
        """One line, e.g. "Moderate evidence of a fake" or "Inconclusive"."""
        if self.level == "inconclusive" or self.direction is None:
            return "Inconclusive"
        return f"{self.level.capitalize()} evidence {'of a fake' if self.direction == 'fake' else 'that it is real'}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"level": self.level, "direction": self.direction,
                "p_fake": None if self.p_fake is None or not math.isfinite(self.p_fake) else round(self.p_fake, 6),
                "headline": self.headline, "reasons": list(self.reasons)}


def _faces(scored: Sequence[_Track]) -> VideoAssessment:
    worst = max(scored, key=lambda t: (t.share_above, t.p_mean))
    n, thr = worst.n_frames, worst.threshold
    desc = (f"face track {worst.id}: P(fake) mean {worst.p_mean:.2f}, max {worst.p_max:.2f}, "
            f"{worst.share_above:.0%} of {n} frames above {thr:g}")
    if worst.share_above >= 0.5:
        level: Level = "strong" if worst.p_mean >= 0.8 and n >= MIN_TRACK_FRAMES else "moderate"
        why = [desc] + ([] if n >= MIN_TRACK_FRAMES else [f"only {n} frames in that track"])
        return VideoAssessment(level, "fake", worst.p_mean, tuple(why))
    if worst.share_above > 0:
        return VideoAssessment("weak", "fake", worst.p_mean,
                               (desc, "only a minority of that track's frames look fake"))
    low = max(t.p_mean for t in scored)
    enough = all(t.n_frames >= MIN_TRACK_FRAMES for t in scored)
    level = "moderate" if low <= 0.2 and enough else "weak"
    why = [f"every face track stays below {thr:g} in every frame (highest track mean {low:.2f})"]
    if not enough:
        why.append(f"some tracks have fewer than {MIN_TRACK_FRAMES} frames")
    return VideoAssessment(level, "real", low, tuple(why))


def _whole_frames(frames: Sequence[tuple[float, Mapping[str, float]]], detectors: Sequence[str],
                  caveat: str) -> VideoAssessment:
    medians = {}
    for key in detectors:
        vals = [s[key] for _, s in frames if key in s and math.isfinite(s[key])]
        if vals:
            medians[key] = statistics.median(vals)
    if not medians:
        return VideoAssessment("inconclusive", None, None, ("no detector could score the frames",))
    fake = sum(m > 0.5 for m in medians.values())
    real = len(medians) - fake
    p = statistics.mean(medians.values())
    why = tuple(f"{k}: median P(fake) {m:.2f} over frames" for k, m in medians.items()) + (caveat,)
    if fake == real:
        return VideoAssessment("inconclusive", None, p, ("the detectors disagree",) + why)
    return VideoAssessment("weak", "fake" if fake > real else "real", p, why)


def assess_video(*, frames: Sequence[tuple[float, Mapping[str, float]]], tracks: Sequence[_Track],
                 detectors: Sequence[str], face_scored: bool, stats: _Stats, cancelled: bool = False,
                 ) -> VideoAssessment:
    """Grade the evidence of one video analysis (see the module docstring for the rules).

    Args:
        frames: (t, {detector key: P(fake)}) per sampled frame.
        tracks: face-track summaries (``p_mean`` NaN when unscored).
        detectors: whole-frame detector keys that ran.
        face_scored: True when the face classifier's weights were installed.
        stats: reading statistics (frames read, why reading stopped early).
        cancelled: the user stopped the analysis.
    """
    notes: list[str] = []
    if stats.stopped:
        notes.append(f"reading stopped early after {stats.frames_read} frames: {stats.stopped}")
    if cancelled:
        notes.append(f"analysis cancelled after {len(frames)} frames")
    if len(frames) < MIN_FRAMES:
        return VideoAssessment("inconclusive", None, None,
                               (f"only {len(frames)} frame(s) could be analysed (at least {MIN_FRAMES} needed)",)
                               + tuple(notes))
    scored = [t for t in tracks if math.isfinite(t.p_mean)]
    if scored:
        a = _faces(scored)
        return VideoAssessment(a.level, a.direction, a.p_fake, a.reasons + tuple(notes))
    if not tracks:
        notes.insert(0, "no face was found in any sampled frame")
    elif not face_scored:
        notes.insert(0, f"{len(tracks)} face track(s) found, but the FACE classifier's weights are not installed")
    if detectors:
        from_frames = _whole_frames(frames, detectors, "whole-frame scores on video frames are weak evidence")
        return VideoAssessment(from_frames.level, from_frames.direction, from_frames.p_fake,
                               tuple(notes) + from_frames.reasons)
    return VideoAssessment("inconclusive", None, None, tuple(notes) + ("no detector ran on the frames",))


__all__ = ["MIN_FRAMES", "MIN_TRACK_FRAMES", "VideoAssessment", "assess_video"]
