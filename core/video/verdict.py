"""The video's graded assessment, built with :mod:`core.verdict` over its face tracks and its whole frames.

The same vocabulary and the same :class:`~core.verdict.assessment.Assessment` as an image — a level (``strong``,
``moderate``, ``weak`` evidence, or ``inconclusive``), a direction (``fake`` = AI-generated or manipulated, ``real``
= camera-made) and the reasons — and the same rules (configs/ensemble.yaml, :func:`~core.verdict.rules.load_rules`):

* **inconclusive** when fewer than :data:`MIN_FRAMES` sampled frames were analysed, or when nothing scored them (no
  face scored and no whole-frame detector);
* **whole frames**: each whole-frame detector's frames are summarised as one result for the video (the median of its
  logits over the frames) and graded by the image rule, :func:`~core.verdict.assessment.assess` (enough detectors
  scoring and voting, their agreement, disagreement, frame size, a calibration profile where it applies). The level
  is then capped at :data:`FRAME_CAP`: image detectors on compressed video frames are weak evidence;
* **face tracks**: the face classifier never votes in the image rule (it scores crops, not the image). Here each
  scored sighting of a track votes like a detector does — when its confidence in its own verdict exceeds
  ``vote_threshold`` — and the track's agreement picks the level from ``levels`` (``strong`` and ``moderate`` also
  need :data:`MIN_TRACK_FRAMES` voting sightings). A calibration profile applied to the face classifier gives a
  P(fake), which abstains inside ``uncertain_band`` and caps by ``min_p``. One face classifier is one detector, so
  the face evidence is capped at :data:`FACE_CAP` (the image rule wants three detectors for strong evidence). The
  video leans fake when any judged track does (the most suspicious one decides), real only when every judged track
  does (the weakest decides);
* **together**: face evidence, when it has a direction, decides; whole-frame detectors that lean fake while the faces
  look camera-made cap it at ``weak`` (a fully generated video can hold natural-looking faces); whole frames decide
  when no face could be judged.

Pure functions; no torch, no streamlit.
"""
from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.convert import sigmoid
from core.results import DetectionResult
from core.verdict.abstention import ForensicFacts
from core.verdict.assessment import Assessment, assess, headline
from core.verdict.calibration import Profile
from core.verdict.rules import LEVELS, Rules, load_rules

MIN_FRAMES = 3                # fewer sampled frames analysed than this: inconclusive
MIN_TRACK_FRAMES = 5          # voting sightings a track needs for strong or moderate evidence
FRAME_CAP = "weak"            # the most whole-frame detectors can say about a video
FACE_CAP = "moderate"         # the most one face classifier can say
CAVEAT = ("Whole-frame detectors were trained on still images; on compressed video frames their scores are weak "
          "evidence (codec artefacts are not generator artefacts).")


class TrackLike(Protocol):
    """What the verdict reads of a face track (:class:`core.video.analyse.TrackSummary`)."""

    id: int
    n_frames: int
    threshold: float
    p_fakes: tuple[float, ...]    # P(fake) of each sighting (calibrated when ``calibrated``); NaN = unscored


class StatsLike(Protocol):
    """What the verdict reads of the reading statistics (:class:`core.video.reader.ReadStats`)."""

    frames_read: int
    decode_errors: int
    stopped: str


class FrameSeries:
    """One whole-frame detector's results over the sampled frames, summarised as one result for the video."""

    def __init__(self) -> None:
        self.first: DetectionResult | None = None
        self.logits: list[float] = []

    def add(self, result: DetectionResult) -> None:
        """Keep the logit of a scored frame (and the first scored result, whose fields the summary reuses)."""
        if result.ok and math.isfinite(result.logit):
            self.first = self.first or result
            self.logits.append(float(result.logit))

    def summary(self) -> DetectionResult | None:
        """The median logit over the frames as a :class:`DetectionResult` (None when no frame was scored)."""
        if self.first is None:
            return None
        z = float(statistics.median(self.logits))
        p = float(sigmoid(z))
        return dataclasses.replace(
            self.first, logit=z, p_fake=p, label="fake" if p > self.first.threshold else "real",
            details={"frames": len(self.logits), "summary": "median logit over the sampled frames"})


@dataclass(frozen=True)
class _Part:
    """The evidence of one kind (faces or whole frames)."""

    level: str
    direction: str | None
    reasons: tuple[str, ...]
    p_fake: float | None = None
    fused_by: str = ""


def _lower(level: str, cap: str) -> str:
    return level if LEVELS.index(level) <= LEVELS.index(cap) else cap


# --------------------------------------------------------------------------------------------- face tracks

