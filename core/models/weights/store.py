"""The weights folder: where each checkpoint lives, its digest, whether it is installed, and how to get it.

Layout: ``<weights_dir>/<ID>/<variant>/<file>``; a backbone is shared by all variants of an id
(``<weights_dir>/<ID>/backbone/<file>``).
"""
from __future__ import annotations

import hashlib
import json
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
    side = read_sidecar(p)
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


def remove_quietly(path: Path) -> None:
    """Best-effort cleanup: a leftover we cannot remove must not hide the real error."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def read_sidecar(path: Path) -> dict | None:
    try:
        return json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None


def write_sidecar(path: Path, digest: str, source: str) -> None:
    st = path.stat()
    _sidecar(path).write_text(json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                          "source": source}, indent=1))


def check_digest(spec: DetectorSpec, ws: WeightsSpec, path: Path) -> str:
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
    ws = part_spec(spec, part)
    where = "; ".join(s.describe() for s in ws.sources if s.type != "local") or "the model's authors"
    bundle = any(s.type == "bundle" for s in ws.sources)
    name = spec.key if part == "weights" else f"{spec.key} --part backbone"
    cmd = ("python -m core weights import TRUEBEES_BUNDLE.zip" if bundle
           else f"python -m core weights import FILE --detector {name}")
    dl = "" if bundle else f", or `python -m core weights download {spec.key}` when online"
    return (f"Get {ws.file} from {where} and install it with `{cmd}` (or the Models page){dl}.")


def hf_cached(src: WeightSource) -> Path | None:
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
    candidates += [p for p in (hf_cached(s) for s in ws.sources if s.type == "hf") if p is not None]
    for p in candidates:
        if not p.is_file():
            continue
        try:
            if verify:
                _hash_cache.clear()
            digest = check_digest(spec, ws, p)
            if not verify and ws.sha256 is None:
                side = read_sidecar(p)
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
    remove_quietly(p)
    remove_quietly(_sidecar(p))
    return existed

