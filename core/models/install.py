"""Installing checkpoints: import a file, the user's own file as the ``custom`` variant, or the Truebees bundle.

Every import copies the bytes into a private folder inside the weights folder first, then loads that copy once
(:func:`~core.models.checkpoint.load_verified`: no code runs, every tensor dense and finite), checks the official
size/checksum where the YAML knows them and the strict fit to the architecture through the detector's own loader,
and only then renames it into place. The sha256 recorded is the digest of exactly the bytes that were loaded and
installed. Sits above the factory, which it uses to build the architecture it checks against.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from core import archive, settings
from core.errors import UnknownDetector, WeightsCorrupt, WeightsError, WeightsUnavailable
from core.models.checkpoint import Loaded, load_verified
from core.models.factory import build_detector
from core.models.registry import get_spec, list_specs
from core.models.specs import DetectorSpec
from core.models.weights.store import (check_known, installed_path, part_spec, read_sidecar, remember_written,
                                       weights_dir as _weights_dir, write_sidecar)

CUSTOM = "custom"
_NAME_MAX = 64


@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    key: str                 # ID:variant
    part: str                # weights | backbone
    path: Path               # installed file
    sha256: str
    source: str              # what it was imported from (a file name or bundle:member, never a temp path)
    name: str | None = None  # the user's name for a custom checkpoint


# --------------------------------------------------------------------------------------------- verification

def fit(spec: DetectorSpec, loaded: Loaded, part: str = "weights") -> None:
    """Load an already safely-read checkpoint into the detector's architecture (strict keys, shapes, kinds).

    Raises:
        WeightsCorrupt / WeightsRefused naming the detector and ``loaded.name``.
    """
    det = build_detector(spec)
    if part == "backbone":
        det.load_backbone(loaded.obj, loaded.name)
    else:
        det.load_checkpoint(loaded.obj, loaded.name)


def verify_fits(spec: DetectorSpec, path: str | Path, part: str = "weights", *, name: str | None = None) -> Loaded:
    """Read a checkpoint safely and check that it fits the detector's architecture; returns what was loaded.

    Raises:
        WeightsRefused / WeightsCorrupt naming the detector and ``name`` (default: the path).
    """
    loaded = load_verified(path, spec.id, name=name or str(path))
    fit(spec, loaded, part)
    return loaded


@contextmanager
def _staging(spec: DetectorSpec, weights_dir: str | Path | None) -> Iterator[Path]:
    """A private folder on the weights folder's file system (so the final rename is atomic), removed afterwards."""
    root = _weights_dir(weights_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    except OSError as exc:
        raise WeightsCorrupt(spec.id, f"cannot write to the weights folder {root} ({exc.strerror or exc}); check "
                                      "that it is writable and the disk is not full.", path=str(root)) from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _install(spec: DetectorSpec, part: str, staged: Path, shown: str, *, weights_dir: str | Path | None,
             verify_architecture: bool, source: str, extra: dict[str, str]) -> ImportReport:
    """Verify a staged copy (one read: hash + safe load) and rename it into place with its provenance."""
    ws = part_spec(spec, part)
    loaded = load_verified(staged, spec.id, name=shown,
                           want_blob=ws.sha256 is None and ws.git_blob_sha1 is not None)
    check_known(spec, ws, shown, loaded.size, loaded.sha256, lambda: loaded.git_blob_sha1 or "")
    if verify_architecture:
        fit(spec, loaded, part)
    dest = installed_path(spec, part, weights_dir)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, dest)
        remember_written(dest, loaded.sha256)
        write_sidecar(dest, loaded.sha256, source, **extra)
    except OSError as exc:
        raise WeightsCorrupt(spec.id, f"cannot write {dest} ({exc.strerror or exc}); check that the weights "
                                      "folder is writable and the disk is not full.", path=str(dest)) from None
    return ImportReport(spec.key, part, dest, loaded.sha256, source, extra.get("name"))


# --------------------------------------------------------------------------------------------- one file

