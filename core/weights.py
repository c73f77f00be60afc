"""Checkpoint management: resolve → verify → load, plus download and import.

Resolution order for a detector's checkpoint (and, separately, its backbone):
explicit path → ``local`` sources declared in the YAML → the weights folder
(``<weights_dir>/<ID>/<variant>/<file>``) → the Hugging Face Hub cache → download (only when asked and online).
Every checkpoint is loaded with ``torch.load(weights_only=True)`` (core/checkpoint.py) so it can never run code.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.checkpoint import load_checkpoint
from core.errors import DownloadError, WeightsCorrupt, WeightsError, WeightsUnavailable
from core.specs import DetectorSpec, WeightSource, WeightsSpec

__all__ = ["weights_dir", "parts", "installed_path", "resolve_weights", "sha256_file", "git_blob_sha1", "load_checkpoint",
           "download_url", "download", "import_file", "import_bundle", "status", "delete", "how_to_fix",
           "WeightsStatus", "ImportReport"]

Progress = Callable[[int, "int | None"], None]
CHUNK = 1 << 20
CONNECT_TIMEOUT = float(os.environ.get("DEEPFAKE_LENS_CONNECT_TIMEOUT", 5))
READ_TIMEOUT = float(os.environ.get("DEEPFAKE_LENS_READ_TIMEOUT", 30))
# A Truebees bundle member or an uploaded checkpoint larger than this is refused (the biggest real one is ~1.7 GB).
MAX_CHECKPOINT_BYTES = int(os.environ.get("DEEPFAKE_LENS_MAX_CHECKPOINT_BYTES", 4 * 1024 ** 3))


def weights_dir(override: str | Path | None = None) -> Path:
    """The weights folder: ``override`` > ``$DEEPFAKE_LENS_WEIGHTS`` > ``~/.cache/deepfake-lens/weights``."""
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("DEEPFAKE_LENS_WEIGHTS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "deepfake-lens" / "weights"


def parts(spec: DetectorSpec) -> list[tuple[str, WeightsSpec]]:
    """The checkpoints a variant needs, as ``(part, spec)``: ``"weights"`` and, for CLIP detectors, ``"backbone"``."""
    return [(p, ws) for p, ws in (("weights", spec.weights), ("backbone", spec.backbone)) if ws is not None]


def _part(spec: DetectorSpec, part: str) -> WeightsSpec:
    ws = spec.backbone if part == "backbone" else spec.weights
    if ws is None:
        raise WeightsUnavailable(spec.id, [], f"{spec.key} declares no {part} checkpoint.", what=f"no {part} declared")
    return ws


def installed_path(spec: DetectorSpec, part: str = "weights", weights_dir_: str | Path | None = None) -> Path:
    """Where the weights folder keeps this checkpoint: ``<dir>/<ID>/<variant>/<file>``.

    A backbone is shared by every variant of a detector (``<dir>/<ID>/backbone/<file>``): the CLIP-D and P2G
    variants differ only in their heads/prompts, and the backbones are up to 1.7 GB.
    """
    ws = _part(spec, part)
    base = weights_dir(weights_dir_) / spec.id
    # variants that only preprocess differently (NPR:original_resize256) use the file of the variant they name
    return (base / "backbone" / ws.file) if part == "backbone" else base / (ws.shared_with or spec.variant) / ws.file


# --------------------------------------------------------------------------------------------- hashing

_hash_cache: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so a 1.7 GB backbone is hashed once per process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    side = _read_sidecar(p)
    if side and side.get("size") == st.st_size and side.get("mtime_ns") == st.st_mtime_ns and side.get("sha256"):
        digest = side["sha256"]
    else:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(CHUNK), b""):
                h.update(chunk)
        digest = h.hexdigest()
    with _hash_lock:
        _hash_cache[key] = digest
    return digest


def git_blob_sha1(path: str | Path) -> str:
    """Git's blob id of a file (what GitHub publishes for files that have no sha256)."""
    p = Path(path)
    h = hashlib.sha1(f"blob {p.stat().st_size}\0".encode())
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _remove(path: Path) -> None:
    """Best-effort cleanup: a leftover we cannot remove must not hide the real error."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def _read_sidecar(path: Path) -> dict | None:
    try:
        return json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None


def _write_sidecar(path: Path, digest: str, source: str) -> None:
    st = path.stat()
    _sidecar(path).write_text(json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                          "source": source}, indent=1))


def _check_digest(spec: DetectorSpec, ws: WeightsSpec, path: Path) -> str:
    """Verify size / sha256 / git blob id where the YAML knows them; return the sha256."""
    size = path.stat().st_size
    if ws.size is not None and size != ws.size:
        raise WeightsCorrupt(spec.id, f"{path} is {size} bytes but the official file is {ws.size} bytes "
                                      "(truncated or a different file).", path=str(path),
                             how_to_fix="Delete it and import or download it again.")
    digest = sha256_file(path)
    if ws.sha256 is not None and digest != ws.sha256:
        raise WeightsCorrupt(spec.id, f"{path} has sha256 {digest[:16]}…, expected {ws.sha256[:16]}… "
                                      "(checksum mismatch).", path=str(path),
                             how_to_fix="Delete it and import or download the official file again.")
    if ws.sha256 is None and ws.git_blob_sha1 is not None and git_blob_sha1(path) != ws.git_blob_sha1:
        raise WeightsCorrupt(spec.id, f"{path} does not match the official git blob id {ws.git_blob_sha1[:12]}… "
                                      "(checksum mismatch).", path=str(path),
                             how_to_fix="Delete it and import or download the official file again.")
    return digest


# --------------------------------------------------------------------------------------------- messages

def how_to_fix(spec: DetectorSpec, part: str = "weights") -> str:
    """A sentence telling the user where the file comes from and how to install it."""
    ws = _part(spec, part)
    where = "; ".join(s.describe() for s in ws.sources if s.type != "local") or "the model's authors"
    bundle = any(s.type == "bundle" for s in ws.sources)
    name = spec.key if part == "weights" else f"{spec.key} --part backbone"
    cmd = ("python -m core weights import TRUEBEES_BUNDLE.zip" if bundle
           else f"python -m core weights import FILE --detector {name}")
    dl = "" if bundle else f", or `python -m core weights download {spec.key}` when online"
    return (f"Get {ws.file} from {where} and install it with `{cmd}` (or the Models page){dl}.")


# --------------------------------------------------------------------------------------------- resolution

def _hf_cached(src: WeightSource) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(repo_id=src.repo_id, filename=src.filename, revision=src.revision)
    except Exception:  # noqa: BLE001 - a broken cache is just "not cached"
        return None
    return Path(hit) if isinstance(hit, str) and Path(hit).is_file() else None


def resolve_weights(spec: DetectorSpec, *, weights: str | Path | None = None, weights_dir: str | Path | None = None,
                    allow_download: bool = False, progress: Progress | None = None, part: str = "weights") -> Path:
    """Find (and if allowed, fetch) a checkpoint file for a detector.

    Args:
        spec: the detector spec.
        weights: explicit path (wins; not checked against the official checksum, so analysts can use their own
            fine-tuned weights — the result still records the file's sha256).
        weights_dir: weights-folder override.
        allow_download: try the declared remote sources when nothing local is found.
        progress: download progress callback.
        part: ``"weights"`` or ``"backbone"``.

    Returns:
        Path to a verified checkpoint file.

    Raises:
        WeightsUnavailable: listing every place tried and how to fix it.
        WeightsCorrupt: a file was found but fails its size/checksum.
    """
    ws = _part(spec, part)
    wd = weights_dir
    tried: list[str] = []
    if weights is not None:
        p = Path(weights).expanduser()
        if p.is_file():
            return p
        raise WeightsUnavailable(spec.id, [f"{p}: file not found"], how_to_fix(spec, part),
                                 what=f"{part} file {p} not found")
    for src in ws.sources:
        if src.type == "local" and src.path:
            p = Path(src.path).expanduser()
            if p.is_file():
                _check_digest(spec, ws, p)
                return p
            tried.append(f"{p}: not found")
    dest = installed_path(spec, part, wd)
    if dest.is_file():
        _check_digest(spec, ws, dest)
        return dest
    tried.append(f"{dest}: not installed")
    for src in ws.sources:
        if src.type == "hf":
            hit = _hf_cached(src)
            if hit is not None:
                _check_digest(spec, ws, hit)
                return hit
            tried.append(f"Hugging Face cache {src.repo_id}/{src.filename}: not cached")
    if allow_download:
        return download(spec, part=part, weights_dir=wd, progress=progress)
    raise WeightsUnavailable(spec.id, tried, how_to_fix(spec, part),
                             what="weights not installed" if part == "weights" else "backbone weights not installed")


# --------------------------------------------------------------------------------------------- download

def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or \
        os.environ.get("DEEPFAKE_LENS_OFFLINE", "").lower() in ("1", "true", "yes")


def download_url(url: str, dest: str | Path, *, sha256: str | None = None, size: int | None = None,
                 progress: Progress | None = None, detector: str = "download") -> str:
    """Stream ``url`` to ``dest``, hashing while writing; nothing is left at ``dest`` on any failure.

    The file is written to ``dest.part`` in the same folder and atomically renamed only after the length and
    checksum match.

    Returns:
        The sha256 of the written file.

    Raises:
        DownloadError: offline, HTTP error, timeout or interrupted transfer.
        WeightsCorrupt: checksum or size mismatch (the file is deleted).
    """
    import requests

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(detector, f"cannot write to the weights folder {dest.parent} ({exc.strerror}).",
                            path=str(dest)) from None
    h = hashlib.sha256()
    done = 0
    try:
        with requests.get(url, stream=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=True) as r:
            if r.status_code != 200:
                raise DownloadError(detector, f"download of {url} failed: HTTP {r.status_code} {r.reason}.",
                                    path=str(dest))
            total = int(r.headers["Content-Length"]) if r.headers.get("Content-Length", "").isdigit() else size
            if total is not None and total > MAX_CHECKPOINT_BYTES:
                raise DownloadError(detector, f"{url} is {total} bytes, above the checkpoint size limit.",
                                    path=str(dest))
            with open(part, "wb") as f:
                for chunk in r.iter_content(CHUNK):
                    if not chunk:
                        continue
                    f.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if done > MAX_CHECKPOINT_BYTES:
                        raise DownloadError(detector, f"{url} exceeds the checkpoint size limit.", path=str(dest))
                    if progress:
                        progress(done, total)
            if total is not None and done != total:
                raise DownloadError(detector, f"download of {url} was interrupted ({done} of {total} bytes).",
                                    path=str(dest))
    except WeightsError:
        _remove(part)
        raise
    except requests.exceptions.ConnectionError as exc:
        _remove(part)
        reason = "no network connection" if "resolve" in str(exc).lower() or "Name" in str(exc) else \
            "the connection failed or was interrupted"
        raise DownloadError(detector, f"download of {url} failed: {reason}.", path=str(dest)) from None
    except requests.exceptions.RequestException as exc:
        _remove(part)
        raise DownloadError(detector, f"download of {url} failed ({type(exc).__name__}).", path=str(dest)) from None
    except OSError as exc:
        _remove(part)
        raise DownloadError(detector, f"cannot write {dest} ({exc.strerror or exc}).", path=str(dest)) from None
    digest = h.hexdigest()
    if size is not None and done != size:
        _remove(part)
        raise WeightsCorrupt(detector, f"downloaded {done} bytes from {url}, expected {size}; file removed.",
                             path=str(dest))
    if sha256 is not None and digest != sha256:
        _remove(part)
        raise WeightsCorrupt(detector, f"downloaded file from {url} has sha256 {digest[:16]}…, expected "
                                       f"{sha256[:16]}… (checksum mismatch); file removed.", path=str(dest))
    os.replace(part, dest)
    return digest


def download(spec: DetectorSpec, *, part: str = "weights", weights_dir: str | Path | None = None,
             progress: Progress | None = None) -> Path:
    """Fetch a checkpoint from its declared remote sources, in order, and verify it.

    URL and Google Drive files land in the weights folder; Hub files stay in the normal Hub cache.

    Raises:
        DownloadError / WeightsUnavailable: every source failed (the message lists each reason).
        WeightsCorrupt: a downloaded file failed verification (it was removed).
    """
    ws = _part(spec, part)
    tried: list[str] = []
    dest = installed_path(spec, part, weights_dir)
    remote = [s for s in ws.sources if s.type in ("url", "hf", "gdrive")]
    if not remote:
        raise WeightsUnavailable(spec.id, [s.describe() for s in ws.sources], how_to_fix(spec, part),
                                 what="this checkpoint cannot be downloaded on its own")
    if _offline():
        raise DownloadError(spec.id, "downloads are disabled (offline mode: HF_HUB_OFFLINE / "
                                     "DEEPFAKE_LENS_OFFLINE is set).", how_to_fix=how_to_fix(spec, part))
    for src in remote:
        try:
            if src.type == "url":
                download_url(src.url, dest, sha256=ws.sha256, size=ws.size, progress=progress, detector=spec.id)
                _check_digest(spec, ws, dest)
                _write_sidecar(dest, sha256_file(dest), src.describe())
                return dest
            if src.type == "hf":
                return _download_hf(spec, ws, src)
            if src.type == "gdrive":
                _download_gdrive(spec, ws, src, dest)
                return dest
        except WeightsCorrupt:
            raise
        except WeightsError as exc:
            tried.append(f"{src.describe()}: {exc}")
    raise DownloadError(spec.id, "could not download the weights: " + " | ".join(tried),
                        how_to_fix=how_to_fix(spec, part))


def _download_hf(spec: DetectorSpec, ws: WeightsSpec, src: WeightSource) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    try:
        # endpoint read at call time so HF_ENDPOINT (mirrors, the tests' local server) applies per call
        p = Path(hf_hub_download(repo_id=src.repo_id, filename=src.filename, revision=src.revision,
                                 etag_timeout=CONNECT_TIMEOUT, endpoint=os.environ.get("HF_ENDPOINT") or None))
    except LocalEntryNotFoundError:
        raise DownloadError(spec.id, f"{src.describe()} is not reachable (offline?) and not cached.") from None
    except HfHubHTTPError as exc:
        raise DownloadError(spec.id, f"{src.describe()} failed ({str(exc).splitlines()[0][:160]}).") from None
    except (OSError, ValueError) as exc:
        raise DownloadError(spec.id, f"{src.describe()} failed ({type(exc).__name__}: {str(exc)[:160]}).") from None
    _check_digest(spec, ws, p)
    return p


def _download_gdrive(spec: DetectorSpec, ws: WeightsSpec, src: WeightSource, dest: Path) -> None:
    import gdown
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        out = gdown.download(id=src.id, output=str(part), quiet=True)
    except Exception as exc:  # noqa: BLE001 - gdown raises many types; all mean "not downloaded"
        _remove(part)
        raise DownloadError(spec.id, f"{src.describe()} failed ({type(exc).__name__}).") from None
    if not out or not part.is_file():
        _remove(part)
        raise DownloadError(spec.id, f"{src.describe()} failed (no file received).")
    try:
        _check_digest(spec, ws, part)
    except WeightsCorrupt:
        _remove(part)
        raise
    os.replace(part, dest)
    _write_sidecar(dest, sha256_file(dest), src.describe())


# --------------------------------------------------------------------------------------------- import

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
    from core.registry import _ARCHS
    obj = load_checkpoint(path, spec.id)
    det = _ARCHS[spec.arch](spec, device="cpu")
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
    ws = _part(spec, part)
    src = Path(src_path).expanduser()
    if not src.is_file():
        raise WeightsUnavailable(spec.id, [f"{src}: file not found"], "", what=f"cannot import {src}")
    if src.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise WeightsCorrupt(spec.id, f"{src} is larger than the checkpoint size limit.", path=str(src))
    digest = _check_digest(spec, ws, src)
    if verify_architecture:
        verify_fits(spec, src, part)
    dest = installed_path(spec, part, weights_dir)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.resolve() != dest.resolve():
            tmp = dest.with_name(dest.name + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        _write_sidecar(dest, digest, source or str(src))
    except OSError as exc:
        _remove(dest.with_name(dest.name + ".part"))
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
                        if copied > MAX_CHECKPOINT_BYTES:
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
    from core.registry import list_specs
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
                _remove(tmp)
    if not reports and not notes:
        notes.append(f"{bundle}: no detector checkpoint found (expected <DETECTOR>/.../best.pt).")
    return reports, notes


# --------------------------------------------------------------------------------------------- status / delete

@dataclass(frozen=True)
class WeightsStatus:
    """Installation state of one checkpoint of one detector variant."""

    key: str
    part: str
    state: str               # installed | missing | corrupt
    path: Path | None
    sha256: str | None
    message: str


def status(spec: DetectorSpec, part: str = "weights", *, weights_dir: str | Path | None = None,
           verify: bool = False) -> WeightsStatus:
    """Is this checkpoint installed? (``verify`` re-hashes instead of trusting the sidecar)."""
    ws = _part(spec, part)
    candidates: list[Path] = [Path(s.path).expanduser() for s in ws.sources if s.type == "local" and s.path]
    candidates.append(installed_path(spec, part, weights_dir))
    candidates += [p for p in (_hf_cached(s) for s in ws.sources if s.type == "hf") if p is not None]
    for p in candidates:
        if not p.is_file():
            continue
        try:
            if verify:
                _hash_cache.clear()
            digest = _check_digest(spec, ws, p)
            if not verify and ws.sha256 is None:
                side = _read_sidecar(p)
                if side and side.get("size") != p.stat().st_size:
                    raise WeightsCorrupt(spec.id, f"{p} changed size since it was imported.", path=str(p))
            return WeightsStatus(spec.key, part, "installed", p, digest, f"installed at {p}")
        except WeightsCorrupt as exc:
            return WeightsStatus(spec.key, part, "corrupt", p, None, str(exc))
        except OSError as exc:
            return WeightsStatus(spec.key, part, "corrupt", p, None, f"{p}: unreadable ({exc.strerror}).")
    return WeightsStatus(spec.key, part, "missing", None, None, how_to_fix(spec, part))


def delete(spec: DetectorSpec, part: str = "weights", *, weights_dir: str | Path | None = None) -> bool:
    """Remove an installed checkpoint from the weights folder (never touches the Hub cache or local sources)."""
    p = installed_path(spec, part, weights_dir)
    existed = p.is_file()
    _remove(p)
    _remove(_sidecar(p))
    return existed

