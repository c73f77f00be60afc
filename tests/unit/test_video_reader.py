"""Video reading: formats, rotation, timestamps, seek-based sampling, limits and hostile files (PyAV-made videos)."""
from __future__ import annotations

import io
import time

import pytest

from core.errors import BadVideo
from core.video.reader import ReadStats, probe, read_frame_at
from core.video.sampling import SamplingPlan, sample_frames, target_times
from tests.unit.videogen import face, garble, no_face, panned, patch_box, write_audio_only, write_vfr, write_video


def _read(path, plan=None):
    stats = ReadStats()
    frames = [(f.t, f.image.size, f.image.mode) for f in sample_frames(str(path), probe(path),
                                                                      plan or SamplingPlan(fps=2), stats)]
    return frames, stats


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "clip.mp4", panned([1]), n=30)


# --------------------------------------------------------------------------------------------- sampling plan

def test_target_times_rate_and_limit():
    assert target_times(3.0, 2.0, 100) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    spread = target_times(7200.0, 1.0, 30)                 # a 2-hour file, 30 frames: spread over the whole file
    assert len(spread) == 30 and spread[0] == 0.0 and spread[-1] == pytest.approx(7200 * 29 / 30)
    assert target_times(None, 1.0, 5) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_plan_validates_and_caps(monkeypatch):
    with pytest.raises(ValueError):
        SamplingPlan(mode="every")
    with pytest.raises(ValueError):
        SamplingPlan(fps=0)
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_VIDEO_FRAMES", "7")
    assert SamplingPlan(max_frames=500).frame_limit == 7


# --------------------------------------------------------------------------------------------- formats

@pytest.mark.parametrize("name,codec", [("a.mp4", "mpeg4"), ("a.mov", "mpeg4"), ("a.mkv", "mpeg4"),
                                        ("a.webm", "libvpx"), ("a.avi", "mpeg4"), ("a.gif", "gif")])
def test_formats_sampled_with_timestamps(tmp_path, name, codec):
    path = write_video(tmp_path / name, panned([1]), n=20, codec=codec)
    frames, stats = _read(path)
    assert [round(t, 2) for t, _, _ in frames] == [0.0, 0.5, 1.0, 1.5]
    assert all(size == (320, 240) and mode == "RGB" for _, size, mode in frames)
    assert stats.frames_read == 4 and not stats.stopped


@pytest.mark.parametrize("name", ["r.mp4", "r.mkv"])
def test_rotation_metadata_applied(tmp_path, name):
    path = write_video(tmp_path / name, panned([1]), n=10, rotation=90)
    frames, _ = _read(path)
    assert frames and all(size == (240, 320) for _, size, _ in frames)


def test_keyframes_mode_decodes_keyframes_only(tmp_path):
    path = write_video(tmp_path / "k.mp4", panned([1]), n=40, gop=10)
    frames, stats = _read(path, SamplingPlan(mode="keyframes"))
    assert [round(t, 2) for t, _, _ in frames] == [0.0, 1.0, 2.0, 3.0]
    assert stats.frames_decoded == 4


def test_seeks_instead_of_decoding_everything(tmp_path):
    # 60 s at 10 frame/s (600 frames), keyframe every 10 frames: 4 samples must not decode the whole file.
    path = write_video(tmp_path / "long.mp4", no_face((160, 120)), n=600, size=(160, 120), gop=10)
    frames, stats = _read(path, SamplingPlan(fps=1, max_frames=4))
    assert [round(t) for t, _, _ in frames] == [0, 15, 30, 45]
    assert stats.frames_decoded <= 4 * 12, stats


def test_variable_frame_rate_keeps_true_times(tmp_path):
    path = write_vfr(tmp_path / "vfr.mkv", panned([1]), [40, 40, 250] * 6)
    frames, _stats = _read(path)
    # frames at 0, 40, 80, 330, 370, 410, 660, ... ms: each sample is the first frame shown at or after its time
    assert [t for t, _, _ in frames] == [0.0, 0.66, 1.03, 1.65]


def test_read_frame_at(clip_mp4):
    f = read_frame_at(clip_mp4, 1.2)
    assert 1.2 <= f.t < 1.35 and f.image.size == (320, 240)


# --------------------------------------------------------------------------------------------- hostile files

def _sentence(exc: BadVideo) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text and text.endswith(".")
    return text


def test_zero_bytes(tmp_path):
    (tmp_path / "z.mp4").write_bytes(b"")
    with pytest.raises(BadVideo, match="empty") as e:
        probe(tmp_path / "z.mp4")
    _sentence(e.value)


