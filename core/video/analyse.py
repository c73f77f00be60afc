"""Analysing a video: faces (MTCNN + the FACE classifier when installed) and whole-frame detectors on sampled frames.

Frames are read one at a time and dropped after use; what is kept per frame is a small JPEG thumbnail and the
numbers, and per track the crop (and network input) of its most suspicious face, so memory stays bounded by the
frame limit and the number of tracks, never by the video's length.
"""
from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from core.convert import sigmoid
from core.errors import DeepfakeLensError
from core.models.detectors.base import Detector
from core.models.detectors.face import FaceCfg, FaceDetector, find_faces, prepare_face
from core.models.registry import get_spec
from core.models.selection import installed_variants
from core.verdict.assessment import Assessment
from core.verdict.calibration import Profile
from core.verdict.rules import Rules
from core.video.reader import ReadStats, VideoInfo, probe
from core.video.sampling import SamplingPlan, sample_frames, target_times
from core.video.tracks import Track, Tracker
from core.video.verdict import CAVEAT, FrameSeries, assess_video

THUMB_SIDE = 160          # long side of the per-frame thumbnails kept for the timeline and report
CROP_SIDE = 160           # side of the face thumbnails in the track gallery
MAX_CAM_TRACKS = 12       # Grad-CAM is computed for at most this many tracks (the most suspicious first)

Progress = Callable[[int, int, float], None]      # (frames done, frames planned, seconds elapsed)


@dataclass(frozen=True)
class FaceInFrame:
    """One face in one sampled frame."""

    box: tuple[float, float, float, float]
    detection_prob: float
    track: int
    p_fake: float                 # NaN without classifier weights


@dataclass
class FrameRecord:
    """The numbers kept for one sampled frame (no pixels but a small JPEG thumbnail)."""

    index: int
    t: float
    size: tuple[int, int]
    faces: list[FaceInFrame]
    scores: dict[str, float]      # whole-frame detector key -> P(fake)
    thumb_jpeg: bytes = field(repr=False, default=b"")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (the thumbnail is left out)."""
        return {"index": self.index, "t": self.t, "size": list(self.size),
                "faces": [{"box": [round(v, 1) for v in f.box], "detection_prob": f.detection_prob,
                           "track": f.track, "p_fake": _num(f.p_fake)} for f in self.faces],
                "scores": {k: _num(v) for k, v in self.scores.items()}}


@dataclass
class TrackSummary:
    """Per-track numbers and its most suspicious (or, unscored, most face-like) sighting."""

    id: int
    first_t: float
    last_t: float
    n_frames: int
    p_mean: float
    p_max: float
    share_above: float            # share of sightings with P(fake) above the threshold
    threshold: float
    best_frame: int
    best_t: float
    best_box: tuple[float, float, float, float]
    thumbnail: Image.Image = field(repr=False)
    p_fakes: tuple[float, ...] = ()   # each sighting's P(fake), in time order (NaN without classifier weights)
    heatmap: np.ndarray | None = field(default=None, repr=False)   # Grad-CAM over the crop, in [0, 1]

    @property
    def scored(self) -> bool:
        """True when the face classifier scored this track."""
        return math.isfinite(self.p_mean)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (images left out)."""
        return {"id": self.id, "first_t": self.first_t, "last_t": self.last_t, "n_frames": self.n_frames,
                "p_fake": {"mean": _num(self.p_mean), "max": _num(self.p_max),
                           "share_above": _num(self.share_above), "threshold": self.threshold},
                "most_suspicious": {"frame": self.best_frame, "t": self.best_t,
                                    "box": [round(v, 1) for v in self.best_box],
                                    "has_heatmap": self.heatmap is not None}}


@dataclass
class VideoAnalysis:
    """Everything the CLI, report and page show for one video."""

    info: VideoInfo
    plan: SamplingPlan
    stats: ReadStats
    frames: list[FrameRecord]
    tracks: list[TrackSummary]
    detectors: list[str]          # whole-frame detector keys
    face_classifier: str | None   # FACE key when its weights were installed, else None (boxes only)
    assessment: Assessment
    elapsed_s: float
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)
    precision: dict[str, str] = field(default_factory=dict)   # detector key -> "fp32" or "bf16" (fast mode)

    def to_dict(self) -> dict[str, Any]:
        """The ``video.json`` document."""
        return {"video": self.info.to_dict(), "sampling": self.plan.describe(),
                "reading": {"frames_read": self.stats.frames_read, "frames_decoded": self.stats.frames_decoded,
                            "decode_errors": self.stats.decode_errors, "stopped_early": self.stats.stopped or None,
                            "notes": self.stats.notes},
                "face_classifier": self.face_classifier, "detectors": self.detectors, "precision": self.precision,
                "caveat": CAVEAT if self.detectors else None, "cancelled": self.cancelled,
                "elapsed_s": round(self.elapsed_s, 3), "notes": self.notes,
                "frames": [f.to_dict() for f in self.frames], "tracks": [t.to_dict() for t in self.tracks],
                "assessment": self.assessment.to_dict()}


