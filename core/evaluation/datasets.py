"""Labelled evaluation inputs: a folder, a zip, uploaded files, a labels CSV, or the bundled examples.

Every file the user gave becomes exactly one :class:`Item` (the row count out always equals the file count in).
Files that must not be scored are kept as rows with a status and a reason: ``unlabelled`` (no label could be
derived), ``skipped`` (unsafe or not an image: path traversal, absolute path, symlink, zip-bomb-like member,
non-image, duplicate name, encrypted, too large) or ``error`` (could not be read).

Nothing is ever extracted to disk: zip members and uploads are read into memory one at a time when scored, and
user-supplied names are only ever used as labels, never as paths.

Labels come from folder names (case-, space- and dash-insensitive): ``real``/``fake``, the ForenSynths layout
``0_real``/``1_fake``, GenImage's ``nature``/``ai`` and a few synonyms. The deepest such folder wins; the other
folders of the path (e.g. the generator ``progan/airplane`` or ``fake/stylegan``) become the item's ``group``.
"""
from __future__ import annotations

import io
import os
import stat
import threading
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from core import archive, settings
from core.io import IMAGE_EXTENSIONS
from core.evaluation.items import STATUSES, Dataset, Item, with_status
from core.evaluation.labels import (
    CONTROL_CHARS,
    FAKE_NAMES,
    ID_COLUMNS,
    LABEL_COLUMNS,
    REAL_NAMES,
    DatasetError,
    find_column,
    label_from_name,
    labels_from_csv,
    norm_folder,
    parse_label,
    read_csv_rows,
    sanitize_name,
    unique_basenames,
)

__all__ = ["Item", "Dataset", "DatasetError", "from_folder", "from_zip", "from_uploads", "from_labels_csv",
           "from_examples", "from_path", "sanitize_name", "label_from_name", "parse_label", "IMAGE_EXTENSIONS",
           "STATUSES", "read_csv_rows", "labels_from_csv", "find_column", "with_status"]