def _stage_file(spec: DetectorSpec, src: Path, shown: str, staged: Path) -> None:
    """Copy the user's file into the staging folder, within the checkpoint size limit."""
    limit = settings.max_checkpoint_bytes()
    try:
        if not src.is_file():
            raise WeightsUnavailable(spec.id, [f"{shown}: file not found"], "", what=f"cannot import {shown}")
        if src.stat().st_size > limit:
            raise WeightsCorrupt(spec.id, f"{shown} is larger than the checkpoint size limit "
                                          f"({limit / 1e9:.1f} GB, DEEPFAKE_LENS_MAX_CHECKPOINT_BYTES).", path=shown)
        shutil.copyfile(src, staged)
        if staged.stat().st_size > limit:       # it grew while we copied it
            raise WeightsCorrupt(spec.id, f"{shown} grew beyond the checkpoint size limit while it was copied.",
                                 path=shown)
    except OSError as exc:
        raise WeightsCorrupt(spec.id, f"cannot copy {shown} into the weights folder ({exc.strerror or exc}); "
                                      "check that the file is readable, the weights folder writable and the disk "
                                      "is not full.", path=shown) from None


def import_file(src_path: str | Path, spec: DetectorSpec, *, part: str = "weights",
                weights_dir: str | Path | None = None, verify_architecture: bool = True,
                source: str | None = None, shown: str | None = None) -> ImportReport:
    """Verify a checkpoint and install it in the weights folder.

    Checks, in order: readable and within the size limit, loads without running code (dense, finite tensors), the
    official size/checksum when the YAML knows them, the strict fit to the architecture. The digest recorded is of
    the bytes loaded and installed.

    Args:
        src_path: the file.
        spec: the variant it is installed as.
        part: ``weights`` or ``backbone``.
        weights_dir: weights-folder override.
        verify_architecture: False skips the fit (tests of the store only).
        source: provenance recorded beside the file (default: ``shown``).
        shown: the name used in messages (default: the path; the page passes the uploaded file's name).

    Raises:
        WeightsCorrupt / WeightsRefused / WeightsUnavailable naming the detector and file.
    """
    src = Path(src_path).expanduser()
    shown = shown or str(src)
    extra = {"name": _default_name(shown)} if spec.variant == CUSTOM else {}
    with _staging(spec, weights_dir) as tmp:
        staged = tmp / "checkpoint"
        _stage_file(spec, src, shown, staged)
        return _install(spec, part, staged, shown, weights_dir=weights_dir, verify_architecture=verify_architecture,
                        source=source or shown, extra=extra)


# --------------------------------------------------------------------------------------------- custom variant

def custom_spec(detector: str) -> DetectorSpec:
    """The ``custom`` variant of a detector id (``ID`` or ``ID:custom``).

    Raises:
        UnknownDetector: the id is unknown, names another variant, or its YAML declares no custom variant.
    """
    det_id, _, variant = detector.partition(":")
    if variant and variant != CUSTOM:
        raise UnknownDetector(f"--as custom installs your own file as {det_id}:custom; give --detector {det_id}, "
                              f"not {detector}.")
    try:
        return get_spec(det_id, CUSTOM)
    except UnknownDetector:
        get_spec(det_id)                 # an unknown id says so first
        raise UnknownDetector(f"{det_id} has no custom variant: add a 'custom:' variant to its YAML "
                              "(see configs/detectors/npr.yaml) to import your own checkpoints.") from None


def _default_name(shown: str) -> str:
    return (Path(shown).stem or "custom")[:_NAME_MAX]


def check_custom_name(name: str, detector: str = "custom") -> str:
    """The user's name for a custom checkpoint, stripped; one sentence when it cannot be used.

    Raises:
        WeightsError: empty, longer than 64 characters, or holding control characters.
    """
    text = str(name).strip()
    if not text or len(text) > _NAME_MAX or text != archive.printable(text):
        raise WeightsError(detector, f"the name of a custom checkpoint must be 1 to {_NAME_MAX} printable "
                                     "characters on one line.")
    return text


