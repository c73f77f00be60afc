"""What the file declares about its origin: XMP (CreatorTool, DigitalSourceType), IPTC IIM, PNG/GIF text chunks.

Every byte here comes from the file, so every reader is bounded: XMP is parsed by a real XML parser (defusedxml:
no DTD, no entities) under size, depth and count limits, PNG chunks are walked without decoding pixels, and
compressed text is inflated only up to a limit. Whatever exceeds a limit or is malformed is reported in one
sentence ("XMP could not be parsed"), never a traceback, and costs at most linear time.
"""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse
from PIL import Image, IptcImagePlugin

from core.forensics.common import _text
from core.forensics.sourcetypes import SourceType, digital_source_types

XMP_MAX_BYTES = 2 * 1024 ** 2     # per packet (a JPEG's main XMP is ≤ 64 KB; extended XMP is larger)
XMP_MAX_PACKETS = 8
XMP_MAX_DEPTH = 64                # real XMP nests about ten levels
XMP_MAX_VALUES = 20_000           # attributes + text nodes per packet
TEXT_MAX_BYTES = 4 * 1024 ** 2    # one PNG text chunk, after decompression
TEXT_MAX_CHUNKS = 256
XMP_UNPARSED = (f"XMP could not be parsed: it is malformed or exceeds the reader's limits ({XMP_MAX_BYTES // 1024 ** 2}"
                f" MB per packet, {XMP_MAX_DEPTH} levels of nesting, {XMP_MAX_VALUES:,} values), so its fields "
                "are not used.")
_XMP_OPEN, _XMP_CLOSE = b"<x:xmpmeta", b"</x:xmpmeta>"
_XMP_KEYS = ("XML:com.adobe.xmp",)

# Tool names that only generators write (matched case-insensitively in Software / CreatorTool / PNG text).
_GENERATOR_NAMES = ("midjourney", "dall-e", "dall·e", "dalle", "stable diffusion", "stablediffusion", "comfyui",
                    "automatic1111", "invokeai", "novelai", "adobe firefly", "firefly", "imagen", "leonardo.ai",
                    "ideogram", "flux", "gpt-4o", "chatgpt", "bing image creator", "nightcafe", "craiyon",
                    "dreamstudio", "fooocus")
_PNG_GENERATOR_KEYS = {"parameters": "Stable Diffusion web UI (AUTOMATIC1111/Forge) generation parameters",
                       "prompt": "ComfyUI prompt graph", "workflow": "ComfyUI workflow",
                       "invokeai_metadata": "InvokeAI metadata", "sd-metadata": "InvokeAI metadata",
                       "dream": "InvokeAI (Dream) prompt", "fooocus_scheme": "Fooocus metadata"}



@dataclass(frozen=True)
class ProvenanceInfo:
    """XMP, IPTC and text-chunk provenance hints."""

    xmp_present: bool
    creator_tool: str | None
    digital_source_types: tuple[SourceType, ...]
    iptc: tuple[tuple[str, str], ...]                # IPTC IIM (APP13) fields present
    text_chunks: tuple[tuple[str, str], ...]         # PNG/GIF text entries (value shortened)
    generator_hints: tuple[str, ...]                 # sentences: traces that name a generator
    xmp_error: str | None = None                     # one sentence when an XMP packet could not be parsed
    xmp_fields: tuple[tuple[str, str], ...] = ()     # (property, value) of the parsed XMP (first 200, shortened)

    @property
    def flagged(self) -> tuple[SourceType, ...]:
        """Source types that declare generative-AI or synthetic content."""
        return tuple(s for s in self.digital_source_types if s.generated)

    def to_dict(self) -> dict[str, Any]:
        return {"xmp_present": self.xmp_present, "creator_tool": self.creator_tool,
                "digital_source_types": [s.to_dict() for s in self.digital_source_types],
                "iptc": [list(f) for f in self.iptc], "text_chunks": [list(f) for f in self.text_chunks],
                "generator_hints": list(self.generator_hints), "xmp_error": self.xmp_error,
                "xmp_fields": [list(f) for f in self.xmp_fields]}


# ----------------------------------------------------------------------------------------------- PNG chunks