def _is_image_name(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_EXTENSIONS


def _strip_common_root(paths: list[str]) -> int:
    """How many leading folders all paths share that carry no label (the upload's own top folder, a zip's root)."""
    split = [p.split("/")[:-1] for p in paths]
    if not split:
        return 0
    k = 0
    while all(len(s) > k for s in split) and len({s[k] for s in split}) == 1:
        norm = norm_folder(split[0][k])
        if norm in REAL_NAMES or norm in FAKE_NAMES:
            break
        k += 1
    return k


def _labelled(entries: list[tuple[str, str | None, int, str, str]]) -> list[Item]:
    """Build items from (clean path or raw name, ref, size, status, reason), deriving labels for the ok ones."""
    ok_paths = [p for p, _, _, s, _ in entries if s == "ok"]
    k = _strip_common_root(ok_paths)
    items = []
    for path, ref, size, status, reason in entries:
        if status != "ok":
            items.append(Item(path, None, "", status, reason, None, size))
            continue
        parts = path.split("/")
        rel = "/".join(parts[k:]) if len(parts) > k else path
        label, group = label_from_name(rel)
        if label is None:
            items.append(Item(path, None, group, "unlabelled",
                              "no real/fake folder in its path (expected e.g. real/, fake/, 0_real/, 1_fake/)",
                              ref, size))
        else:
            items.append(Item(path, label, group, "ok", "", ref, size))
    return items


def _check_count(n: int, what: str) -> None:
    if n > settings.max_files():
        raise DatasetError(f"{what} holds {n} files, above the limit of {settings.max_files()} "
                           "(set DEEPFAKE_LENS_MAX_FILES to raise it).")


# --------------------------------------------------------------------------------------------- folder on disk

def _read_file_nofollow(path: str) -> bytes:
    """Read a regular file without following a symlink that may have appeared since listing."""
    # O_NONBLOCK: opening a FIFO that replaced the file must not block waiting for a writer
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > settings.max_bytes():
            raise ValueError(f"the file is {st.st_size / 1e6:.0f} MB, above the {settings.max_bytes() / 1e6:.0f} MB limit")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(settings.max_bytes() + 1)
    finally:
        os.close(fd)


def _printable(name: str) -> str:
    """``name`` with undecodable bytes (surrogate escapes from the file system) replaced by U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def from_folder(root: str | Path, *, name: str | None = None) -> Dataset:
    """Every file under a folder on this machine, one row each (symlinks are reported, never followed; files in
    hidden folders such as ``.git`` get a ``skipped`` row and are never read).

    Raises:
        DatasetError: the folder does not exist, is not a folder, or holds too many files.
    """
    base = Path(root).expanduser()
    if not base.exists():
        raise DatasetError(f"{base}: folder not found.")
    if not base.is_dir():
        raise DatasetError(f"{base}: not a folder.")
    entries: list[tuple[str, str | None, int, str, str]] = []
    hidden: list[str] = []
    base_s = os.fspath(base.resolve())
    for dirpath, dirnames, filenames in os.walk(base_s, followlinks=False):
        rel_dir = os.path.relpath(dirpath, base_s)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        keep = []
        for d in sorted(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                entries.append((rel_dir + d, None, 0, "skipped", "symbolic link (not followed)"))
            else:
                keep.append(d)
        dirnames[:] = keep
        # files inside hidden folders (.git, .cache, __MACOSX) still get their row, as skipped
        hidden_in = next((p for p in rel_dir.split("/") if p.startswith(".") or p == "__MACOSX"), None)
        if hidden_in is not None and hidden_in not in hidden:
            hidden.append(hidden_in)
        for f in sorted(filenames):
            rel = rel_dir + f
            full = os.path.join(dirpath, f)
            try:
                st = os.lstat(full)
            except OSError as exc:
                entries.append((rel, None, 0, "error", f"cannot be read ({exc.strerror})"))
                continue
            if stat.S_ISLNK(st.st_mode):
                entries.append((rel, None, 0, "skipped", "symbolic link (not followed)"))
            elif not stat.S_ISREG(st.st_mode):
                entries.append((rel, None, 0, "skipped", "not a regular file"))
            elif hidden_in is not None:
                entries.append((rel, None, st.st_size, "skipped", f"inside the hidden folder {hidden_in}/"))
            elif f.startswith("."):
                entries.append((rel, None, st.st_size, "skipped", "hidden file"))
            elif not _is_image_name(f):
                entries.append((rel, None, st.st_size, "skipped", f"not an image file ({Path(f).suffix or 'no extension'})"))
            elif st.st_size > settings.max_bytes():
                entries.append((rel, None, st.st_size, "skipped", f"larger than {settings.max_bytes() / 1e6:.0f} MB"))
            else:
                entries.append((rel, full, st.st_size, "ok", ""))
        _check_count(len(entries), str(base))
    # A name that is not valid UTF-8 (a Latin-1 file system, a hostile archive unpacked) keeps its real bytes
    # for reading (ref) but is shown, labelled and written to CSV with U+FFFD in place of the bad bytes.
    entries = [(_printable(p), ref, size, status, reason) for p, ref, size, status, reason in entries]
    notes = tuple(f"files inside the hidden folder {_printable(h)}/ were listed but not scored" for h in hidden)
    return Dataset(name or base.name or str(base), "folder", tuple(_labelled(entries)), notes,
                   reader=_read_file_nofollow)


# --------------------------------------------------------------------------------------------- zip

def _zip_checks(infos: list[zipfile.ZipInfo]) -> tuple[list[tuple[str, str | None, int, str, str]], list[str]]:
    """One entry per archive file, from the shared zip-member policy (core.archive) plus the image-type check."""
    entries: list[tuple[str, str | None, int, str, str]] = []
    index = {id(info): i for i, info in enumerate(infos)}
    for m in archive.check_members(infos, max_member_bytes=settings.max_bytes()):
        info = m.info
        if info.is_dir():
            continue
        if m.status == "ignored":
            entries.append((m.name, None, info.file_size, "skipped", "hidden or macOS metadata file"))
        elif m.status == "refused":
            entries.append((m.name, None, info.file_size, "skipped", m.reason))
        elif PurePosixPath(m.name).name.startswith("."):
            entries.append((m.name, None, info.file_size, "skipped", "hidden or macOS metadata file"))
        elif not _is_image_name(m.name):
            entries.append((m.name, None, info.file_size, "skipped",
                            f"not an image file ({PurePosixPath(m.name).suffix or 'no extension'})"))
        else:
            entries.append((m.name, str(index[id(info)]), info.file_size, "ok", ""))
    notes = []
    if any(e[3] == "skipped" and "zip bomb" in e[4] for e in entries):
        notes.append("some members were refused by the zip-bomb limits (size and compression ratio)")
    return entries, notes


def from_zip(src: str | Path | bytes, *, name: str | None = None) -> Dataset:
    """Every member of a zip archive, read in memory only when scored (nothing is extracted to disk).

    Args:
        src: a path to a zip on this machine, or the zip's bytes (an upload).
        name: display name.

    Raises:
        DatasetError: not a readable zip, or too many members.
    """
    try:
        if isinstance(src, (bytes, bytearray, memoryview)):
            zf = zipfile.ZipFile(io.BytesIO(bytes(src)))
            shown = name or "uploaded zip"
        else:
            p = Path(src).expanduser()
            if not p.is_file():
                raise DatasetError(f"{p}: file not found.")
            zf = zipfile.ZipFile(p)
            shown = name or p.name
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        if isinstance(exc, DatasetError):
            raise
        raise DatasetError(f"{name or src if not isinstance(src, (bytes, bytearray, memoryview)) else 'the upload'}"
                           f": not a readable zip file ({exc}).") from None
    infos = zf.infolist()
    try:
        _check_count(len(infos), shown)
    except DatasetError:
        zf.close()
        raise
    entries, notes = _zip_checks(infos)
    lock = threading.Lock()

    def read(ref: str) -> bytes:
        info = infos[int(ref)]
        with lock:
            # zipfile stops at the declared size and checks the CRC: a member whose header lies cannot expand
            with zf.open(info) as f:
                data = f.read(settings.max_bytes() + 1)
        if len(data) > settings.max_bytes():
            raise ValueError(f"expands beyond the {settings.max_bytes() / 1e6:.0f} MB limit")
        return data

    return Dataset(shown, "zip", tuple(_labelled(entries)), tuple(notes), reader=read, closer=zf.close)


# --------------------------------------------------------------------------------------------- uploads

def from_uploads(files: Mapping[str, bytes] | Iterable[tuple[str, bytes]], *, name: str = "uploaded files",
                 labels: Mapping[str, tuple[int | None, str]] | None = None) -> Dataset:
    """Uploaded files (name → bytes). Names may carry a relative path (a folder upload); they are sanitised and
    only used for labels. A zip among them is not opened (upload it on its own).

    Args:
        files: name → bytes, or (name, bytes) pairs (pairs keep duplicate names, which are then reported).
        name: display name.
        labels: optional clean path (or bare file name) → (label, group) from a labels CSV; files it does not
            list are unlabelled.
    """
    pairs = list(files.items()) if isinstance(files, Mapping) else list(files)
    _check_count(len(pairs), name)
    data: dict[str, bytes] = {}
    entries: list[tuple[str, str | None, int, str, str]] = []
    for i, (raw, content) in enumerate(pairs):
        clean, why = sanitize_name(raw)
        shown = clean or str(raw)[:200]
        size = len(content)
        if clean is None:
            entries.append((shown, None, size, "skipped", f"unsafe name: {why}"))
        elif clean in data:
            entries.append((shown, None, size, "skipped", "duplicate name (first kept)"))
        elif PurePosixPath(clean).name.startswith(".") or clean.split("/")[0] == "__MACOSX":
            entries.append((shown, None, size, "skipped", "hidden or macOS metadata file"))
            data[clean] = b""
        elif not _is_image_name(clean):
            entries.append((shown, None, size, "skipped",
                            f"not an image file ({PurePosixPath(clean).suffix or 'no extension'})"))
            data[clean] = b""
        elif size > settings.max_bytes():
            entries.append((shown, None, size, "skipped", f"larger than {settings.max_bytes() / 1e6:.0f} MB"))
            data[clean] = b""
        else:
            data[clean] = bytes(content)
            entries.append((clean, clean, size, "ok", ""))
    if labels is None:
        items = _labelled(entries)
    else:
        by_base = unique_basenames(labels)
        items = []
        for path, ref, size, status, reason in entries:
            hit = labels.get(path) if status == "ok" else None
            if hit is None and status == "ok":
                hit = by_base.get(PurePosixPath(path).name)
            if status != "ok":
                items.append(Item(path, None, "", status, reason, None, size))
            elif hit is None or hit[0] is None:
                items.append(Item(path, None, hit[1] if hit else "", "unlabelled",
                                  "not listed in the labels CSV" if hit is None else "no label in the labels CSV",
                                  ref, size))
            else:
                items.append(Item(path, hit[0], hit[1], "ok", "", ref, size))
    return Dataset(name, "uploads", tuple(items), (), reader=lambda ref: data[ref])


def from_labels_csv(src: str | Path, *, base: str | Path | None = None, allowed_root: str | Path | None = None,
                    name: str | None = None) -> Dataset:
    """A CSV on this machine listing ``path,label[,group]`` (paths relative to ``base``, default: the CSV's folder).

    Args:
        src: the CSV path.
        base: folder relative paths are resolved against.
        allowed_root: when set, files outside this folder are refused (the app's server-path mode).
        name: display name.

    Raises:
        DatasetError: unreadable CSV, or no path/label column.
    """
    csv_path = Path(src).expanduser()
    rows = read_csv_rows(csv_path)
    cols = list(rows[0]) if rows else []
    id_col, label_col = find_column(cols, ID_COLUMNS), find_column(cols, LABEL_COLUMNS)
    if id_col is None or label_col is None:
        raise DatasetError(f"{csv_path.name}: needs a path column and a label column (found: {', '.join(cols)}).")
    _check_count(len(rows), csv_path.name)
    base_dir = Path(base).expanduser() if base is not None else csv_path.parent
    root = Path(allowed_root).expanduser().resolve() if allowed_root is not None else None
    items: list[Item] = []
    seen: set[str] = set()
    for r in rows:
        shown = r.get(id_col, "")
        label, group = parse_label(r.get(label_col)), r.get("group", "")
        if not shown:
            items.append(Item("(empty path)", None, group, "error", "empty path cell"))
            continue
        if CONTROL_CHARS.search(shown):
            items.append(Item(CONTROL_CHARS.sub("?", shown), None, group, "skipped",
                              "control characters (such as a NUL byte) in the path cell"))
            continue
        p = Path(shown).expanduser()
        full = p if p.is_absolute() else base_dir / p
        try:
            resolved = full.resolve()
            st = full.lstat() if full.exists() or full.is_symlink() else None
        except (OSError, ValueError) as exc:
            items.append(Item(shown, None, group, "error", f"cannot be resolved ({exc})"))
            continue
        if root is not None and root != resolved and root not in resolved.parents:
            items.append(Item(shown, None, group, "skipped", "outside the allowed data folder"))
        elif str(resolved) in seen:
            items.append(Item(shown, None, group, "skipped", "listed twice in the CSV (first kept)"))
        elif st is None:
            items.append(Item(shown, None, group, "error", "file not found"))
        elif stat.S_ISLNK(st.st_mode):
            items.append(Item(shown, None, group, "skipped", "symbolic link (not followed)"))
        elif not stat.S_ISREG(st.st_mode):
            items.append(Item(shown, None, group, "skipped", "not a regular file (a pipe, device or folder)"))
        elif not _is_image_name(full.name):
            items.append(Item(shown, None, group, "skipped", f"not an image file ({full.suffix or 'no extension'})"))
        elif label is None:
            items.append(Item(shown, None, group, "unlabelled",
                              f"label {r.get(label_col)!r} is not real/fake/0/1" if r.get(label_col) else "no label",
                              str(full), st.st_size))
        else:
            items.append(Item(shown, label, group, "ok", "", str(full), st.st_size))
        seen.add(str(resolved))
    return Dataset(name or csv_path.name, "csv", tuple(items), (), reader=_read_file_nofollow)


# --------------------------------------------------------------------------------------------- examples & dispatch

def from_examples() -> Dataset:
    """The bundled examples as a demo set: camera photos are ``real`` (0); everything else (project-rendered
    images, which are NOT AI-generated) is the "not a camera photo" class (1). Group = the example's origin.

    This shows the mechanics of an evaluation; it is not a benchmark of AI-image detection.
    """
    from core.examples import example_bytes, list_examples
    examples = list_examples()
    by_name = {e.name: e for e in examples}
    items = tuple(Item(e.name, 0 if e.origin == "camera" else 1, e.origin, "ok", "", e.name) for e in examples)
    note = ("Demo set: 'real' = camera photos; 'fake' here means 'not a camera photo' (images rendered by this "
            "project, not AI-generated). It shows how the evaluation works; it is not a benchmark.")
    return Dataset("example images", "examples", items, (note,), reader=lambda ref: example_bytes(by_name[ref]))


def from_path(path: str | Path, *, allowed_root: str | Path | None = None) -> Dataset:
    """A folder, a zip or a labels CSV on this machine, chosen by what the path is.

    Args:
        path: the folder / .zip / .csv.
        allowed_root: when set, the path must lie inside this folder (the app's server-path mode).

    Raises:
        DatasetError: not found, outside ``allowed_root``, or not a folder/zip/CSV.
    """
    p = Path(path).expanduser()
    if allowed_root is not None:
        root = Path(allowed_root).expanduser().resolve()
        try:
            rp = p.resolve()
        except OSError:
            rp = p
        if rp != root and root not in rp.parents:
            raise DatasetError(f"{p}: outside the allowed data folder {root}.")
    if not p.exists():
        raise DatasetError(f"{p}: not found.")
    if p.is_dir():
        return from_folder(p)
    if p.suffix.lower() == ".zip" or zipfile.is_zipfile(p):
        return from_zip(p)
    if p.suffix.lower() in (".csv", ".tsv", ".txt"):
        return from_labels_csv(p, allowed_root=allowed_root)
    raise DatasetError(f"{p}: expected a folder, a .zip or a labels .csv.")
