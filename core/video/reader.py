"""Reading videos with PyAV: probe the header, then decode only the frames that are sampled.

Every untrusted-file failure ends in :class:`~core.errors.BadVideo` (one sentence) when nothing can be read, or in a
:class:`ReadStats` that says how many frames could be read when the file breaks part-way. Decoding is bounded in
wall time (``settings.video_decode_seconds``) and in frames decoded between two samples, so no file can hang a run.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
from PIL import Image

from core import settings
from core.errors import BadVideo

# Demuxers we accept (FFmpeg's names, split on ","): mp4/mov, Matroska/WebM, AVI and GIF. Anything else (FFmpeg
# also "opens" text files and still images) is refused with a sentence.
_FORMATS = {"mov", "mp4", "matroska", "webm", "avi", "gif"}
# Seek instead of decoding forward when the next sample is further than this many seconds ahead.
SEEK_GAP_S = 2.0
# Most frames decoded while looking for one sample (a file whose timestamps never reach the target stops here).
MAX_DECODE_PER_SAMPLE = 2_000
# Frames ending this many seconds before the header's duration count as a file that ended early.
END_SLACK_S = 1.0
# Corrupt packets tolerated before the rest of the file is given up on.
MAX_DECODE_ERRORS = 50


@dataclass(frozen=True)
class VideoInfo:
    """What the container header says (it may lie; decoding re-checks sizes and times)."""

    path: str
    format: str                      # FFmpeg demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str
    width: int
    height: int
    duration_s: float | None         # None when the header does not say
    fps: float | None                # average frame rate from the header
    n_frames: int | None             # frame count from the header (often 0/absent)
    rotation: int                    # degrees counter-clockwise applied to decoded frames
    size_bytes: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class SampledFrame:
    """One decoded, rotated RGB frame and when it is shown."""

    index: int                       # 0-based position among the sampled frames
    t: float                         # presentation time in seconds
    image: Image.Image


@dataclass
class ReadStats:
    """How the reading went: filled while frames are yielded."""

    frames_read: int = 0
    frames_decoded: int = 0
    decode_errors: int = 0
    stopped: str = ""                # why reading stopped early ("" = reached the end or the frame limit)
    notes: list[str] = field(default_factory=list)


def _bad(path: str, why: str) -> BadVideo:
    return BadVideo(Path(path).name or path, why)


def _open(path: str) -> av.container.InputContainer:
    size = _check_size(path)
    del size
    try:
        # A short probe keeps a crafted header from making FFmpeg read far into the file before we decide.
        container = av.open(path, mode="r", options={"probesize": "5000000", "analyzeduration": "5000000"})
    except av.FFmpegError as exc:
        raise _bad(path, f"is not a readable video ({exc.strerror or type(exc).__name__}).") from None
    except (OSError, ValueError) as exc:
        raise _bad(path, f"cannot be opened ({exc}).") from None
    names = set(container.format.name.split(","))
    if not names & _FORMATS:
        container.close()
        raise _bad(path, f"is not a supported video (container {container.format.name!r}; "
                         "accepted: mp4, mov, webm, mkv, avi, animated GIF).")
    if not container.streams.video:
        container.close()
        raise _bad(path, "has no video stream (audio only or empty).")
    return container


def _check_size(path: str) -> int:
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc.strerror or exc}).") from None
    if size == 0:
        raise _bad(path, "is empty (0 bytes).")
    if size > settings.max_video_bytes():
        raise _bad(path, f"is {size / 1024**2:.0f} MB, over the {settings.max_video_bytes() / 1024**2:.0f} MB "
                         "video limit (DEEPFAKE_LENS_MAX_VIDEO_BYTES).")
    return size


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        d = float(stream.duration * stream.time_base)
    elif container.duration:
        d = container.duration / av.time_base
    else:
        return None
    return d if math.isfinite(d) and d > 0 else None


def _rotation(stream: av.video.stream.VideoStream) -> int:
    raw = (stream.metadata or {}).get("rotate")
    try:
        return int(float(raw)) % 360 if raw else 0
    except ValueError:
        return 0


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read the header only and check it against the video limits.

    Raises:
        BadVideo: empty, not a video, no video stream, or over a size / duration / resolution limit.
    """
    path = str(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        w, h = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
        rate = stream.average_rate or stream.guessed_rate
        info = VideoInfo(path=path, format=container.format.name, codec=stream.codec_context.name or "?",
                         width=w, height=h, duration_s=_duration(container, stream),
                         fps=float(rate) if rate else None, n_frames=int(stream.frames) or None,
                         rotation=_rotation(stream), size_bytes=os.path.getsize(path))
    if w * h > settings.max_video_pixels():
        raise _bad(path, f"frames are {w}×{h}, over the {settings.max_video_pixels():,}-pixel limit "
                         "(DEEPFAKE_LENS_MAX_VIDEO_PIXELS).")
    if info.duration_s is not None and info.duration_s > settings.max_video_seconds():
        raise _bad(path, f"lasts {info.duration_s / 60:.0f} min, over the {settings.max_video_seconds() / 60:.0f}-min "
                         "limit (DEEPFAKE_LENS_MAX_VIDEO_SECONDS).")
    return info


def _to_image(frame: av.VideoFrame, rotation: int) -> Image.Image:
    img = frame.to_image()
    if img.mode != "RGB":
        img = img.convert("RGB")
    # The display matrix (frame.rotation, counter-clockwise degrees) wins over the legacy "rotate" tag (clockwise).
    rot = int(getattr(frame, "rotation", 0) or 0) % 360 or (-rotation) % 360
    if rot:
        img = img.rotate(rot, expand=True)
    return img


class FrameReader:
    """Decode a chosen set of frames, seeking between distant samples; one frame in memory at a time.

    Args:
        path: the video file.
        info: its :func:`probe` result.
        stats: filled while reading.
    """

    def __init__(self, path: str, info: VideoInfo, stats: ReadStats) -> None:
        self.path, self.info, self.stats = path, info, stats
        self._deadline = time.monotonic() + settings.video_decode_seconds()

    def _frames(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                ) -> Iterator[av.VideoFrame]:
        """Decoded frames from the current position; corrupt packets are counted and skipped."""
        for packet in container.demux(stream):
            if time.monotonic() > self._deadline:
                self.stats.stopped = f"decoding took longer than {settings.video_decode_seconds():.0f} s"
                return
            try:
                frames = packet.decode()
            except av.FFmpegError:
                self.stats.decode_errors += 1
                if self.stats.decode_errors > MAX_DECODE_ERRORS:
                    self.stats.stopped = f"more than {MAX_DECODE_ERRORS} corrupt packets"
                    return
                continue
            for frame in frames:
                self.stats.frames_decoded += 1
                yield frame

    def _frame_ok(self, frame: av.VideoFrame) -> bool:
        if frame.width * frame.height > settings.max_video_pixels():
            self.stats.stopped = (f"a frame is {frame.width}×{frame.height}, over the "
                                  f"{settings.max_video_pixels():,}-pixel limit")
            return False
        return True

    @staticmethod
    def _time(frame: av.VideoFrame, fallback: float) -> float:
        t = frame.time
        return float(t) if t is not None and math.isfinite(t) else fallback

    def at_times(self, times: Sequence[float]) -> Iterator[SampledFrame]:
        """The first frame shown at or after each time (ascending), seeking when the next time is far ahead."""
        try:
            with av.open(self.path, options={"probesize": "5000000", "analyzeduration": "5000000"}) as container:
                yield from self._at_times(container, list(times))
        except av.FFmpegError as exc:
            self.stats.stopped = f"the file broke off ({exc.strerror or type(exc).__name__})"

    def _at_times(self, container: av.container.InputContainer, times: list[float]) -> Iterator[SampledFrame]:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        t_limit = settings.max_video_seconds()
        it: Iterator[av.VideoFrame] | None = None
        last_t = -math.inf
        for target in times:
            if it is None or target - last_t > SEEK_GAP_S:
                it = self._seek(container, stream, target)
            frame, last_t = self._advance(it, target, last_t)
            if frame is None:
                self._ended_early(last_t)
                return
            if last_t > t_limit:
                self.stats.stopped = f"past the {t_limit:.0f}-s duration limit"
                return
            if not self._frame_ok(frame):
                return
            yield SampledFrame(index=self.stats.frames_read, t=last_t, image=_to_image(frame, self.info.rotation))
            self.stats.frames_read += 1

    def _ended_early(self, last_t: float) -> None:
        """Say so when the frames end well before the header's duration (truncated file, or a lying header)."""
        duration = self.info.duration_s
        if self.stats.stopped or not duration:
            return
        if last_t == -math.inf:
            self.stats.stopped = "no frame could be decoded"
        elif duration - last_t > END_SLACK_S:
            self.stats.stopped = (f"the frames end at {last_t:.2f} s although the header says {duration:.2f} s "
                                  "(a truncated file or a wrong header)")

    def _seek(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
              target: float) -> Iterator[av.VideoFrame]:
        if target > SEEK_GAP_S and stream.time_base:
            try:
                # backward=True lands on the keyframe at or before the target; decoding then runs forward to it.
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            except av.FFmpegError:
                self.stats.notes.append(f"seeking to {target:.2f} s failed; decoding forward instead")
        return self._frames(container, stream)

    def _advance(self, it: Iterator[av.VideoFrame], target: float,
                 last_t: float) -> tuple[av.VideoFrame | None, float]:
        for n, frame in enumerate(it):
            t = self._time(frame, last_t)
            if t + 1e-6 >= target and t > last_t:
                return frame, t
            if n >= MAX_DECODE_PER_SAMPLE:
                self.stats.stopped = f"no frame reached {target:.2f} s within {MAX_DECODE_PER_SAMPLE} frames"
                break
        return None, last_t

    def keyframes(self, min_gap_s: float, max_frames: int) -> Iterator[SampledFrame]:
        """Keyframes only (the decoder skips every other frame), at least ``min_gap_s`` apart."""
        try:
            with av.open(self.path, options={"probesize": "5000000", "analyzeduration": "5000000"}) as container:
                stream = container.streams.video[0]
                stream.codec_context.skip_frame = "NONKEY"
                last_t = -math.inf
                for frame in self._frames(container, stream):
                    t = self._time(frame, last_t)
                    if t < last_t + min_gap_s:
                        continue
                    if t > settings.max_video_seconds() or not self._frame_ok(frame):
                        return
                    last_t = t
                    yield SampledFrame(index=self.stats.frames_read, t=t, image=_to_image(frame, self.info.rotation))
                    self.stats.frames_read += 1
                    if self.stats.frames_read >= max_frames:
                        return
        except av.FFmpegError as exc:
            self.stats.stopped = f"the file broke off ({exc.strerror or type(exc).__name__})"


def read_frame_at(path: str | os.PathLike[str], t: float) -> SampledFrame:
    """The frame shown at time ``t`` (for the page's frame view and the report).

    Raises:
        BadVideo: the file is unreadable or has no frame at or after ``t``.
    """
    info = probe(path)
    reader = FrameReader(str(path), info, ReadStats())
    for frame in reader.at_times([max(0.0, float(t))]):
        return frame
    raise _bad(str(path), f"has no readable frame at {t:.2f} s.")


__all__ = ["SEEK_GAP_S", "FrameReader", "ReadStats", "SampledFrame", "VideoInfo", "probe", "read_frame_at"]
