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

# Refuse images above this many pixels before decoding them (a 20000x20000 image or a decompression bomb would
# otherwise take gigabytes). Overridable for analysts with huge scans.

NOTE_KEY = "deepfake_lens.note"

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, Image.Image]


def _name_of(src: ImageSource) -> str:
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    name = getattr(src, "name", None)
    return str(name) if isinstance(name, str) else "<bytes>"


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB, scaling high-bit-depth data instead of clipping it."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F") or mode.startswith("I;"):
        arr = np.asarray(img, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        hi = float(finite.max()) if finite.size else 0.0
        if mode == "F" and hi <= 1.0:
            arr = arr * 255.0                       # float images in [0, 1]
        elif hi > 255.0:
            arr = arr / (65535.0 if hi <= 65535.0 else hi) * 255.0   # 16-bit (or wider) data
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0, neginf=0.0)
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    # RGBA/LA/P/CMYK/YCbCr/1/L...: PIL's conversion, as every upstream detector does (.convert('RGB')).
    return img.convert("RGB")


def load_image(src: ImageSource) -> Image.Image:
    """Decode an image into an RGB PIL image with EXIF orientation applied.

    Args:
        src: a path, raw bytes, a binary file object, or a PIL image.

    Returns:
        A fully loaded ``PIL.Image.Image`` in mode ``"RGB"``. Animated files give their first frame.

    Raises:
        BadImage: with a human sentence when the input is empty, not an image, truncated, too large or in a
            format no installed decoder reads.

    Example:
        >>> load_image("photo.jpg").size
        (1024, 768)
    """
    name = _name_of(src)
    if isinstance(src, Image.Image):
        img = src
    else:
        try:
            if isinstance(src, (str, os.PathLike)):
                path = Path(src)
                if not path.is_file():
                    raise BadImage(name, "file not found.")
                size = path.stat().st_size
                if size == 0:
                    raise BadImage(name, "the file is empty (0 bytes).")
                if size > settings.max_bytes():
                    raise BadImage(name, f"the file is {size / 1e6:.0f} MB, above the {settings.max_bytes() / 1e6:.0f} MB limit.")
                data = path.read_bytes()
            elif isinstance(src, (bytes, bytearray, memoryview)):
                data = bytes(src)
            else:
                data = src.read()
        except OSError as exc:
            raise BadImage(name, f"could not be read ({exc.strerror or exc}).") from None
        if not data:
            raise BadImage(name, "the file is empty (0 bytes).")
        if len(data) > settings.max_bytes():
            raise BadImage(name, f"the file is {len(data) / 1e6:.0f} MB, above the {settings.max_bytes() / 1e6:.0f} MB limit.")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # Pillow's own bomb guard fired on the header: refuse without decoding anything
            raise BadImage(name, f"declares more pixels than the {settings.max_pixels() / 1e6:.0f} MP limit this tool decodes "
                                 "(a decompression bomb or a huge scan).") from None
        except UnidentifiedImageError:
            img = None
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad image, never a crash
            raise BadImage(name, f"is not a readable image ({type(exc).__name__}).") from None
        if img is None:
            head = data[:64].lstrip().lower()
            if head.startswith((b"<!doctype html", b"<html")):
                why = "is an HTML page, not an image."
            elif head.startswith(b"%pdf"):
                why = "is a PDF document, not an image."
            elif data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif", b"ftypavis"):
                why = "is HEIC/AVIF, and no decoder for it is installed (convert it to PNG or JPEG)."
            else:
                why = "is not an image format this tool can read (PNG, JPEG, WebP, GIF, BMP, TIFF)."
            raise BadImage(name, why)
    w, h = img.size
    if w <= 0 or h <= 0:
        raise BadImage(name, "has no pixels.")
    if w * h > settings.max_pixels():
        raise BadImage(name, f"is {w}×{h} pixels ({w * h / 1e6:.0f} MP), above the {settings.max_pixels() / 1e6:.0f} MP limit "
                             "this tool decodes (set DEEPFAKE_LENS_MAX_PIXELS to raise it).")
    animated = False
    try:
        # is_animated only looks for a second frame (n_frames would walk every frame of a 100 000-frame GIF)
        animated = bool(getattr(img, "is_animated", False))
        if animated:
            img.seek(0)                     # animated: analyse the first frame
        img.load()
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - corrupt EXIF must not lose the image: keep it unrotated
            pass
        out = _to_rgb(img)
        out.load()
    except BadImage:
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadImage(name, f"is truncated or corrupt ({exc}).") from None
    except MemoryError:
        raise BadImage(name, "is too large to decode in memory.") from None
    except Exception as exc:  # noqa: BLE001 - a decoder bug on hostile input must not escape as a crash
        raise BadImage(name, f"could not be decoded ({type(exc).__name__}).") from None
    if animated:
        out.info[NOTE_KEY] = "animated image: only the first frame is analysed"
    return out


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
