"""Reading uploads: a streaming multipart parser with the app's byte limits, and the type gate (415).

The body is parsed as it arrives (python-multipart's push parser), so an upload over the limit is refused with 413
as soon as the limit is passed, never read whole. An image stays in memory; a video (which the decoder reads from a
file) goes into a file inside a folder the caller owns — a ``TemporaryDirectory`` removed when the work ends. The
client's file name is kept only as a display name (its last path component, printable, at most 200 characters):
nothing here ever opens a path the client chose.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from core.api.errors import ApiError
from core.archive import printable
from core.io import IMAGE_EXTENSIONS, sniff_type

FORM_OVERHEAD = 1024 * 1024      # headers, boundaries and small option fields on top of the file itself
MAX_PARTS = 8
MAX_FIELD_BYTES = 64 * 1024
#: Types ``sniff_type`` recognises that no decoder here reads as an image.
NOT_IMAGES = frozenset({"PDF", "HTML", "HEIC", "AVIF", "JPEG XL"})
_FORMATS = "PNG, JPEG, WebP, GIF, BMP or TIFF"


@dataclass
class Upload:
    """One uploaded file.

    Attributes:
        name: the client's file name, reduced to a safe display name ("upload" when none was given).
        data: the bytes (in-memory uploads) or None.
        path: the file inside the caller's temporary folder (spooled uploads) or None.
        size: bytes received.
    """

    name: str
    data: bytes | None
    path: Path | None
    size: int


def display_name(raw: str | None) -> str:
    """The client's file name as a display name: last path component, printable, at most 200 characters."""
    base = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = printable(base).strip()[:200]
    return base if base not in ("", ".", "..") else "upload"


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


class _Collector:
    """python-multipart callbacks: keep the one file field wanted, small fields in memory, refuse the rest."""

    def __init__(self, field: str, limit: int, folder: Path | None, knob: str) -> None:
        self.field, self.limit, self.folder, self.knob = field, limit, folder, knob
        self.parts = 0
        self.upload: Upload | None = None
        self._headers: dict[bytes, bytes] = {}
        self._hname = self._hvalue = b""
        self._target: bytearray | IO[bytes] | None = None
        self._size = 0
        self._buf = bytearray()

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ApiError(413, f"the form has more than {MAX_PARTS} parts.")
        self._headers, self._hname, self._hvalue, self._target, self._size = {}, b"", b"", None, 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._hname += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._hvalue += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._hname.lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def on_headers_finished(self) -> None:
        _, opts = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("latin-1")
        if name == self.field and b"filename" in opts and self.upload is None:
            shown = display_name(opts[b"filename"].decode("utf-8", "replace"))
            if self.folder is None:
                self._buf = bytearray()
                self._target = self._buf
                self.upload = Upload(shown, None, None, 0)
            else:
                suffix = Path(shown).suffix.lower()
                path = self.folder / ("upload" + (suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""))
                self._target = path.open("wb")
                self.upload = Upload(shown, None, path, 0)
        else:
            self._target = None             # another field: counted against its own small limit, then dropped

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._target is None:
            if self._size > MAX_FIELD_BYTES:
                raise ApiError(413, f"a form field is above the {_mb(MAX_FIELD_BYTES)} limit of a field.")
            return
        if self._size > self.limit:
            raise ApiError(413, f"the upload is above the {_mb(self.limit)} limit ({self.knob}).")
        if isinstance(self._target, bytearray):
            self._target += data[start:end]
        else:
            self._target.write(data[start:end])

    def on_part_end(self) -> None:
        if self._target is not None and self.upload is not None:
            self.upload.size = self._size
            if isinstance(self._target, bytearray):
                self.upload.data = bytes(self._target)
                self._buf = bytearray()
            else:
                self._target.close()
        self._target = None

    def close(self) -> None:
        """Close a spooled file left open by a failed parse."""
        if self._target is not None and not isinstance(self._target, bytearray):
            self._target.close()


async def read_upload(request: Request, *, field: str, limit: int, folder: Path | None = None,
                      knob: str = "DEEPFAKE_LENS_MAX_BYTES") -> Upload:
    """Parse a ``multipart/form-data`` request and return its file field ``field``.

    Args:
        request: the incoming request (its body is read here, once).
        field: the form field holding the file.
        limit: most bytes accepted for the file.
        folder: None keeps the file in memory; else it is written into this (temporary) folder.
        knob: the setting that raises ``limit`` (named in the 413 sentence).

    Raises:
        ApiError: 415 not multipart, 413 over the limit, 422 malformed or without the field.
    """
    ctype, params = parse_options_header(request.headers.get("content-type"))
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise ApiError(415, f"send the file as multipart/form-data in a field named '{field}' "
                            f"(curl -F {field}=@FILE).")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
        raise ApiError(413, f"the request is {_mb(int(declared))}, above the {_mb(limit)} upload limit.")
    sink = _Collector(field, limit, folder, knob)
    callbacks = {k: getattr(sink, k) for k in ("on_part_begin", "on_part_data", "on_part_end", "on_header_field",
                                                "on_header_value", "on_header_end", "on_headers_finished")}
    total = 0
    try:
        parser = MultipartParser(params[b"boundary"], callbacks)      # type: ignore[arg-type]
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit + FORM_OVERHEAD:
                raise ApiError(413, f"the request is above the {_mb(limit)} upload limit.")
            parser.write(chunk)
        parser.finalize()
    except (FormParserError, ValueError) as exc:
        raise ApiError(422, f"the multipart body is malformed ({type(exc).__name__}).") from None
    finally:
        sink.close()
    if sink.upload is None or (sink.upload.data is None and sink.upload.path is None):
        raise ApiError(422, f"no file in the form field '{field}' (curl -F {field}=@FILE).")
    return sink.upload


def check_image_type(upload: Upload) -> None:
    """Refuse with 415 a file whose name or first bytes say it is not an image type this service reads.

    Files that pass (or carry no telling name) go on to the decoder, whose refusals are 422 with its sentence.
    """
    ext = os.path.splitext(upload.name)[1].lower()
    if ext and ext not in IMAGE_EXTENSIONS:
        raise ApiError(415, f"{upload.name}: '{ext}' files are not accepted; send a {_FORMATS} image.")
    kind = sniff_type(upload.data or b"")
    if kind in NOT_IMAGES:
        raise ApiError(415, f"{upload.name}: the file is {kind}, not an image this service reads ({_FORMATS}).")


__all__ = ["FORM_OVERHEAD", "NOT_IMAGES", "Upload", "check_image_type", "display_name", "read_upload"]