def test_text_renamed_mp4(tmp_path):
    (tmp_path / "t.mp4").write_text("this is not a video\n" * 100)
    with pytest.raises(BadVideo) as e:
        probe(tmp_path / "t.mp4")
    _sentence(e.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_renamed_mp4(tmp_path, fmt):
    buf = io.BytesIO()
    face(1).save(buf, format=fmt)
    (tmp_path / "i.mp4").write_bytes(buf.getvalue())
    with pytest.raises(BadVideo, match="not a supported video") as e:
        probe(tmp_path / "i.mp4")
    _sentence(e.value)


def test_audio_only(tmp_path):
    with pytest.raises(BadVideo, match="no video stream") as e:
        probe(write_audio_only(tmp_path / "a.mp4"))
    _sentence(e.value)


def test_truncated_mp4_without_index_is_one_sentence(tmp_path, clip_mp4):
    data = clip_mp4.read_bytes()
    (tmp_path / "t.mp4").write_bytes(data[: len(data) * 6 // 10])      # PyAV writes the moov index at the end
    with pytest.raises(BadVideo) as e:
        probe(tmp_path / "t.mp4")
    _sentence(e.value)


def test_truncated_mkv_reads_what_is_there(tmp_path):
    data = write_video(tmp_path / "full.mkv", panned([1]), n=30).read_bytes()
    (tmp_path / "t.mkv").write_bytes(data[: len(data) * 6 // 10])
    frames, stats = _read(tmp_path / "t.mkv")
    assert 1 <= stats.frames_read < 6 and len(frames) == stats.frames_read
    assert stats.stopped.startswith(f"the frames end at {frames[-1][0]:.2f} s although the header says 3.00 s")


def test_corrupt_frames_mid_stream(tmp_path, clip_mp4):
    data = clip_mp4.read_bytes()
    start = data.index(b"mdat") + 2000
    (tmp_path / "c.mp4").write_bytes(garble(data, start, 4000))
    t0 = time.monotonic()
    _frames, stats = _read(tmp_path / "c.mp4")
    assert time.monotonic() - t0 < 30
    assert 1 <= stats.frames_read <= 6 and stats.decode_errors > 0       # broken packets counted and skipped


def test_header_lies_about_resolution(tmp_path, monkeypatch):
    data = write_video(tmp_path / "r.avi", panned([1]), n=20).read_bytes()
    lying = patch_box(patch_box(data, b"avih", 40, "<II", 60000, 40000), b"strf", 12, "<ii", 60000, 40000)
    (tmp_path / "lie.avi").write_bytes(lying)
    frames, _stats = _read(tmp_path / "lie.avi")           # the decoder's real size wins, or the limit refuses it
    assert all(size == (320, 240) for _, size, _ in frames)
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_VIDEO_PIXELS", str(100 * 100))
    with pytest.raises(BadVideo, match="pixel limit"):
        probe(tmp_path / "lie.avi")


def test_header_lies_about_duration(tmp_path, clip_mp4):
    data = clip_mp4.read_bytes()
    # mvhd: version/flags(4) creation(4) modification(4) timescale(4) duration(4) → claim 600× the real length
    lying = patch_box(patch_box(data, b"mvhd", 20, ">I", 1_800_000), b"mdhd", 20, ">I", 1_800_000)
    (tmp_path / "lie.mp4").write_bytes(lying)
    t0 = time.monotonic()
    frames, stats = _read(tmp_path / "lie.mp4")
    assert time.monotonic() - t0 < 30
    assert stats.frames_read == len(frames) <= 120


def test_header_lies_about_a_longer_duration(tmp_path):
    data = write_video(tmp_path / "r.avi", panned([1]), n=20).read_bytes()             # 2 s at 10 frame/s
    # avih.dwTotalFrames and strh.dwLength both claim 10,000 frames (1000 s)
    lying = patch_box(patch_box(data, b"avih", 24, "<I", 10_000), b"strh", 40, "<I", 10_000)
    (tmp_path / "long.avi").write_bytes(lying)
    assert probe(tmp_path / "long.avi").duration_s == 1000.0
    t0 = time.monotonic()
    frames, stats = _read(tmp_path / "long.avi")
    assert time.monotonic() - t0 < 30 and stats.frames_read == len(frames) >= 1
    assert "although the header says 1000.00 s" in stats.stopped


def test_decoding_is_bounded_in_wall_time(clip_mp4, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_VIDEO_DECODE_SECONDS", "0")
    frames, stats = _read(clip_mp4)
    assert frames == [] and stats.stopped == "decoding took longer than 0 s"


def test_limits_refuse_with_a_sentence(tmp_path, clip_mp4, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_VIDEO_BYTES", "100")
    with pytest.raises(BadVideo, match="MB video limit"):
        probe(clip_mp4)
    monkeypatch.delenv("DEEPFAKE_LENS_MAX_VIDEO_BYTES")
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_VIDEO_SECONDS", "1")
    with pytest.raises(BadVideo, match="limit"):
        probe(clip_mp4)