def _num(v: float) -> float | None:
    return round(float(v), 6) if v is not None and math.isfinite(v) else None


def _jpeg(img: Image.Image, side: int) -> bytes:
    small = img.copy()
    small.thumbnail((side, side), Image.BILINEAR)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


@dataclass
class _Best:
    """The kept sighting of one track: its crop thumbnail and (scored tracks) the classifier input."""

    key: float
    frame: int
    t: float
    box: tuple[float, float, float, float]
    crop: Image.Image
    tensor: torch.Tensor | None


class _Calibration:
    """A calibration profile applied to single scores (each detector's raw logit → calibrated P(fake))."""

    def __init__(self, profile: Profile | None) -> None:
        self.profile = profile
        self.notes: dict[str, str] = {}
        self.applied: set[str] = set()

    def p(self, det: Detector, logit: float) -> float:
        """Calibrated P(fake) when the profile applies to this detector's weights, else ``sigmoid(logit)``."""
        if self.profile is None or not math.isfinite(logit):
            return sigmoid(logit) if math.isfinite(logit) else float("nan")
        out, why = self.profile.calibrate_column(det.spec.key, np.array([logit]), det.weights_sha256)
        if out is None:
            self.notes.setdefault(det.spec.key, f"{det.spec.key}: calibration not applied: {why}.")
            return sigmoid(logit)
        self.applied.add(det.spec.key)
        return float(out[0])

    def threshold(self, det: Detector) -> float:
        """The profile's threshold for this detector when it applies, else the detector's own."""
        cal = self.profile.detectors.get(det.spec.key) if self.profile is not None else None
        applied = cal is not None and det.spec.key not in self.notes
        return float(cal.threshold) if applied else float(det.spec.threshold)


class _FaceStage:
    """MTCNN on each frame; the FACE classifier on each crop when its weights are installed."""

    def __init__(self, classifier: FaceDetector | None, max_gap_s: float, calibration: _Calibration) -> None:
        self.classifier = classifier
        self.calibration = calibration
        self.cfg = classifier.cfg if classifier is not None else FaceCfg.from_options(get_spec("FACE").options)
        self.tracker = Tracker(max_gap_s)
        self.best: dict[int, _Best] = {}

    def run(self, index: int, t: float, image: Image.Image) -> list[FaceInFrame]:
        faces = find_faces(image, cfg=self.cfg)
        prepared = [prepare_face(image, f, self.cfg) for f in faces]
        if self.classifier is not None:
            ps = [self.calibration.p(self.classifier, self.classifier.face_logit(pf.tensor)) for pf in prepared]
        else:
            ps = [float("nan")] * len(faces)
        ids = self.tracker.update(index, t, [f.box for f in faces], ps)
        out = []
        for f, pf, p, tid in zip(faces, prepared, ps, ids):
            key = p if math.isfinite(p) else f.detection_prob
            if tid not in self.best or key > self.best[tid].key:
                crop = Image.fromarray(pf.crop.permute(1, 2, 0).clamp(0, 255).byte().numpy())
                self.best[tid] = _Best(key, index, t, f.box, crop.resize((CROP_SIDE, CROP_SIDE), Image.BILINEAR),
                                       pf.tensor if self.classifier is not None else None)
            out.append(FaceInFrame(box=f.box, detection_prob=f.detection_prob, track=tid, p_fake=p))
        return out

    def summaries(self, with_cam: bool) -> list[TrackSummary]:
        thr = self.calibration.threshold(self.classifier) if self.classifier is not None else 0.5
        out = [self._summary(tr, thr) for tr in self.tracker.tracks]
        if with_cam and self.classifier is not None and self.classifier.spec.explain_layer:
            for s in sorted(out, key=lambda s: -s.p_max)[:MAX_CAM_TRACKS]:
                s.heatmap = self.classifier.face_heatmap(self.best[s.id].tensor)
        return out

    def _summary(self, tr: Track, thr: float) -> TrackSummary:
        ps = np.array([o.p_fake for o in tr.obs], dtype=float)
        fin = ps[np.isfinite(ps)]
        b = self.best[tr.id]
        return TrackSummary(
            id=tr.id, first_t=tr.first_t, last_t=tr.last_t, n_frames=len(tr.obs),
            p_mean=float(fin.mean()) if fin.size else float("nan"),
            p_max=float(fin.max()) if fin.size else float("nan"),
            share_above=float((fin > thr).mean()) if fin.size else float("nan"), threshold=thr,
            best_frame=b.frame, best_t=b.t, best_box=b.box, thumbnail=b.crop, p_fakes=tuple(map(float, ps)))


