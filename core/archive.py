"""One safety policy for members of untrusted zip archives (a checkpoint bundle, an evaluation zip).

Every member gets exactly one verdict before a byte of it is read:

* ``ok``: a regular file with a clean relative name, within the size limits;
* ``ignored``: macOS metadata (``__MACOSX/…`` folders, AppleDouble ``._name`` files) and folder entries, which a
  user never means as content;
* ``refused``: an unsafe name (absolute, ``..``, a drive letter or UNC path, control characters, a component over
  255 bytes), a symbolic link or other non-regular entry, an encrypted member, a duplicate name, or a member over
  the size limits (per member, compression ratio, whole archive; see :mod:`core.settings`).

Nothing is extracted by name: callers stream a checked member into a file or buffer they chose, through
:func:`copy_member`, which stops at the limit even when the member's header lies about its size. A leaf module:
it imports only :mod:`core.settings` and :mod:`core.errors`, so every layer can use it.
"""
from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core import settings
from core.errors import DeepfakeLensError

RATIO_MIN_BYTES = 1 << 20      # small members may compress very well (flat images, zeros); only big ones are checked
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_CHUNK = 1 << 20


class ArchiveError(DeepfakeLensError, ValueError):
    """An archive cannot be used at all (unreadable, too many members) or a member overran its limit."""


@dataclass(frozen=True)
class Member:
    """The verdict on one archive entry.

    Attributes:
        name: the clean ``/``-separated path when the name is safe, else a printable form of the raw name.
        status: ``ok``, ``ignored`` or ``refused``.
        reason: why it is ignored or refused (empty when ok).
        info: the zip entry (pass it to :func:`copy_member`).
    """

    name: str
    status: str
    reason: str
    info: zipfile.ZipInfo

    @property
    def ok(self) -> bool:
        """True when the member may be read."""
        return self.status == "ok"


def clean_name(raw: str) -> tuple[str | None, str]:
    """An untrusted member name → (clean relative ``/`` path, "") or (None, why it is refused).

    Backslashes count as separators and ``.`` components are dropped; everything else unsafe is refused, never
    repaired.

    Example:
        >>> clean_name("models\\\\NPR/./weights/best.pt")
        ('models/NPR/weights/best.pt', '')
        >>> clean_name("../../etc/passwd")
        (None, 'path traversal (..) in the name')
    """
    if not isinstance(raw, str) or not raw:
        return None, "empty name"
    if _CONTROL.search(raw):
        return None, "control characters in the name"
    text = raw.replace("\\", "/")
    if text.startswith("/") or _DRIVE.match(text):
        return None, "absolute path in the name"
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "path traversal (..) in the name"
    if not parts:
        return None, "empty name"
    if any(len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts):
        return None, "a name component is longer than 255 bytes"
    return "/".join(parts), ""


def printable(raw: str) -> str:
    """A raw (possibly hostile) name made safe to print in one line: control characters escaped, length capped."""
    shown = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(raw))
    return shown if len(shown) <= 200 else shown[:199] + "…"


def is_metadata(clean: str) -> bool:
    """True for macOS archive litter: anything under ``__MACOSX/``, AppleDouble ``._name`` files, ``.DS_Store``."""
    parts = clean.split("/")
    return "__MACOSX" in parts[:-1] or parts[-1].startswith("._") or parts[-1] == ".DS_Store"


def _entry_problem(info: zipfile.ZipInfo, max_member_bytes: int) -> str:
    """Why a member with a clean name must not be read ("" when it may)."""
    mode = (info.external_attr >> 16) & 0o170000
    if mode == stat.S_IFLNK:
        return "symbolic link (never followed)"
    if mode not in (0, stat.S_IFREG):
        return "not a regular file"
    if info.flag_bits & 0x1:
        return "encrypted member"
    if info.file_size > max_member_bytes:
        return f"expands to {info.file_size / 1e6:.1f} MB, above the {max_member_bytes / 1e6:.1f} MB limit"
    if info.file_size > RATIO_MIN_BYTES and info.file_size > settings.max_ratio() * max(info.compress_size, 1):
        return (f"suspicious compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 (zip bomb?), "
                f"above the {settings.max_ratio():.0f}:1 limit")
    return ""


def check_members(infos: Iterable[zipfile.ZipInfo], *, max_member_bytes: int) -> list[Member]:
    """Give every entry of an archive its verdict, in archive order (folder entries are ignored).

    Args:
        infos: the archive's entries (``ZipFile.infolist()``).
        max_member_bytes: the largest member the caller accepts (an image, a checkpoint).

    Returns:
        One :class:`Member` per entry; the members that are ``ok`` together stay within
        ``settings.max_archive_bytes()``.
    """
    out: list[Member] = []
    seen: set[str] = set()
    total = 0
    for info in infos:
        clean, why = clean_name(info.filename)
        if clean is None:
            out.append(Member(printable(info.filename), "refused", f"unsafe name: {why}", info))
            continue
        if info.is_dir() or is_metadata(clean):
            out.append(Member(clean, "ignored", "folder" if info.is_dir() else "macOS metadata", info))
            continue
        problem = _entry_problem(info, max_member_bytes)
        if not problem and clean in seen:
            problem = "duplicate name in the archive (the first one is used)"
        if not problem and total + info.file_size > settings.max_archive_bytes():
            problem = (f"the archive expands beyond {settings.max_archive_bytes() / 1e9:.1f} GB (zip bomb?); "
                       "later members are not read")
        seen.add(clean)
        if problem:
            out.append(Member(clean, "refused", problem, info))
        else:
            total += info.file_size
            out.append(Member(clean, "ok", "", info))
    return out


def open_zip(src: str | Path | BinaryIO, shown: str) -> zipfile.ZipFile:
    """Open a zip for reading, with one sentence when it is not one and when it has too many entries.

    Args:
        src: a path or a binary file object.
        shown: the name to use in messages (the user's file name, never a temporary path).

    Raises:
        ArchiveError: not a readable zip, or more entries than ``settings.max_files()``.
    """
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ArchiveError(f"{shown}: not a readable zip file ({exc}).") from None
    if len(zf.infolist()) > settings.max_files():
        zf.close()
        raise ArchiveError(f"{shown}: the archive holds {len(zf.infolist())} entries, above the limit of "
                           f"{settings.max_files()} (DEEPFAKE_LENS_MAX_FILES).")
    return zf


def copy_member(zf: zipfile.ZipFile, member: Member, out: BinaryIO, limit: int, shown: str) -> int:
    """Stream one checked member into ``out``, stopping at ``limit`` bytes whatever its header claims.

    Args:
        zf: the open archive.
        member: an ``ok`` member of it.
        out: where the bytes go.
        limit: the most bytes accepted.
        shown: the archive's name for messages.

    Returns:
        The number of bytes written.

    Raises:
        ArchiveError: the member is not ``ok``, expands beyond ``limit``, or is damaged (CRC, truncation).
    """
    if not member.ok:
        raise ArchiveError(f"{shown}: member {member.name} cannot be read ({member.reason}).")
    done = 0
    try:
        with zf.open(member.info) as inp:
            for chunk in iter(lambda: inp.read(_CHUNK), b""):
                done += len(chunk)
                if done > limit:
                    raise ArchiveError(f"{shown}: member {member.name} expands beyond the {limit / 1e6:.1f} MB "
                                       "limit.")
                out.write(chunk)
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"{shown}: member {member.name} is damaged and cannot be read ({exc}).") from None
    return done


__all__ = ["ArchiveError", "Member", "RATIO_MIN_BYTES", "check_members", "clean_name", "copy_member", "is_metadata",
           "open_zip", "printable"]
