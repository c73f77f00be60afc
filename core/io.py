"""Safe image reading: one place turns whatever the user gave us into an RGB PIL image or a BadImage."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core import settings
from core.errors import BadImage

#: File extensions read as images everywhere (uploads, folders, zips, labels CSVs): the one list.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".jfif", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
#: The same list without dots, for upload widgets.
IMAGE_TYPES = sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS)

NOTE_KEY = "deepfake_lens.note"

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]


UNNAMED = "the image"          # what a sentence calls bytes given without a file name


def _name_of(src: ImageSource) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    name = getattr(src, "name", None)
    return str(name) if isinstance(name, str) and name else UNNAMED


def _integer_full_scale(img: Image.Image, rawmode: str) -> float:
    """The largest value of the image's integer storage type (its bit depth), which maps to white."""
    if img.mode.startswith("I;16") or "16" in rawmode:
        return 65535.0
    if "32S" in rawmode or rawmode in ("I", "I;32", "I;32N"):
        return float(2**31 - 1)
    if "32" in rawmode:
        return float(2**32 - 1)
    if "8" in rawmode:
        return 255.0
    return 65535.0          # Pillow's "I" without a known raw mode: historically 16-bit PNG greyscale


# Standard float ranges, smallest first: the first that holds all the data decides the scaling.
_FLOAT_RANGES = ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0), (0.0, 65535.0))


def _to_rgb(img: Image.Image, rawmode: str = "") -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    Integer images are scaled by their bit depth (a dark 16-bit image stays dark: value / 257), never by their
    content. Float images carry no bit depth: the smallest standard range holding the data decides ([0, 1],
    [−1, 1], [0, 255], [0, 65535]); data outside all of them is stretched from its own min to max.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "F") or mode.startswith("I;"):
        arr = np.asarray(img, dtype=np.float64)
        if mode == "F":
            finite = arr[np.isfinite(arr)]
            lo_d, hi_d = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            lo, hi = next(((lo, hi) for lo, hi in _FLOAT_RANGES if lo <= lo_d and hi_d <= hi), (lo_d, hi_d))
        else:
            lo, hi = 0.0, _integer_full_scale(img, rawmode)
        arr = (arr - lo) / max(hi - lo, 1e-12) * 255.0
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    # RGBA/LA/P/CMYK/YCbCr/1/L...: PIL's conversion, as every upstream detector does (.convert('RGB')).
    return img.convert("RGB")


def _read_source(src: ImageSource, name: str) -> bytes:
    """The bytes of a path / bytes / file object, within the byte limit."""
    limit = settings.max_bytes()
    try:
        if isinstance(src, (str, os.PathLike)):
            path = Path(src)
            if not path.is_file():
                raise BadImage(name, "file not found.")
            size = path.stat().st_size
            if size > limit:
                raise BadImage(name, f"the file is {size / 1e6:.0f} MB, above the {limit / 1e6:.0f} MB limit.")
            data = path.read_bytes()
        elif isinstance(src, (bytes, bytearray, memoryview)):
            data = bytes(src)
        else:
            data = src.read(limit + 1)
    except OSError as exc:
        raise BadImage(name, f"could not be read ({exc.strerror or exc}).") from None
    if not data:
        raise BadImage(name, "the file is empty (0 bytes).")
    if len(data) > limit:
        raise BadImage(name, f"the file is above the {limit / 1e6:.0f} MB limit.")
    return data


def _not_an_image(data: bytes) -> str:
    """The sentence for bytes no decoder recognised."""
    kind = sniff_type(data)
    if kind == "HTML":
        return "is an HTML page, not an image."
    if kind == "PDF":
        return "is a PDF document, not an image."
    if kind in ("HEIC", "AVIF"):
        return "is HEIC/AVIF, and no decoder for it is installed (convert it to PNG or JPEG)."
    return "is not an image format this tool can read (PNG, JPEG, WebP, GIF, BMP, TIFF)."


def _mp(n: int) -> str:
    return f"{n / 1e6:.0f} MP" if n >= 1_000_000 else f"{n} pixels"


def _pixel_limit_sentence(pixels: str) -> str:
    limit = settings.max_pixels()
    return (f"{pixels}above the {_mp(limit)} limit this tool decodes (a decompression bomb or a huge scan; "
            "set DEEPFAKE_LENS_MAX_PIXELS to raise it).")


