"""The weights folder: where each checkpoint lives, its digest, whether it is installed, and how to get it.

Layout: ``<weights_dir>/<ID>/<variant>/<file>``; a backbone is shared by all variants of an id
(``<weights_dir>/<ID>/backbone/<file>``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core import settings
from core.errors import WeightsCorrupt, WeightsUnavailable
from core.models.specs import DetectorSpec, WeightSource, WeightsSpec

Progress = Callable[[int, "int | None"], None]
CHUNK = 1 << 20


def weights_dir(override: str | Path | None = None) -> Path:
    """The weights folder: ``override`` > ``$DEEPFAKE_LENS_WEIGHTS`` > ``~/.cache/deepfake-lens/weights``."""
    if override is not None:
        return Path(override).expanduser()
    return settings.weights_dir()


def parts(spec: DetectorSpec) -> list[tuple[str, WeightsSpec]]:
    """The checkpoints a variant needs, as ``(part, spec)``: ``"weights"`` and, for CLIP detectors, ``"backbone"``."""
    return [(p, ws) for p, ws in (("weights", spec.weights), ("backbone", spec.backbone)) if ws is not None]


def part_spec(spec: DetectorSpec, part: str) -> WeightsSpec:
    ws = spec.backbone if part == "backbone" else spec.weights
    if ws is None:
        raise WeightsUnavailable(spec.id, [], f"{spec.key} declares no {part} checkpoint.", what=f"no {part} declared")
    return ws


def installed_path(spec: DetectorSpec, part: str = "weights", weights_dir_: str | Path | None = None) -> Path:
    """Where the weights folder keeps this checkpoint: ``<dir>/<ID>/<variant>/<file>``.

    A backbone is shared by every variant of a detector (``<dir>/<ID>/backbone/<file>``): the CLIP-D and P2G
    variants differ only in their heads/prompts, and the backbones are up to 1.7 GB.
    """
    ws = part_spec(spec, part)
    base = weights_dir(weights_dir_) / spec.id
    # variants that only preprocess differently (NPR:original_resize256) use the file of the variant they name
    return (base / "backbone" / ws.file) if part == "backbone" else base / (ws.shared_with or spec.variant) / ws.file


# --------------------------------------------------------------------------------------------- hashing

# Hashes of files this process wrote (imports, downloads) or read whole, keyed by the file's full identity:
# replacing or rewriting the file changes the inode, size, mtime or ctime (ctime cannot be set back from user
# space), so a stale entry can never match. Without this, every page render of the app re-read each installed
# checkpoint (1.7 GB for the CLIP-D backbone) to show its status. A ``.sha256.json`` sidecar is provenance only,
# never a hash source; ``fresh=True`` (``weights status --verify``) always re-reads the bytes.
_hash_cache: dict[tuple[int, ...], str] = {}
_hash_lock = threading.Lock()


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def remember_written(path: str | Path, digest: str) -> None:
    """Record the digest of a file this process has just written and verified (skips re-hashing it later)."""
    with _hash_lock:
        _hash_cache[_identity(Path(path).stat())] = digest


def sha256_file(path: str | Path, *, fresh: bool = False) -> str:
    """sha256 of a file's bytes (not re-read while the file's identity is unchanged since this process hashed or
    wrote it).

    Args:
        path: the file.
        fresh: ignore the cache (``weights status --verify``).
    """
    p = Path(path)
    with open(p, "rb") as f:
        key = _identity(os.fstat(f.fileno()))
        with _hash_lock:
            hit = None if fresh else _hash_cache.get(key)
        if hit is not None:
            return hit
        h = hashlib.sha256()
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
        if _identity(os.fstat(f.fileno())) == key:      # unchanged while we read it: safe to remember
            with _hash_lock:
                _hash_cache[key] = h.hexdigest()
    return h.hexdigest()


def git_blob_sha1(path: str | Path) -> str:
    """Git's blob id of a file (what GitHub publishes for files that have no sha256)."""
    p = Path(path)
    h = hashlib.sha1(f"blob {p.stat().st_size}\0".encode())
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def remove_quietly(path: Path) -> None:
    """Best-effort cleanup: a leftover we cannot remove must not hide the real error."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def read_sidecar(path: Path) -> dict | None:
    """The provenance recorded at import/download (source, name, date); never trusted as the file's hash."""
    try:
        side = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    return side if isinstance(side, dict) else None


def write_sidecar(path: Path, digest: str, source: str, **extra: str) -> None:
    """Write provenance next to an installed file, with the file's full identity at the time."""
    st = path.stat()
    _sidecar(path).write_text(json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                          "dev": st.st_dev, "inode": st.st_ino, "ctime_ns": st.st_ctime_ns,
                                          "source": source, **extra}, indent=1))