@dataclass(frozen=True)
class PngExtras:
    """Text chunks (tEXt, zTXt, iTXt) and the eXIf payload of a PNG, read from the chunk list alone."""

    texts: tuple[tuple[str, str], ...] = ()
    exif: bytes | None = None


def _inflate(raw: bytes) -> str | None:
    d = zlib.decompressobj()
    try:
        out = d.decompress(raw, TEXT_MAX_BYTES)
    except zlib.error:
        return None
    return None if d.unconsumed_tail else out.decode("utf-8", "replace")


def _png_text(kind: bytes, body: bytes) -> tuple[str, str | None]:
    key, _, rest = body.partition(b"\x00")
    name = key.decode("latin-1", "replace")
    if kind == b"tEXt":
        return name, rest.decode("latin-1", "replace")
    if kind == b"zTXt":
        return name, _inflate(rest[1:])
    if len(rest) < 2:                                    # iTXt: flag, method, language\0, translated key\0, text
        return name, None
    flag, tail = rest[0], rest[2:]
    parts = tail.split(b"\x00", 2)
    text = parts[2] if len(parts) == 3 else b""
    return name, (_inflate(text) if flag else text.decode("utf-8", "replace"))


def png_extras(data: bytes) -> PngExtras:
    """Walk a PNG's chunks (pixel data is skipped, never inflated) for text and EXIF, wherever they are.

    Pillow only sees text written after the image data by decoding the whole image (for APNG: every frame).
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PngExtras()
    texts: list[tuple[str, str]] = []
    exif, pos = None, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body_end = pos + 8 + length
        if kind == b"IEND" or body_end > len(data):
            break
        if kind in (b"tEXt", b"zTXt", b"iTXt") and len(texts) < TEXT_MAX_CHUNKS and length <= TEXT_MAX_BYTES:
            name, value = _png_text(kind, data[pos + 8:body_end])
            texts.append((name, value if value is not None else "<compressed text that could not be read "
                                                                 "within the limits>"))
        elif kind == b"eXIf" and exif is None:
            exif = data[pos + 8:body_end]
        pos = body_end + 4                                # skip the CRC
    return PngExtras(tuple(texts), exif)


# ----------------------------------------------------------------------------------------------- XMP

def _raw_packets(data: bytes) -> list[bytes]:
    """``<x:xmpmeta …>…</x:xmpmeta>`` spans in the raw bytes, found in one linear pass (no regex backtracking)."""
    out, pos = [], 0
    while len(out) < XMP_MAX_PACKETS:
        start = data.find(_XMP_OPEN, pos)
        if start < 0:
            break
        end = data.find(_XMP_CLOSE, start)
        if end < 0:
            break
        pos = end + len(_XMP_CLOSE)
        out.append(data[start:pos])
    return out


def _as_bytes(v: Any) -> bytes:
    return bytes(v) if isinstance(v, (bytes, bytearray)) else str(v).encode("utf-8", "replace")


def xmp_packets(image: Image.Image, data: bytes, png: PngExtras | None = None) -> list[bytes]:
    """Every XMP packet of the file: what Pillow surfaces (JPEG APP1, WebP, TIFF tag 700), PNG iTXt, raw scan."""
    found = [_as_bytes(image.info["xmp"])] if image.info.get("xmp") else []
    tiff = image.tag_v2.get(700) if hasattr(image, "tag_v2") else None
    if tiff:
        found.append(_as_bytes(tiff))
    found += [_as_bytes(v) for k, v in (png.texts if png else ()) if k in _XMP_KEYS]
    for raw in _raw_packets(data):                       # formats Pillow does not surface, extended XMP
        if not any(raw in p for p in found):
            found.append(raw)
    return list(dict.fromkeys(found))[:XMP_MAX_PACKETS]


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def parse_xmp(packet: bytes) -> list[tuple[str, str]] | None:
    """(property, value) for every attribute and text node of one packet; None when malformed or over a limit."""
    packet = packet.strip(b"\x00 \t\r\n")
    if len(packet) > XMP_MAX_BYTES:
        return None
    values: list[tuple[str, str]] = []
    depth = 0
    try:
        for event, elem in iterparse(io.BytesIO(packet), events=("start", "end"), forbid_dtd=True):
            if event == "start":
                depth += 1
                values += [(_local(k), v) for k, v in elem.attrib.items()]
            else:
                depth -= 1
                if elem.text and elem.text.strip():
                    values.append((_local(elem.tag), elem.text.strip()))
                elem.clear()                              # keeps memory flat on long packets
            if depth > XMP_MAX_DEPTH or len(values) > XMP_MAX_VALUES:
                return None
    except (ParseError, DefusedXmlException, ValueError, UnicodeError, RecursionError, MemoryError):
        return None
    return values


# ----------------------------------------------------------------------------------------------- IPTC

_IPTC_NAMES = {(2, 5): "Object name", (2, 25): "Keywords", (2, 55): "Date created", (2, 60): "Time created",
               (2, 65): "Originating program", (2, 70): "Program version", (2, 80): "By-line",
               (2, 85): "By-line title", (2, 90): "City", (2, 101): "Country", (2, 105): "Headline",
               (2, 110): "Credit", (2, 115): "Source", (2, 116): "Copyright notice", (2, 120): "Caption",
               (2, 122): "Caption writer"}


def _iptc(image: Image.Image) -> tuple[tuple[str, str], ...]:
    try:
        info = IptcImagePlugin.getiptcinfo(image) or {}
    except Exception:  # noqa: BLE001 - malformed IPTC is ignored
        return ()
    out = []
    for key, value in sorted(info.items()):
        values = value if isinstance(value, list) else [value]
        text = _text("; ".join(_text(v) for v in values[:100]), 2000)   # 10 000 keywords stay one bounded cell
        out.append((_IPTC_NAMES.get(key, f"IPTC {key[0]}:{key[1]}"), text))
    return tuple(out)


# ----------------------------------------------------------------------------------------------- everything

def _generator_hints(texts: list[tuple[str, str]], named: list[tuple[str, str | None]]) -> list[str]:
    hints = [f"PNG text chunk '{_text(k, 80)}': looks like {_PNG_GENERATOR_KEYS[k.lower()]}."
             for k, _ in texts if k.lower() in _PNG_GENERATOR_KEYS]
    for where, value in named:
        low = (value or "").lower()
        if any(g in low for g in _GENERATOR_NAMES):
            hints.append(f"{where} names a generator: '{_text(value, 80)}'.")
    return list(dict.fromkeys(hints))


def _text_items(image: Image.Image, png: PngExtras | None) -> list[tuple[str, str]]:
    items = list(png.texts) if png else []
    if image.format == "GIF" and image.info.get("comment"):
        items.append(("comment", image.info["comment"]))
    return [(_text(k, 80), _text(v, 300)) for k, v in items if k not in _XMP_KEYS]


def read_provenance(image: Image.Image, data: bytes, exif: Any = None) -> ProvenanceInfo:
    """XMP (DigitalSourceType, CreatorTool), IPTC IIM, PNG/GIF text chunks and generator name hints.

    Args:
        image: the file as opened by Pillow (not decoded).
        data: the file's bytes.
        exif: the file's :class:`core.forensics.metadata.ExifInfo` (its Software is checked for generator names).
    """
    png = png_extras(data) if image.format == "PNG" else None
    packets = xmp_packets(image, data, png)
    parsed = [parse_xmp(p) for p in packets]
    values = [kv for p in parsed if p for kv in p]
    dst = digital_source_types(" ".join(v for _, v in values if "digitalsourcetype/" in v), "XMP")
    creator = next((_text(v) for k, v in values if k == "CreatorTool"), None)
    iptc = _iptc(image)
    texts = _text_items(image, png)
    named = [("EXIF Software", getattr(exif, "software", None)), ("XMP CreatorTool", creator)]
    named += [(f"PNG text '{k}'", v) for k, v in texts if k.lower() in ("software", "source", "comment", "title",
                                                                        "description", "generator")]
    named += [(f"IPTC {k}", v) for k, v in iptc if k in ("Originating program", "Credit", "Source")]
    return ProvenanceInfo(bool(packets), creator, dst, iptc, tuple(texts), tuple(_generator_hints(texts, named)),
                          XMP_UNPARSED if any(p is None for p in parsed) else None,
                          tuple((k, _text(v)) for k, v in values[:200]))


__all__ = ["ProvenanceInfo", "PngExtras", "png_extras", "xmp_packets", "parse_xmp", "read_provenance",
           "XMP_UNPARSED"]