def open_image(data: bytes, name: str = UNNAMED) -> Image.Image:
    """Open (header only, nothing decoded) untrusted image bytes, refusing more pixels than
    ``settings.max_pixels()`` — the documented limit, which replaces Pillow's own 89.5 MP guard.

    Args:
        data: the file's bytes.
        name: the file name every error sentence starts with (callers pass the user's file name).

    Raises:
        BadImage: not an image, or too many pixels.
    """
    limit = settings.max_pixels()
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice it. Our own check below is the limit, so
    # Pillow's is only ever raised to ours (never lowered: other threads may be opening images).
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise BadImage(name, _pixel_limit_sentence("declares far more pixels than allowed, ")) from None
    except UnidentifiedImageError:
        raise BadImage(name, _not_an_image(data)) from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad image, never a crash
        raise BadImage(name, f"is not a readable image ({type(exc).__name__}).") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise BadImage(name, "has no pixels.")
    if w * h > limit:
        raise BadImage(name, _pixel_limit_sentence(f"is {w}×{h} pixels ({_mp(w * h)}), "))
    return img


def _raw_mode(img: Image.Image) -> str:
    """The decoder's raw pixel layout (e.g. ``I;16B``, ``I;32S``), which tells an integer image's bit depth."""
    try:
        args = img.tile[0][3]
        return str(args[0] if isinstance(args, tuple) else args)
    except (IndexError, TypeError):
        return ""


def _decode(img: Image.Image, name: str) -> Image.Image:
    """Decode the first frame, apply EXIF orientation and convert to RGB; any decoder failure is a BadImage."""
    animated = False
    try:
        # is_animated only looks for a second frame (n_frames would walk every frame of a 100 000-frame GIF)
        animated = bool(getattr(img, "is_animated", False))
        if animated:
            img.seek(0)                     # animated: analyse the first frame
        rawmode = _raw_mode(img)
        img.load()
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - corrupt EXIF must not lose the image: keep it unrotated
            pass
        out = _to_rgb(img, rawmode)
        out.load()
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise BadImage(name, f"is truncated or corrupt ({exc}).") from None
    except MemoryError:
        raise BadImage(name, "is too large to decode in memory.") from None
    except Exception as exc:  # noqa: BLE001 - a decoder bug on hostile input must not escape as a crash
        raise BadImage(name, f"could not be decoded ({type(exc).__name__}).") from None
    if animated:
        out.info[NOTE_KEY] = "animated image: only the first frame is analysed"
    return out


def load_image(src: ImageSource, *, name: str | None = None) -> Image.Image:
    """Decode an image into an RGB PIL image with EXIF orientation applied.

    Args:
        src: a path, raw bytes, a binary file object, or a PIL image.
        name: the file name used in error sentences (default: the path, the file object's name, or "the image"
            for bare bytes), so a refusal always names what the user gave.

    Returns:
        A fully loaded ``PIL.Image.Image`` in mode ``"RGB"``. Animated files give their first frame.

    Raises:
        BadImage: with a human sentence when the input is empty, not an image, truncated, too large or in a
            format no installed decoder reads.

    Example:
        >>> load_image("photo.jpg").size
        (1024, 768)
    """
    name = name or _name_of(src)
    if isinstance(src, Image.Image):
        w, h = src.size
        if w <= 0 or h <= 0:
            raise BadImage(name, "has no pixels.")
        if w * h > settings.max_pixels():
            raise BadImage(name, _pixel_limit_sentence(f"is {w}×{h} pixels ({_mp(w * h)}), "))
        return _decode(src, name)
    return _decode(open_image(_read_source(src, name), name), name)


# Magic bytes of the formats users bring (images, and the documents most often mistaken for them).
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"%PDF", "PDF"), (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
)
_FTYP_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC", b"mif1": "HEIC",
                b"msf1": "HEIC", b"heim": "HEIC", b"heis": "HEIC"}


def sniff_type(data: bytes) -> str | None:
    """The file's type from its first bytes ("JPEG", "PNG", "WEBP", "HEIC", "PDF", "HTML", ...), or None.

    Example:
        >>> sniff_type(b"\x89PNG\r\n\x1a\n...")
        'PNG'
    """
    head = bytes(data[:64])
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in _FTYP_BRANDS:
        return _FTYP_BRANDS[head[8:12]]
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        return "HTML"
    return None


def image_note(img: Image.Image) -> str:
    """What the analyst should know about how the image was read (e.g. first frame of an animation), or ''."""
    return str(img.info.get(NOTE_KEY, ""))