def check_known(spec: DetectorSpec, ws: WeightsSpec, name: str, size: int, digest: str,
                blob_sha1: Callable[[], str] | None = None) -> None:
    """Compare a file's size and digests (computed from its bytes) with what the YAML knows.

    Raises:
        WeightsCorrupt: naming the file and the mismatch.
    """
    if ws.size is not None and size != ws.size:
        raise WeightsCorrupt(spec.id, f"{name} is {size} bytes but the official file is {ws.size} bytes "
                                      "(truncated or a different file).", path=name,
                             how_to_fix="Delete it and import or download it again.")
    if ws.sha256 is not None and digest != ws.sha256:
        raise WeightsCorrupt(spec.id, f"{name} has sha256 {digest[:16]}…, expected {ws.sha256[:16]}… "
                                      "(checksum mismatch).", path=name,
                             how_to_fix="Delete it and import or download the official file again.")
    if ws.sha256 is None and ws.git_blob_sha1 is not None and blob_sha1 is not None \
            and blob_sha1() != ws.git_blob_sha1:
        raise WeightsCorrupt(spec.id, f"{name} does not match the official git blob id {ws.git_blob_sha1[:12]}… "
                                      "(checksum mismatch).", path=name,
                             how_to_fix="Delete it and import or download the official file again.")


def check_digest(spec: DetectorSpec, ws: WeightsSpec, path: Path, *, fresh: bool = False,
                 name: str | None = None) -> str:
    """Verify size / sha256 / git blob id of a file where the YAML knows them; return its sha256."""
    digest = sha256_file(path, fresh=fresh)
    check_known(spec, ws, name or str(path), path.stat().st_size, digest, lambda: git_blob_sha1(path))
    return digest


# --------------------------------------------------------------------------------------------- messages

def how_to_fix(spec: DetectorSpec, part: str = "weights") -> str:
    """A sentence telling the user where the file comes from and how to install it."""
    ws = part_spec(spec, part)
    if spec.variant == "custom" and part == "weights":
        return (f"Import your own {spec.id} checkpoint with `python -m core weights import FILE --detector {spec.id} "
                "--as custom --name NAME` (or the Models page).")
    where = "; ".join(s.describe() for s in ws.sources if s.type != "local") or "the model's authors"
    bundle = any(s.type == "bundle" for s in ws.sources)
    name = spec.key if part == "weights" else f"{spec.key} --part backbone"
    cmd = ("python -m core weights import TRUEBEES_BUNDLE.zip" if bundle
           else f"python -m core weights import FILE --detector {name}")
    dl = "" if bundle else f", or `python -m core weights download {spec.key}` when online"
    return (f"Get {ws.file} from {where} and install it with `{cmd}` (or the Models page){dl}.")


# open_clip looks a Hub checkpoint up as its safetensors copy first, then the pickle (open_clip.pretrained
# ._get_safe_alternatives), so a machine where open_clip has run holds the first of these names.
_OPEN_CLIP_SAFE = {"open_clip_pytorch_model.bin": "open_clip_model.safetensors"}


def hf_lookups(ws: WeightsSpec, src: WeightSource) -> list[WeightSource]:
    """The Hub files that stand for a ``hf`` source, in lookup order: open_clip's safetensors copy of
    ``open_clip_pytorch_model.bin`` first (same state dict), then the declared file.

    The copy is only an alternative when no checksum pins the declared file (a pinned sha256 names those bytes).
    """
    safe = _OPEN_CLIP_SAFE.get(src.filename or "")
    if safe is None or ws.sha256 is not None or ws.git_blob_sha1 is not None:
        return [src]
    return [dataclasses.replace(src, filename=safe), src]


def hf_cached_any(ws: WeightsSpec, src: WeightSource) -> Path | None:
    """The first of :func:`hf_lookups` present in the local Hub cache, or None."""
    for alt in hf_lookups(ws, src):
        hit = hf_cached(alt)
        if hit is not None:
            return hit
    return None


def hf_cached(src: WeightSource) -> Path | None:
    """The cached file of one ``hf`` source (never a download), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(repo_id=src.repo_id, filename=src.filename, revision=src.revision)
    except Exception:  # noqa: BLE001 - a broken cache is just "not cached"
        return None
    return Path(hit) if isinstance(hit, str) and Path(hit).is_file() else None


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
    ws = part_spec(spec, part)
    candidates: list[Path] = [Path(s.path).expanduser() for s in ws.sources if s.type == "local" and s.path]
    candidates.append(installed_path(spec, part, weights_dir))
    candidates += [p for p in (hf_cached_any(ws, s) for s in ws.sources if s.type == "hf") if p is not None]
    for p in candidates:
        if not p.is_file():
            continue
        try:
            digest = check_digest(spec, ws, p, fresh=verify)
            side = read_sidecar(p) if ws.sha256 is None else None
            if side and side.get("sha256") not in (None, digest):
                # a custom or unchecksummed file: its import recorded the sha256, so a changed file is caught
                raise WeightsCorrupt(spec.id, f"{p} changed since it was imported (sha256 {digest[:16]}…, "
                                              f"recorded {str(side.get('sha256'))[:16]}…).", path=str(p),
                                     how_to_fix="Import it again.")
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
    remove_quietly(p)
    remove_quietly(_sidecar(p))
    return existed

