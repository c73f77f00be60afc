"""load_image: every input ends as an RGB image or a BadImage with a human sentence."""
from __future__ import annotations

import io

import numpy as np
import pytest
from tests.helpers import png_bytes
from PIL import Image

from core import BadImage, load_image


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_path_bytes_and_fileobj(tmp_path):
    data = png_bytes((20, 10))
    p = tmp_path / "x.png"
    p.write_bytes(data)
    for src in (p, str(p), data, io.BytesIO(data)):
        img = load_image(src)
        assert img.mode == "RGB" and img.size == (20, 10)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))         # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6                                # rotate 90° clockwise when displayed
    out = load_image(_encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (20, 40)
    top = np.asarray(out)[:5].mean(axis=(0, 1))
    assert top[2] > 150 and top[0] < 100            # the blue strip is now at the top


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I;16", "I", "F"])
def test_modes_become_rgb(mode):
    base = Image.effect_noise((16, 12), 60).convert("L")
    if mode in ("I;16", "I"):
        img = Image.fromarray((np.asarray(base).astype(np.uint16) * 257)).convert(mode) if mode == "I;16" \
            else Image.fromarray(np.asarray(base).astype(np.int32) * 2**23)     # a 32-bit TIFF: full scale 2**31-1
    elif mode == "F":
        img = Image.fromarray(np.asarray(base).astype(np.float32) / 255.0)
    else:
        img = base.convert(mode)
    fmt = "TIFF" if mode in ("CMYK", "I;16", "I", "F") else "PNG"
    out = load_image(_encode(img, fmt))
    assert out.mode == "RGB" and out.size == (16, 12)
    if mode in ("I;16", "I", "F"):                 # high bit depth is scaled, not clipped to white
        np.testing.assert_allclose(np.asarray(out)[..., 0], np.asarray(base), atol=1)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_a_dark_16_bit_image_stays_dark(fmt):
    # scaled by its bit depth (value / 257), not stretched by its content (which made it 257x brighter)
    dark = (np.arange(16 * 12).reshape(12, 16) % 200).astype(np.uint16)        # values 0..199 of 65535
    out = np.asarray(load_image(_encode(Image.fromarray(dark), fmt)))[..., 0]
    np.testing.assert_allclose(out, np.rint(dark / 257.0), atol=1)
    assert out.max() <= 1


@pytest.mark.parametrize("lo,hi", [(0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)])
def test_float_images_map_their_standard_range_to_black_white(lo, hi):
    ramp = np.linspace(lo, hi, 16 * 12, dtype=np.float32).reshape(12, 16)
    out = np.asarray(load_image(_encode(Image.fromarray(ramp), "TIFF")))[..., 0].astype(float)
    np.testing.assert_allclose(out, np.rint((ramp - lo) / (hi - lo) * 255), atol=1)   # nothing clipped


def test_the_pixel_limit_is_the_documented_one_not_pillows(monkeypatch):
    # Pillow alone refuses above 2 x 89.5 MP and warns above 89.5 MP; our limit decides, both ways
    big = Image.new("L", (12000, 10000))            # 120 MP, above Pillow's default guard
    data = _encode(big, "PNG")
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_PIXELS", str(200_000_000))
    assert load_image(data).size == (12000, 10000)
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_PIXELS", str(100_000_000))
    with pytest.raises(BadImage, match="120 MP.*100 MP limit"):
        load_image(data)
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_PIXELS", str(1000))
    with pytest.raises(BadImage, match=r"40×40 pixels \(1600 pixels\), above the 1000 pixels limit"):
        load_image(_encode(Image.new("L", (40, 40)), "PNG"))


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = load_image(data)
    assert tuple(np.asarray(out)[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("data, why", [
    (b"", "empty"),
    (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML"),
    (b"%PDF-1.4\n%...", "PDF"),
    (b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40, "HEIC"),
    (b"hello, this is plain text", "not an image format"),
])
def test_non_images_are_refused_with_a_sentence(data, why):
    with pytest.raises(BadImage) as exc:
        load_image(data)
    assert why in str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_truncated_png_and_missing_file(tmp_path):
    data = png_bytes((64, 64))
    with pytest.raises(BadImage, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])
    with pytest.raises(BadImage, match="not found"):
        load_image(tmp_path / "nope.png")


def test_pixel_limit_refuses_before_decoding(monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_PIXELS", str(100 * 100))
    with pytest.raises(BadImage, match="above the 10000 pixels limit"):
        load_image(png_bytes((101, 100)))
    assert load_image(png_bytes((100, 100))).size == (100, 100)
