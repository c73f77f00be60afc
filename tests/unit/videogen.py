"""Small videos made with PyAV for the video tests (faces panned across a background, cuts, hostile files)."""
from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

GOLDEN = Path(os.environ.get("DEEPFAKE_LENS_GOLDEN", Path(__file__).resolve().parents[3] / "shared" / "golden"))
FACES = GOLDEN / "images" / "faces"


def face(n: int = 1, side: int = 120) -> Image.Image:
    """``face_<n>.jpg`` from the golden folder, resized to ``side`` pixels high."""
    img = Image.open(FACES / f"face_{n}.jpg").convert("RGB")
    return img.resize((round(img.width * side / img.height), side), Image.BILINEAR)


def background(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth, face-free gradient with mild noise (so the encoder has texture to code)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([60 + 80 * xx / w, 90 + 60 * yy / h, 140 - 40 * xx / w], -1)
    return Image.fromarray(np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8))


Scene = Callable[[int, int], Image.Image]     # (frame index, frame count) -> RGB frame


def write_video(path: Path, scene: Scene, *, n: int, fps: int = 10, size: tuple[int, int] = (320, 240),
                codec: str = "mpeg4", fmt: str | None = None, rotation: int | None = None, gop: int = 10) -> Path:
    """Encode ``n`` frames drawn by ``scene`` into ``path`` (container from the suffix unless ``fmt``)."""
    with av.open(str(path), mode="w", format=fmt) as out:
        st = out.add_stream(codec, rate=fps)
        st.width, st.height = size
        st.pix_fmt = "rgb8" if codec == "gif" else "yuv420p"
        if codec != "gif":
            st.codec_context.gop_size = gop
        if rotation is not None:
            st.set_display_rotation(rotation)
        for i in range(n):
            frame = av.VideoFrame.from_image(scene(i, n))
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


def panned(faces: Sequence[int], size: tuple[int, int] = (320, 240), side: int = 110) -> Scene:
    """Faces side by side, panned left to right across the frame."""
    w, h = size
    imgs = [face(k, side) for k in faces]
    bg = background(w, h)
    span = sum(i.width for i in imgs) + 20 * (len(imgs) - 1)

    def draw(i: int, n: int) -> Image.Image:
        frame = bg.copy()
        x = int(5 + (w - span - 10) * i / max(1, n - 1))
        for img in imgs:
            frame.paste(img, (x, (h - img.height) // 2))
            x += img.width + 20
        return frame
    return draw


def no_face(size: tuple[int, int] = (320, 240)) -> Scene:
    """A moving gradient without any face."""
    w, h = size

    def draw(i: int, n: int) -> Image.Image:
        return background(w, h, seed=i).transpose(Image.FLIP_LEFT_RIGHT) if i % 2 else background(w, h, seed=i)
    return draw


def cut(size: tuple[int, int] = (320, 240), side: int = 110) -> Scene:
    """Shot 1: face_1 on the left; shot 2 (second half): face_2 on the right."""
    w, h = size
    a, b, bg = face(1, side), face(2, side), background(w, h)

    def draw(i: int, n: int) -> Image.Image:
        frame = bg.copy()
        if i < n // 2:
            frame.paste(a, (10, (h - side) // 2))
        else:
            frame.paste(b, (w - b.width - 10, (h - side) // 2))
        return frame
    return draw


def write_vfr(path: Path, scene: Scene, gaps_ms: Sequence[int], size: tuple[int, int] = (320, 240)) -> Path:
    """A variable-frame-rate video: frame k is shown ``gaps_ms[k - 1]`` ms after frame k - 1."""
    n = len(gaps_ms) + 1
    with av.open(str(path), mode="w") as out:
        st = out.add_stream("mpeg4", rate=25)
        st.width, st.height = size
        st.pix_fmt = "yuv420p"
        st.codec_context.time_base = Fraction(1, 1000)
        pts = 0
        for k in range(n):
            frame = av.VideoFrame.from_image(scene(k, n))
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            for pkt in st.encode(frame):
                out.mux(pkt)
            pts += gaps_ms[k] if k < len(gaps_ms) else 0
        for pkt in st.encode():
            out.mux(pkt)
    return path


def write_audio_only(path: Path) -> Path:
    """An mp4 holding one second of silent AAC audio and no video stream."""
    with av.open(str(path), mode="w") as out:
        st = out.add_stream("aac", rate=16000)
        for i in range(16):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


def patch_box(data: bytes, tag: bytes, offset: int, fmt: str, *values: int) -> bytes:
    """Overwrite ``struct`` ``fmt`` values at ``offset`` bytes after the first ``tag`` (a header field that lies)."""
    out = bytearray(data)
    i = out.index(tag) + offset
    out[i:i + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    return bytes(out)


def garble(data: bytes, start: int, n: int, seed: int = 0) -> bytes:
    """``n`` random bytes written over ``data`` from ``start`` (corrupt frames mid-stream)."""
    out = bytearray(data)
    out[start:start + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(out)


__all__ = [
    "FACES",
    "background",
    "cut",
    "face",
    "garble",
    "no_face",
    "panned",
    "patch_box",
    "write_audio_only",
    "write_vfr",
    "write_video",
]
