"""Installing checkpoints: import a file or the Truebees bundle, each verified (checksum, safe load, strict fit to the
architecture) before it lands in the weights folder. Sits above the factory, which it uses to build the
architecture it checks against.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core import settings
from core.errors import WeightsCorrupt, WeightsError, WeightsUnavailable
from core.models.specs import DetectorSpec
import fnmatch

from core.models.checkpoint import load_checkpoint
from core.models.factory import build_detector
from core.models.registry import list_specs
from core.models.weights.store import CHUNK, check_digest, part_spec, remove_quietly, write_sidecar, installed_path



@dataclass(frozen=True)
class ImportReport:
    """What an import did."""

    key: str                 # ID:variant
    part: str                # weights | backbone
    path: Path               # installed file
    sha256: str
    source: str              # what it was imported from


def verify_fits(spec: DetectorSpec, path: Path, part: str = "weights") -> None:
    """Load a checkpoint safely and check that it fits the detector's architecture (strict keys and shapes).

    Raises:
        WeightsRefused / WeightsCorrupt naming the detector and file.
    """
    obj = load_checkpoint(path, spec.id)
    det = build_detector(spec)
    if part == "backbone":
        det.load_backbone(obj, str(path))
    else:
        det.load_checkpoint(obj, str(path))


def import_file(src_path: str | Path, spec: DetectorSpec, *, part: str = "weights",
                weights_dir: str | Path | None = None, verify_architecture: bool = True,
                source: str | None = None) -> ImportReport:
    """Verify a checkpoint and copy it into the weights folder.

    Checks, in order: readable and not empty, official size/checksum when the YAML knows them, loads with
    ``weights_only=True`` (refuses code), fits the architecture strictly. Only then is it copied (atomically).

    Raises:
        WeightsCorrupt / WeightsRefused / WeightsUnavailable naming the detector and file.
    """
    ws = part_spec(spec, part)
    src = Path(src_path).expanduser()
    if not src.is_file():
        raise WeightsUnavailable(spec.id, [f"{src}: file not found"], "", what=f"cannot import {src}")
    if src.stat().st_size > settings.max_checkpoint_bytes():
        raise WeightsCorrupt(spec.id, f"{src} is larger than the checkpoint size limit.", path=str(src))
    digest = check_digest(spec, ws, src)
    if verify_architecture:
        verify_fits(spec, src, part)
    dest = installed_path(spec, part, weights_dir)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dest.resolve():
            tmp = dest.with_name(dest.name + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        write_sidecar(dest, digest, source or str(src))
    except OSError as exc:
        remove_quietly(dest.with_name(dest.name + ".part"))
        raise WeightsCorrupt(spec.id, f"cannot write {dest} ({exc.strerror or exc}); check that the weights "
                                      "folder is writable and the disk is not full.", path=str(dest)) from None
    return ImportReport(spec.key, part, dest, digest, source or str(src))


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


def _bundle_members(bundle: Path) -> Iterator[tuple[str, Callable[[], Path], int]]:
    """(member path, extractor → temp file, size) for every file of a zip or folder bundle."""
    if bundle.is_dir():
        for f in sorted(bundle.rglob("*")):
            if f.is_file() and not f.is_symlink():
                yield f.relative_to(bundle).as_posix(), (lambda f=f: f), f.stat().st_size
        return
    try:
        zf = zipfile.ZipFile(bundle)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsCorrupt("bundle", f"{bundle} is not a readable zip file ({exc}).", path=str(bundle)) from None
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename.replace("\\", "/")
            if name.startswith("/") or ".." in name.split("/"):
                continue                    # path traversal: never extracted
            def extract(info=info) -> Path:
                fd, tmp = tempfile.mkstemp(suffix=Path(info.filename).suffix or ".pt")
                with os.fdopen(fd, "wb") as out, zf.open(info) as inp:
                    copied = 0
                    for chunk in iter(lambda: inp.read(CHUNK), b""):
                        copied += len(chunk)
                        if copied > settings.max_checkpoint_bytes():
                            raise WeightsCorrupt("bundle", f"member {info.filename} expands beyond the size limit.")
                        out.write(chunk)
                return Path(tmp)
            yield name, extract, info.file_size


def import_bundle(bundle: str | Path, *, weights_dir: str | Path | None = None,
                  specs: list[DetectorSpec] | None = None) -> tuple[list[ImportReport], list[str]]:
    """Import the Truebees "Image Deepfake Detectors Public Library" bundle (zip or folder).

    Each member matching a spec's ``bundle`` source glob (e.g. ``NPR/**/best.pt``; folder names compared without
    case, '-' or '_') is verified and installed as that variant.

    Returns:
        (imported reports, human sentences for members skipped or refused).
    """
    bundle = Path(bundle).expanduser()
    if not bundle.exists():
        raise WeightsUnavailable("bundle", [f"{bundle}: not found"], "", what=f"bundle {bundle} not found")
    targets = [(s, src.member) for s in (specs or list_specs()) if s.weights
               for src in s.weights.sources if src.type == "bundle" and src.member]
    reports: list[ImportReport] = []
    notes: list[str] = []
    done: set[str] = set()
    for name, extract, size in _bundle_members(bundle):
        parts = name.split("/")
        match = None
        for spec, pattern in targets:
            pat = pattern.split("/")
            # compare the detector folder loosely, the rest with fnmatch (** = any depth)
            for start in range(len(parts)):
                if _norm(parts[start]) == _norm(pat[0]) and fnmatch.fnmatch("/".join(parts[start + 1:]),
                                                                            "/".join(pat[1:]).replace("**/", "*")):
                    match = spec
                    break
            if match:
                break
        if match is None:
            if name.endswith((".pt", ".pth", ".ckpt", ".bin")):
                notes.append(f"{name}: no detector variant expects this file; skipped.")
            continue
        if match.key in done:
            notes.append(f"{name}: a checkpoint for {match.key} was already imported from this bundle; skipped.")
            continue
        tmp: Path | None = None
        try:
            tmp = extract()
            reports.append(import_file(tmp, match, weights_dir=weights_dir, source=f"{bundle.name}:{name}"))
            done.add(match.key)
        except WeightsError as exc:
            notes.append(f"{name}: refused — {exc}")
        finally:
            if tmp is not None and not bundle.is_dir():
                remove_quietly(tmp)
    if not reports and not notes:
        notes.append(f"{bundle}: no detector checkpoint found (expected <DETECTOR>/.../best.pt).")
    return reports, notes