def _score_frame(detectors: Sequence[Detector], image: Image.Image, notes: list[str],
                 calibration: _Calibration, series: dict[str, FrameSeries]) -> dict[str, float]:
    """Each whole-frame detector's (calibrated) P(fake) on one frame; its result joins its series."""
    scores: dict[str, float] = {}
    for det in detectors:
        try:
            result = det.predict(image)
            series.setdefault(det.spec.key, FrameSeries()).add(result)
            scores[det.spec.key] = calibration.p(det, float(result.logit))
        except DeepfakeLensError as exc:       # e.g. a frame too small for a full-resolution detector
            scores[det.spec.key] = float("nan")
            if len(notes) < 20:
                notes.append(str(exc))
    return scores


def analyse_video(path: str, *, plan: SamplingPlan | None = None, face: FaceDetector | None = None,
                  detectors: Sequence[Detector] = (), with_cam: bool = True, progress: Progress | None = None,
                  should_stop: Callable[[], bool] | None = None, profile: Profile | None = None,
                  rules: Rules | None = None) -> VideoAnalysis:
    """Sample a video's frames and run face tracking and the whole-frame detectors on them.

    Args:
        path: the video file.
        plan: how frames are sampled (default: 1 frame/s, at most 120 frames).
        face: the FACE detector with its weights (scores every face crop); None = MTCNN boxes and tracks only.
        detectors: whole-frame (AIGI) detectors to run on each sampled frame.
        with_cam: compute Grad-CAM of each scored track's most suspicious face.
        progress: called after each frame with (done, planned, elapsed seconds).
        should_stop: polled after each frame; True stops reading (the result says ``cancelled``).
        profile: a calibration profile; scores of the detectors (and weights) it was fitted on are calibrated.
        rules: the assessment's rules (default: configs/ensemble.yaml).

    Returns:
        A :class:`VideoAnalysis`; when the file breaks part-way it holds the frames that could be read.

    Raises:
        BadVideo: nothing could be read (empty, not a video, no video stream, over a limit).
    """
    t0 = time.perf_counter()
    plan = plan or SamplingPlan()
    info = probe(path)
    stats = ReadStats()
    planned = (len(target_times(info.duration_s, plan.fps, plan.frame_limit))
               if plan.mode == "fps" and info.duration_s else plan.frame_limit)
    interval = 1.0 / plan.fps if plan.mode == "fps" else max(1.0, (info.duration_s or 0) / plan.frame_limit)
    calibration = _Calibration(profile)
    stage = _FaceStage(face, max_gap_s=max(2.5 * interval, 1.0), calibration=calibration)
    frames: list[FrameRecord] = []
    notes: list[str] = []
    series: dict[str, FrameSeries] = {}
    cancelled = False
    for fr in sample_frames(path, info, plan, stats):
        faces = stage.run(fr.index, fr.t, fr.image)
        scores = _score_frame(detectors, fr.image, notes, calibration, series)
        frames.append(FrameRecord(index=fr.index, t=fr.t, size=fr.image.size, faces=faces, scores=scores,
                                  thumb_jpeg=_jpeg(fr.image, THUMB_SIDE)))
        if progress is not None:
            progress(len(frames), max(planned, len(frames)), time.perf_counter() - t0)
        if should_stop is not None and should_stop():
            cancelled = True
            break
    tracks = stage.summaries(with_cam)
    notes = list(calibration.notes.values()) + notes
    keys = [d.spec.key for d in detectors]
    summaries = [r for r in (series[k].summary() for k in keys if k in series) if r is not None]
    assessment = assess_video(
        n_frames=len(frames), tracks=tracks, frame_results=summaries, face_scored=face is not None, stats=stats,
        cancelled=cancelled, face_calibrated=face is not None and face.spec.key in calibration.applied,
        frame_size=frames[0].size if frames else None, rules=rules, profile=profile)
    return VideoAnalysis(info=info, plan=plan, stats=stats, frames=frames, tracks=tracks, detectors=keys,
                         face_classifier=face.spec.key if face is not None else None, assessment=assessment,
                         elapsed_s=time.perf_counter() - t0, cancelled=cancelled, notes=notes,
                         precision={d.spec.key: d.precision for d in [*([face] if face else []), *detectors]})


def split_detectors(detectors: Sequence[Detector]) -> tuple[FaceDetector | None, list[Detector]]:
    """Separate the face classifier (scores face crops) from the whole-frame detectors."""
    faces = [d for d in detectors if isinstance(d, FaceDetector)]
    return (faces[0] if faces else None), [d for d in detectors if not isinstance(d, FaceDetector)]


def default_detector_keys() -> list[str]:
    """The installed variant of every detector (FACE included when its weights are installed)."""
    return [s.key for s in installed_variants()]


__all__ = [
    "CAVEAT",
    "FaceInFrame",
    "FrameRecord",
    "TrackSummary",
    "VideoAnalysis",
    "analyse_video",
    "default_detector_keys",
    "split_detectors",
]