def _grade_track(tr: TrackLike, rules: Rules, calibrated: bool) -> _Part:
    """One track's sightings voting like detectors, graded by the rules' levels."""
    ps = [p for p in tr.p_fakes if math.isfinite(p)]
    votes = ["fake" if p > tr.threshold else "real" for p in ps
             if (p if p > tr.threshold else 1.0 - p) > rules.vote_threshold]
    n_fake = votes.count("fake")
    n_real = len(votes) - n_fake
    what = (f"face track {tr.id}: {len(votes)} of {len(ps)} sightings confident enough to vote, {n_fake} fake, "
            f"{n_real} real")
    weakest = rules.levels[next(reversed(rules.levels))]
    if len(votes) < weakest.min_voters or n_fake == n_real:
        why = "too few to judge" if len(votes) < weakest.min_voters else "split evenly"
        return _Part("inconclusive", None, (f"{what}: {why}",))
    direction = "fake" if n_fake > n_real else "real"
    agreement = max(n_fake, n_real) / len(votes)
    level = next((name for name, lv in rules.levels.items()
                  if len(votes) >= (lv.min_voters if lv is weakest else max(lv.min_voters, MIN_TRACK_FRAMES))
                  and agreement >= lv.min_agreement - 1e-9), "inconclusive")
    reasons = [f"{what} ({agreement:.0%} agree)"]
    p = statistics.mean(ps) if calibrated else None
    if p is not None:
        lo, hi = rules.uncertain_band
        if lo <= p <= hi:
            level = "inconclusive"
            reasons.append(f"its mean calibrated P(fake) {p:.2f} is inside the uncertain band [{lo:.2f}, {hi:.2f}]")
        elif ("fake" if p > 0.5 else "real") != direction:
            level = "inconclusive"
            reasons.append(f"its mean calibrated P(fake) {p:.2f} points the other way from its sightings")
        else:
            p_level = next((n for n, lv in rules.levels.items() if max(p, 1 - p) >= lv.min_p - 1e-12),
                           "inconclusive")
            if LEVELS.index(p_level) < LEVELS.index(level):
                level = p_level
                reasons.append(f"its mean calibrated P(fake) is {p:.2f}")
    fused_by = "mean calibrated P(fake) of a face track" if p is not None else ""
    if level == "inconclusive":
        return _Part("inconclusive", None, tuple(reasons), p, fused_by)
    return _Part(level, direction, tuple(reasons), p, fused_by)


def _faces(tracks: Sequence[TrackLike], rules: Rules, calibrated: bool) -> _Part | None:
    """The face evidence over every scored track (None when no track was scored)."""
    scored = [t for t in tracks if any(math.isfinite(p) for p in t.p_fakes)]
    if not scored:
        return None
    graded = [(t, _grade_track(t, rules, calibrated)) for t in scored]
    fakes = [g for _, g in graded if g.direction == "fake"]
    judged = [g for _, g in graded if g.direction is not None]
    rank = LEVELS.index
    if fakes:
        part = max(fakes, key=lambda g: rank(g.level))
    elif judged and len(judged) == len(graded):
        part = min(judged, key=lambda g: rank(g.level))
    else:
        why = ("no face track could be judged" if not judged else
               "some face tracks could not be judged, so the faces cannot be called camera-made")
        return _Part("inconclusive", None, tuple(r for _, g in graded for r in g.reasons) + (why,))
    others = tuple(r for _, g in graded if g is not part for r in g.reasons)
    level = _lower(part.level, FACE_CAP)
    cap = () if level == part.level else (
        (f"one face classifier scored the faces: {FACE_CAP} evidence at most (the image rules want "
        f"{rules.levels['strong'].min_voters} detectors for strong evidence)"),)
    return _Part(level, part.direction, part.reasons + others + cap, part.p_fake, part.fused_by)


# --------------------------------------------------------------------------------------------- whole frames

def _frames(results: Sequence[DetectionResult], rules: Rules, profile: Profile | None,
            frame_size: tuple[int, int] | None) -> tuple[_Part | None, Assessment | None]:
    """The image rule over the per-detector summaries, capped at :data:`FRAME_CAP`."""
    if not results:
        return None, None
    a = assess(results, rules=rules, profile=profile, facts=ForensicFacts(image_size=frame_size), rule="graded")
    level = _lower(a.level, FRAME_CAP)
    reasons = tuple(f"whole frames: {r}" for r in a.reasons)
    if level != a.level or a.level == FRAME_CAP:
        reasons += ((f"whole frames: {FRAME_CAP} evidence at most, because image detectors on compressed video "
                    "frames are weak evidence"),)
    return _Part(level, a.direction if level != "inconclusive" else None, reasons, a.p_fake, a.fused_by), a


def _combine(face: _Part | None, frames: _Part | None) -> _Part:
    """Faces decide when they have a direction; whole frames otherwise; frames leaning fake cap a real face call."""
    if face is not None and face.direction is not None:
        if frames is not None and frames.direction == "fake" and face.direction == "real":
            return _Part(_lower(face.level, "weak"), "real", face.reasons + frames.reasons + (
                "the whole-frame detectors lean AI-generated while the faces look camera-made: weak at most",),
                face.p_fake, face.fused_by)
        return dataclasses.replace(face, reasons=face.reasons + (frames.reasons if frames else ()))
    if frames is not None and frames.direction is not None:
        return dataclasses.replace(frames, reasons=frames.reasons + (face.reasons if face else ()))
    reasons = (face.reasons if face else ()) + (frames.reasons if frames else ())
    return _Part("inconclusive", None, reasons)


