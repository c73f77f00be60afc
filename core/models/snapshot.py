"""An immutable, hashed in-memory snapshot of a checkpoint file, and a first look at what kind of file it is.

Why a snapshot: loading through an mmap of the user's file dies with SIGBUS when another process truncates it, and
reading it twice (once to hash, once to load) can build a model from one file and record another's sha256. The file
is read once, hashed while it is read, into a sealed anonymous memory file (``memfd``) that nobody else can change;
torch then maps that private copy, so peak memory stays about one copy of the checkpoint.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import mmap
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from core import settings
from core.errors import WeightsCorrupt

CHUNK = 1 << 20
APPLEDOUBLE_MAGIC = b"\x00\x05\x16\x07"


@dataclass
class Snapshot:
    """The bytes of one checkpoint as they were when read, with their digest.

    Attributes:
        name: what the user calls the file (used in every message; never a temp path).
        size: bytes.
        sha256: hex digest of exactly these bytes.
        fd: a sealed anonymous memory file holding the bytes (Linux), or -1.
        data: a read-only view of the bytes.
    """

    name: str
    size: int
    sha256: str
    fd: int
    data: memoryview
    git_blob_sha1: str | None = None
    _keep: object = field(default=None, repr=False)

    def path(self) -> str:
        """A path that opens these exact bytes (the memfd through /proc), or "" where there is none."""
        return f"/proc/self/fd/{self.fd}" if self.fd >= 0 else ""

    def stream(self) -> BinaryIO:
        """A new file object over the bytes (close it after use): the sealed memfd itself, so nothing is copied; a
        copy in memory only on systems without memfd."""
        return open(self.path(), "rb") if self.fd >= 0 else io.BytesIO(self.data)

    def close(self) -> None:
        """Release the snapshot (tensors already mapped from it stay valid)."""
        try:
            self.data.release()
        except (BufferError, ValueError):
            pass
        if isinstance(self._keep, mmap.mmap):
            try:
                self._keep.close()
            except BufferError:
                pass                     # a tensor still views it; the mapping lives until that tensor dies
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_snapshot(path: str | Path, detector: str = "checkpoint", *, name: str | None = None,
                  want_blob: bool = False) -> Snapshot:
    """Read a file once into a private sealed copy, hashing the bytes as they are read.

    Args:
        path: the file.
        detector: detector id for messages.
        name: the name to show the user (default: the path).
        want_blob: also compute git's blob id of the bytes (for checkpoints published with only that).

    Raises:
        WeightsCorrupt: unreadable, over the size limit, or changed while it was being read.
    """
    shown = name or str(path)
    try:
        fd_in = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise WeightsCorrupt(detector, f"cannot read checkpoint {shown} ({exc.strerror}).", path=shown) from None
    try:
        before = os.fstat(fd_in)
        if before.st_size > settings.max_checkpoint_bytes():
            raise WeightsCorrupt(detector, f"checkpoint {shown} ({before.st_size:,} bytes) is larger than the "
                                           "checkpoint size limit (DEEPFAKE_LENS_MAX_CHECKPOINT_BYTES).", path=shown)
        return _copy_hashed(fd_in, before, detector, shown, want_blob)
    finally:
        os.close(fd_in)


def _changed(detector: str, shown: str) -> WeightsCorrupt:
    return WeightsCorrupt(detector, f"checkpoint {shown} changed while it was being read (another program is "
                                    "writing or replacing it); nothing was loaded. Try again once it is complete.",
                          path=shown)


def _copy_hashed(fd_in: int, before: os.stat_result, detector: str, shown: str, want_blob: bool) -> Snapshot:
    size = before.st_size
    h = hashlib.sha256()
    blob = hashlib.sha1(f"blob {size}\0".encode()) if want_blob else None
    memfd = os.memfd_create("dl-checkpoint", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING) \
        if hasattr(os, "memfd_create") else -1
    buf = bytearray(size) if memfd < 0 else None
    done = 0
    try:
        if memfd >= 0:
            os.ftruncate(memfd, size)
        while done < size:
            chunk = os.read(fd_in, min(CHUNK, size - done))
            if not chunk:
                raise _changed(detector, shown)        # the file shrank under us
            h.update(chunk)
            if blob is not None:
                blob.update(chunk)
            if buf is not None:
                buf[done:done + len(chunk)] = chunk
            else:
                os.pwrite(memfd, chunk, done)
            done += len(chunk)
        if os.read(fd_in, 1) or _stat_key(os.fstat(fd_in)) != _stat_key(before):
            raise _changed(detector, shown)
    except OSError as exc:
        if memfd >= 0:
            os.close(memfd)
        raise WeightsCorrupt(detector, f"cannot read checkpoint {shown} ({exc.strerror}).", path=shown) from None
    except WeightsCorrupt:
        if memfd >= 0:
            os.close(memfd)
        raise
    blob_hex = blob.hexdigest() if blob is not None else None
    if buf is not None:
        return Snapshot(shown, size, h.hexdigest(), -1, memoryview(bytes(buf)), blob_hex)
    seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
    fcntl.fcntl(memfd, fcntl.F_ADD_SEALS, seals)
    if size == 0:
        return Snapshot(shown, 0, h.hexdigest(), memfd, memoryview(b""), blob_hex)
    mm = mmap.mmap(memfd, size, prot=mmap.PROT_READ)
    return Snapshot(shown, size, h.hexdigest(), memfd, memoryview(mm), blob_hex, mm)


# --------------------------------------------------------------------------------------------- sniffing

def sniff(snap: Snapshot, detector: str) -> str:
    """What kind of file this is, from its first bytes: ``zip`` | ``torchscript`` | ``pickle`` | ``safetensors``
    (or ``pickle0``: maybe a text-protocol pickle, which is only scanned).

    Every other kind raises one accurate sentence with the fix (empty, Git-LFS pointer, HTML page, macOS ``._``
    file, a zip that is not a torch archive, unknown bytes).

    Raises:
        WeightsCorrupt
    """
    name, head = snap.name, bytes(snap.data[:512])

    def bad(why: str, fix: str) -> WeightsCorrupt:
        return WeightsCorrupt(detector, f"checkpoint {name} {why}", path=name, how_to_fix=fix)

    if snap.size == 0:
        raise bad("is empty (0 bytes): the download or copy did not complete.", "Get the file again.")
    apple = bad("is a macOS metadata file (an AppleDouble '._' file created when copying to a non-Mac disk), "
                "not a checkpoint.", "Use the file of the same name without the '._' prefix.")
    if head.startswith(APPLEDOUBLE_MAGIC):
        raise apple
    if head.startswith(b"version https://git-lfs"):
        raise bad(f"is a Git LFS pointer ({snap.size} bytes of text), not the checkpoint itself: the repository "
                  "was cloned without fetching its large files.",
                  "Run `git lfs pull` in that clone (or download the file itself) and import the real file.")
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in low[:200]:
        raise bad("is an HTML web page, not a checkpoint (typically a Google Drive quota, virus-scan or sign-in "
                  "page saved instead of the file).",
                  "Open the link in a browser, download the file itself, and import that.")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(snap, bad)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if snap.size >= 10:
        (n,) = struct.unpack("<Q", head[:8])
        if 2 <= n <= snap.size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:1] in _TEXT_PICKLE_STARTS:
        return "pickle0"                  # maybe a text-protocol pickle: scanned, so one that names code is refused
    if Path(name).name.startswith("._"):  # an AppleDouble file without its magic (damaged): still say what it is
        raise apple
    raise unknown_format(detector, name)


# first opcode of a protocol 0/1 pickle: MARK, GLOBAL, EMPTY_DICT, EMPTY_LIST, EMPTY_TUPLE
_TEXT_PICKLE_STARTS = (b"(", b"c", b"}", b"]", b")")


def unknown_format(detector: str, name: str) -> WeightsCorrupt:
    """The sentence for bytes that match no checkpoint format."""
    return WeightsCorrupt(detector, f"checkpoint {name} is not a PyTorch or safetensors checkpoint: its first bytes "
                                    "match no known format (random or damaged data, or another kind of file).",
                          path=name, how_to_fix="Check that you picked the right file, or get it again.")


def _zip_kind(snap: Snapshot, bad) -> str:
    try:
        with snap.stream() as f, zipfile.ZipFile(f) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise bad(f"is a damaged or truncated zip archive ({exc}).", "Get the file again.") from None
    pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
    if not pkl:
        some = ", ".join(names[:3]) or "nothing"
        raise bad(f"is a zip archive but not a PyTorch checkpoint (it holds {some}…).",
                  "If it is the Truebees bundle, import it as a bundle (`python -m core weights import BUNDLE.zip`); "
                  "otherwise extract the checkpoint from it first.")
    prefix = min(pkl, key=len)[: -len("data.pkl")]
    if f"{prefix}constants.pkl" in names and any(n.startswith(f"{prefix}code/") for n in names):
        return "torchscript"
    return "zip"
