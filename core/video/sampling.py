"""Which frames to analyse: a fixed rate (default 1 frame/s) or keyframes, never more than a frame limit."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from core import settings
from core.video.reader import FrameReader, ReadStats, SampledFrame, VideoInfo

DEFAULT_FPS = 1.0
DEFAULT_MAX_FRAMES = 120
# Without a duration in the header, times are laid out up to this many seconds and reading stops at the file's end.
_UNKNOWN_DURATION_S = 3600.0


@dataclass(frozen=True)
class SamplingPlan:
    """How frames are chosen.

    Attributes:
        mode: ``"fps"`` (``fps`` frames per second of video) or ``"keyframes"`` (the codec's keyframes only).
        fps: sampling rate for ``"fps"``.
        max_frames: most frames analysed (lowered to ``settings.max_video_frames()``).
    """

    mode: str = "fps"
    fps: float = DEFAULT_FPS
    max_frames: int = DEFAULT_MAX_FRAMES

    def __post_init__(self) -> None:
        if self.mode not in ("fps", "keyframes"):
            raise ValueError(f"sampling mode must be 'fps' or 'keyframes', got {self.mode!r}")
        if not self.fps > 0:
            raise ValueError("the sampling rate must be a positive number of frames per second")
        if self.max_frames < 1:
            raise ValueError("the frame limit must be at least 1")

    @property
    def frame_limit(self) -> int:
        """``max_frames`` capped by the settings limit."""
        return max(1, min(self.max_frames, settings.max_video_frames()))

    def describe(self) -> str:
        """One line for reports."""
        how = "keyframes" if self.mode == "keyframes" else f"{self.fps:g} frame/s"
        return f"{how}, at most {self.frame_limit} frames"


def target_times(duration_s: float | None, fps: float, max_frames: int) -> list[float]:
    """Sample times (seconds): every ``1/fps`` from 0 within the duration, spread evenly when over the limit.

    Example:
        >>> target_times(3.0, 2.0, 100)
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    """
    duration = duration_s if duration_s and duration_s > 0 else _UNKNOWN_DURATION_S
    step = 1.0 / fps
    n = max(1, int(duration * fps - 1e-9) + 1)
    if n <= max_frames or not duration_s:
        return [round(i * step, 6) for i in range(min(n, max_frames))]
    # More samples than allowed: cover the whole video evenly instead of only its beginning.
    return [round(i * duration / max_frames, 6) for i in range(max_frames)]


def sample_frames(path: str, info: VideoInfo, plan: SamplingPlan, stats: ReadStats) -> Iterator[SampledFrame]:
    """Yield the planned frames one at a time (the caller keeps what it needs, never every frame).

    Args:
        path: the video file.
        info: its :func:`~core.video.reader.probe` result.
        plan: the sampling plan.
        stats: filled with counts and the reason reading stopped early, if it did.
    """
    reader = FrameReader(path, info, stats)
    limit = plan.frame_limit
    if plan.mode == "keyframes":
        gap = (info.duration_s / limit) if info.duration_s else 0.0
        yield from reader.keyframes(min_gap_s=gap * 0.999, max_frames=limit)
    else:
        yield from reader.at_times(target_times(info.duration_s, plan.fps, limit))


__all__ = ["DEFAULT_FPS", "DEFAULT_MAX_FRAMES", "SamplingPlan", "sample_frames", "target_times"]