# --------------------------------------------------------------------------------------------- assess

def video_rules_text() -> str:
    """What the video adds to the image rules, in one paragraph (page legend, report)."""
    return (f"A video needs at least {MIN_FRAMES} analysed frames. Whole-frame detectors are graded by the image "
            f"rules over their median score and give {FRAME_CAP} evidence at most (image detectors on compressed "
            f"frames). Each confident sighting of a face track votes like a detector; strong or moderate evidence "
            f"needs {MIN_TRACK_FRAMES} voting sightings, and one face classifier gives {FACE_CAP} evidence at most.")


def video_headline(level: str, direction: str | None, first_reason: str = "") -> str:
    """The image headline's words, said of a video ("Weak evidence that the video is camera-made")."""
    if direction == "real" and level != "inconclusive":
        return f"{level.capitalize()} evidence that the video is camera-made"
    return headline(level, direction, first_reason)  # type: ignore[arg-type]


def _preconditions(n_frames: int, tracks: Sequence[TrackLike], face_scored: bool, n_detectors: int) -> list[str]:
    """Why there is nothing to grade (empty when there is something)."""
    if n_frames < MIN_FRAMES:
        return [(f"only {n_frames} frame{'s' if n_frames != 1 else ''} could be analysed (at least {MIN_FRAMES} "
                "needed)")]
    if not face_scored and not n_detectors:
        what = ("no face was found in any sampled frame" if not tracks else
                f"{len(tracks)} face track(s) found, but the FACE classifier's weights are not installed")
        return [what, "no detector scored the frames or the faces"]
    return []


def assess_video(*, n_frames: int, tracks: Sequence[TrackLike], frame_results: Sequence[DetectionResult],
                 face_scored: bool, stats: StatsLike, cancelled: bool = False, face_calibrated: bool = False,
                 frame_size: tuple[int, int] | None = None, rules: Rules | None = None,
                 profile: Profile | None = None) -> Assessment:
    """Grade the evidence of one video analysis (see the module docstring for the rules).

    Args:
        n_frames: sampled frames analysed.
        tracks: face-track summaries (each sighting's P(fake); NaN when the face classifier did not run).
        frame_results: one summary per whole-frame detector (:meth:`FrameSeries.summary`).
        face_scored: True when the face classifier ran.
        stats: reading statistics (frames read, why reading stopped early).
        cancelled: the user stopped the analysis.
        face_calibrated: the sightings' P(fake) are calibrated (a profile applied to the face classifier).
        frame_size: (W, H) of the decoded frames, for the image rule's size doubts.
        rules: the rules (default: configs/ensemble.yaml).
        profile: a calibration profile, applied to the whole-frame detectors it was fitted on.

    Returns:
        An :class:`~core.verdict.assessment.Assessment` (rule ``graded``); ``direction`` is None exactly when the
        level is inconclusive.
    """
    rules = rules or load_rules()
    notes: list[str] = []
    if stats.stopped:
        notes.append(f"reading stopped early after {stats.frames_read} frames: {stats.stopped}")
    if stats.decode_errors:
        notes.append(f"{stats.decode_errors} corrupt packet{'s' if stats.decode_errors != 1 else ''} skipped while "
                     "decoding")
    if cancelled:
        notes.append(f"analysis cancelled after {n_frames} frames")
    empty = _preconditions(n_frames, tracks, face_scored, len(frame_results))
    if empty:
        return Assessment("inconclusive", None, None, tuple(empty + notes), video_headline("inconclusive", None,
                                                                                           empty[0]), "graded")
    face = _faces(tracks, rules, face_calibrated)
    if face is None:
        face = _Part("inconclusive", None, ("no face was found in any sampled frame",) if not tracks else (
            f"{len(tracks)} face track(s) found, but the FACE classifier's weights are not installed",))
    frames, frame_assessment = _frames(frame_results, rules, profile, frame_size)
    part = _combine(face, frames)
    reasons = part.reasons + tuple(notes)
    first = part.reasons[0] if part.level == "inconclusive" and part.reasons else ""
    extra: dict[str, Any] = {}
    if frame_assessment is not None:
        extra = {"excluded": frame_assessment.excluded, "calibration": frame_assessment.calibration,
                 "voices": frame_assessment.voices}
    return Assessment(part.level, part.direction if part.level != "inconclusive" else None,  # type: ignore[arg-type]
                      part.p_fake, reasons, video_headline(part.level, part.direction, first), "graded",
                      fused_by=part.fused_by if part.p_fake is not None else "", **extra)


__all__ = ["CAVEAT", "FACE_CAP", "FRAME_CAP", "MIN_FRAMES", "MIN_TRACK_FRAMES", "FrameSeries", "assess_video",
           "video_headline", "video_rules_text"]
