"""A generated corpus of strange image files (>100 cases) for the hostile-input tests.

Each case: (id, bytes, expectation) with expectation "ok" (must decode to an RGB image), "bad" (must raise BadImage)
or "either" (a truncated file a decoder may or may not accept — it must still end in one of the two).
"""
from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from PIL import Image, features

Case = tuple[str, bytes, str, "Callable[[Image.Image], None] | None"]


def _enc(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _base(w: int = 40, h: int = 30, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    arr[: h // 2] //= 2                                  # some structure, not pure noise
    return Image.fromarray(arr)


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose IHDR declares w×h pixels, followed by a tiny IDAT (a decompression-bomb header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")


def _size(w: int, h: int) -> Callable[[Image.Image], None]:
    def check(img: Image.Image) -> None:
        assert img.size == (w, h), img.size
    return check


def valid_cases() -> list[Case]:
    base = _base()
    grey = base.convert("L")
    cases: list[Case] = []
    fmts = ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"] + (["AVIF"] if features.check("avif") else [])
    for fmt in fmts:
        cases.append((f"rgb.{fmt.lower()}", _enc(base, fmt), "ok", _size(40, 30)))
        cases.append((f"grey.{fmt.lower()}", _enc(grey, fmt), "ok", _size(40, 30)))
    modes = {
        "rgba.png": (base.convert("RGBA"), "PNG"), "la.png": (grey.convert("LA"), "PNG"),
        "p.png": (base.convert("P"), "PNG"), "1bit.png": (grey.convert("1"), "PNG"),
        "1bit.bmp": (grey.convert("1"), "BMP"), "cmyk.jpg": (base.convert("CMYK"), "JPEG"),
        "cmyk.tif": (base.convert("CMYK"), "TIFF"), "rgba.webp": (base.convert("RGBA"), "WEBP"),
        "rgba.tif": (base.convert("RGBA"), "TIFF"), "ycbcr.jpg": (base.convert("YCbCr"), "JPEG"),
        "lab.tif": (base.convert("LAB"), "TIFF"), "p.gif": (base.convert("P"), "GIF"),
    }
    for name, (img, fmt) in modes.items():
        cases.append((name, _enc(img, fmt), "ok", _size(40, 30)))
    pal = base.convert("P")
    cases.append(("p_transparency.png", _enc(pal, "PNG", transparency=0), "ok", _size(40, 30)))
    cases.append(("p_transparency.gif", _enc(pal, "GIF", transparency=0), "ok", _size(40, 30)))
    g16 = (np.asarray(grey).astype(np.uint16) * 257)
    cases.append(("grey16.png", _enc(Image.fromarray(g16), "PNG"), "ok", _size(40, 30)))
    cases.append(("grey16.tif", _enc(Image.fromarray(g16), "TIFF"), "ok", _size(40, 30)))
    cases.append(("int32.tif", _enc(Image.fromarray(g16.astype(np.int32)), "TIFF"), "ok", _size(40, 30)))
    cases.append(("float.tif", _enc(Image.fromarray(np.asarray(grey, np.float32) / 255), "TIFF"), "ok",
                  _size(40, 30)))
    cases.append(("float_nan.tif", _enc(Image.fromarray(np.full((30, 40), np.nan, np.float32)), "TIFF"), "ok",
                  _size(40, 30)))
    more = {
        "progressive.jpg": ("JPEG", {"progressive": True, "quality": 80}),
        "q5.jpg": ("JPEG", {"quality": 5}),
        "q100_444.jpg": ("JPEG", {"quality": 100, "subsampling": 0}),
        "lzw.tif": ("TIFF", {"compression": "tiff_lzw"}),
        "deflate.tif": ("TIFF", {"compression": "tiff_adobe_deflate"}),
        "packbits.tif": ("TIFF", {"compression": "packbits"}),
        "lossless.webp": ("WEBP", {"lossless": True}),
        "image.ico": ("ICO", {"sizes": [(40, 30)]}),
        "image.ppm": ("PPM", {}),
        "image.tga": ("TGA", {}),
        "image.jp2": ("JPEG2000", {}),
        "image.pcx": ("PCX", {}),
    }
    for name, (fmt, kw) in more.items():
        try:
            data = _enc(base, fmt, **kw)
        except (OSError, KeyError, ValueError):
            continue                                  # this Pillow build cannot write it: nothing to test
        cases.append((name, data, "ok", None if fmt == "ICO" else _size(40, 30)))
    for w, h in ((1, 1), (1, 20000), (20000, 1), (2, 2), (3, 5)):
        cases.append((f"size_{w}x{h}.png", _enc(Image.new("RGB", (w, h), (10, 200, 30)), "PNG"), "ok", _size(w, h)))
    # animated: first frame is analysed
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    for fmt in ("GIF", "WEBP", "PNG"):
        data = _enc(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)
        cases.append((f"animated.{fmt.lower()}", data, "ok", _first_red))
    # EXIF orientations 1..8 on a 40×30 JPEG
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        data = _enc(base, "JPEG", exif=exif.tobytes(), quality=90)
        cases.append((f"exif_orientation_{o}.jpg", data, "ok", _size(30, 40) if o >= 5 else _size(40, 30)))
    # corrupt EXIF: an APP1 'Exif' segment full of garbage, and an absurd orientation value
    jpg = _enc(base, "JPEG")
    garbage = b"Exif\x00\x00" + b"MM\x00\x2a\x00\x00\x00\x08" + b"\xff" * 40
    cases.append(("exif_garbage.jpg", jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage + jpg[2:],
                  "ok", _size(40, 30)))
    exif = Image.Exif()
    exif[0x0112] = 77
    cases.append(("exif_orientation_77.jpg", _enc(base, "JPEG", exif=exif.tobytes()), "ok", _size(40, 30)))
    # polyglots and wrong extensions: the content decides
    png = _enc(base, "PNG")
    cases.append(("png_named.jpg", png, "ok", _size(40, 30)))
    cases.append(("jpeg_named.png", jpg, "ok", _size(40, 30)))
    cases.append(("png_plus_zip.png", png + b"PK\x03\x04" + b"\x00" * 100, "ok", _size(40, 30)))
    cases.append(("jpeg_plus_html.jpg", jpg + b"<html><script>alert(1)</script></html>", "ok", _size(40, 30)))
    cases.append(("gif_with_js_comment.gif", _enc(base.convert("P"), "GIF", comment=b"*/=alert(1)/*"), "ok",
                  _size(40, 30)))
    return cases


def _first_red(img: Image.Image) -> None:
    assert img.getpixel((0, 0))[0] > 200 and img.getpixel((0, 0))[1] < 50
    from core.io import image_note
    assert "first frame" in image_note(img)


def bad_cases() -> list[Case]:
    cases: list[Case] = [
        ("zero_bytes.png", b"", "bad", None),
        ("one_byte.jpg", b"\xff", "bad", None),
        ("random.png", np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "bad", None),
        ("text.jpg", b"just some text\n" * 20, "bad", None),
        ("html.png", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", "bad", None),
        ("pdf.jpg", b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "bad", None),
        ("svg.png", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "bad", None),
        ("heic.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "bad", None),
        ("zip.png", b"PK\x03\x04" + b"\x00" * 60, "bad", None),
        ("elf.jpg", b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "bad", None),
        ("json.webp", b'{"not": "an image"}', "bad", None),
        ("png_signature_only.png", b"\x89PNG\r\n\x1a\n", "bad", None),
        ("jpeg_soi_only.jpg", b"\xff\xd8\xff", "bad", None),
        ("bomb_20000x20000.png", _png_header_only(20000, 20000), "bad", None),
        ("bomb_65535x65535.png", _png_header_only(65535, 65535), "bad", None),
        ("gif_bomb_header.gif", b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"\x3b", "bad",
         None),
        ("png_zero_width.png", _png_header_only(0, 10), "bad", None),
        ("png_bad_crc.png", _enc(_base(), "PNG")[:30] + b"\x00\x00\x00\x00" + _enc(_base(), "PNG")[34:], "bad",
         None),
    ]
    if not features.check("avif"):
        cases.append(("avif_no_decoder.avif", b"\x00\x00\x00\x1cftypavif" + b"\x00" * 64, "bad", None))
    return cases


def truncated_cases() -> list[Case]:
    out: list[Case] = []
    base = _base(64, 48, seed=3)
    for fmt in ("PNG", "JPEG", "WEBP", "GIF", "TIFF", "BMP"):
        data = _enc(base, fmt)
        for frac in (0.02, 0.1, 0.5, 0.9, 0.99):
            out.append((f"truncated_{int(frac * 100)}.{fmt.lower()}", data[: max(1, int(len(data) * frac))], "either",
                        None))
    return out


def all_cases() -> list[Case]:
    return valid_cases() + bad_cases() + truncated_cases()