def import_custom(src_path: str | Path, detector: str, *, name: str | None = None,
                  weights_dir: str | Path | None = None, shown: str | None = None) -> ImportReport:
    """Install the user's own checkpoint as ``ID:custom``, labelled with the user's name everywhere.

    The file must fit the detector's architecture exactly (strict keys and shapes through the detector's own
    loader; dense, finite floating-point tensors). The name and the sha256 of the installed bytes are recorded
    beside it; a later import replaces it.

    Args:
        src_path: the checkpoint file.
        detector: ``ID`` (or ``ID:custom``).
        name: what to call it (default: the file name without extension).
        weights_dir: weights-folder override.
        shown: the file name for messages (the page passes the uploaded file's name).

    Raises:
        UnknownDetector, WeightsError, WeightsCorrupt, WeightsRefused.
    """
    spec = custom_spec(detector)
    src = Path(src_path).expanduser()
    shown = shown or str(src)
    label = check_custom_name(name if name is not None else _default_name(shown), spec.id)
    with _staging(spec, weights_dir) as tmp:
        staged = tmp / "checkpoint"
        _stage_file(spec, src, shown, staged)
        return _install(spec, "weights", staged, shown, weights_dir=weights_dir, verify_architecture=True,
                        source=Path(shown).name, extra={"name": label})


def custom_label(spec: DetectorSpec, weights_dir: str | Path | None = None) -> str | None:
    """``custom "NAME"`` for an installed custom variant (the name recorded at import), else None."""
    if spec.variant != CUSTOM or spec.weights is None:
        return None
    side = read_sidecar(installed_path(spec, "weights", weights_dir)) or {}
    name = side.get("name")
    return f'custom "{name}"' if isinstance(name, str) and name else None


# --------------------------------------------------------------------------------------------- bundle

def _matches(parts: list[str], pattern: list[str]) -> bool:
    """Whole-path match: ``**`` is any number of folders, other parts are case-sensitive shell patterns."""
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_matches(parts[i:], pattern[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and _matches(parts[1:], pattern[1:])


def bundle_target(member: str, targets: list[tuple[DetectorSpec, str]]) -> DetectorSpec | None:
    """The variant a bundle member belongs to: its whole path is one of the declared layouts, optionally inside
    one top folder (the zip of an unpacked checkout). Nothing is matched by a folder name alone."""
    parts = member.split("/")
    for spec, pattern in targets:
        pat = pattern.split("/")
        if _matches(parts, pat) or (len(parts) > 1 and _matches(parts[1:], pat)):
            return spec
    return None


def _targets(specs: list[DetectorSpec] | None) -> list[tuple[DetectorSpec, str]]:
    return [(s, src.member) for s in (specs if specs is not None else list_specs()) if s.weights
            for src in s.weights.sources if src.type == "bundle" and src.member]


def _folder_members(folder: Path) -> Iterator[tuple[str, Callable[[Path], None], str]]:
    """(clean relative name, stage into a path, "" or why refused) for every file under an unpacked bundle."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for fname in sorted(filenames):
            full = Path(dirpath) / fname
            rel = full.relative_to(folder).as_posix()
            if archive.is_metadata(rel):
                continue
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                why = "symbolic link (never followed)"
            elif not stat.S_ISREG(info.st_mode):
                why = "not a regular file"             # a FIFO or device would block or never end
            elif info.st_size > settings.max_checkpoint_bytes():
                why = f"larger than the {settings.max_checkpoint_bytes() / 1e9:.1f} GB checkpoint size limit"
            else:
                why = ""
            yield rel, (lambda dest, full=full: shutil.copyfile(full, dest)), why


def _zip_members(zf: Any, shown: str) -> Iterator[tuple[str, Callable[[Path], None], str]]:
    limit = settings.max_checkpoint_bytes()
    for m in archive.check_members(zf.infolist(), max_member_bytes=limit):
        if m.status == "ignored":
            continue

        def stage(dest: Path, m: archive.Member = m) -> None:
            with open(dest, "wb") as out:
                archive.copy_member(zf, m, out, limit, shown)
        yield m.name, stage, m.reason


def _import_member(spec: DetectorSpec, stage: Callable[[Path], None], shown: str, source: str,
                   weights_dir: str | Path | None) -> ImportReport:
    with _staging(spec, weights_dir) as tmp:
        staged = tmp / "checkpoint"
        try:
            stage(staged)
        except archive.ArchiveError as exc:
            raise WeightsCorrupt(spec.id, str(exc), path=shown) from None
        except OSError as exc:
            raise WeightsCorrupt(spec.id, f"cannot copy {shown} into the weights folder ({exc.strerror or exc}).",
                                 path=shown) from None
        return _install(spec, "weights", staged, shown, weights_dir=weights_dir, verify_architecture=True,
                        source=source, extra={})


def _walk_bundle(members: Iterator[tuple[str, Callable[[Path], None], str]], bundle_name: str,
                 targets: list[tuple[DetectorSpec, str]],
                 weights_dir: str | Path | None) -> tuple[list[ImportReport], list[str]]:
    reports: list[ImportReport] = []
    notes: list[str] = []
    done: set[str] = set()
    for name, stage, refused in members:
        shown = f"{bundle_name}: {name}"
        spec = bundle_target(name, targets) if not refused else None
        if refused:
            notes.append(f"{shown}: refused ({refused}).")
        elif spec is None:
            if name.endswith((".pt", ".pth", ".ckpt", ".bin", ".tar", ".safetensors")):
                notes.append(f"{shown}: not at a known bundle layout (detectors/<ID>/checkpoint/pretrained/"
                             "weights/best.pt or models/<ID>/weights/best.pt); skipped.")
        elif spec.key in done:
            notes.append(f"{shown}: a checkpoint for {spec.key} was already imported from this bundle; skipped.")
        else:
            try:
                reports.append(_import_member(spec, stage, shown, f"{bundle_name}:{name}", weights_dir))
                done.add(spec.key)
            except WeightsError as exc:
                notes.append(f"not imported: {exc}")         # the sentence names the member already
    return reports, notes


def import_bundle(bundle: str | Path, *, weights_dir: str | Path | None = None,
                  specs: list[DetectorSpec] | None = None, shown: str | None = None,
                  ) -> tuple[list[ImportReport], list[str]]:
    """Import the Truebees "Image Deepfake Detectors Public Library" bundle (zip or unpacked folder).

    A member is installed when its whole path is a layout a variant declares (``detectors/<ID>/checkpoint/
    pretrained/weights/best.pt`` of the library, ``models/<ID>/weights/best.pt`` of its Space), optionally inside
    one top folder. Every member passes :mod:`core.archive`'s policy first (macOS litter ignored; unsafe names,
    links, encrypted or oversized members refused). Messages name the member, never a temporary file.

    Args:
        bundle: the zip or folder.
        weights_dir: weights-folder override.
        specs: the variants to look for (default: every registered one).
        shown: the bundle's name for messages (the page passes the uploaded file's name).

    Returns:
        (imported reports, one sentence per member skipped or refused).

    Raises:
        WeightsUnavailable: the bundle does not exist. WeightsCorrupt: it is not a readable zip.
    """
    path = Path(bundle).expanduser()
    name = shown or path.name
    targets = _targets(specs)
    if path.is_dir():
        reports, notes = _walk_bundle(_folder_members(path), name, targets, weights_dir)
    elif path.is_file():
        try:
            zf = archive.open_zip(path, name)
        except archive.ArchiveError as exc:
            raise WeightsCorrupt("bundle", str(exc), path=name) from None
        with zf:
            reports, notes = _walk_bundle(_zip_members(zf, name), name, targets, weights_dir)
    else:
        raise WeightsUnavailable("bundle", [f"{name}: not found"], "", what=f"bundle {name} not found")
    if not reports and not notes:
        notes.append(f"{name}: no detector checkpoint found (expected detectors/<ID>/checkpoint/pretrained/weights/"
                     "best.pt or models/<ID>/weights/best.pt).")
    return reports, notes


__all__ = ["CUSTOM", "ImportReport", "bundle_target", "check_custom_name", "custom_label", "custom_spec", "fit",
           "import_bundle", "import_custom", "import_file", "verify_fits"]
