"""Resolution of a detector's checkpoint: explicit path → ``local`` sources in the YAML → the weights folder →
the Hugging Face Hub cache (open_clip's ``open_clip_model.safetensors`` before ``open_clip_pytorch_model.bin``, as
open_clip itself looks them up) → download (only when asked and online).
"""
from __future__ import annotations

from pathlib import Path

from core.errors import WeightsUnavailable
from core.models.specs import DetectorSpec
from core.models.weights.download import download
from core.models.weights.store import (
    Progress,
    check_digest,
    hf_cached_any,
    hf_lookups,
    how_to_fix,
    installed_path,
    part_spec,
)


def resolve_weights(spec: DetectorSpec, *, weights: str | Path | None = None, weights_dir: str | Path | None = None,
                    allow_download: bool = False, progress: Progress | None = None, part: str = "weights",
                    check: bool = True) -> Path:
    """Find (and if allowed, fetch) a checkpoint file for a detector.

    Args:
        spec: the detector spec.
        weights: explicit path (wins; not checked against the official checksum, so analysts can use their own
            fine-tuned weights — the result still records the file's sha256).
        weights_dir: weights-folder override.
        allow_download: try the declared remote sources when nothing local is found.
        progress: download progress callback.
        part: ``"weights"`` or ``"backbone"``.
        check: verify the official size/checksum here; False when the caller checks the bytes it loads
            (the factory), so a file is not hashed twice.

    Returns:
        Path to a verified checkpoint file.

    Raises:
        WeightsUnavailable: listing every place tried and how to fix it.
        WeightsCorrupt: a file was found but fails its size/checksum.
    """
    ws = part_spec(spec, part)
    wd = weights_dir

    def checked(p: Path) -> Path:
        if check:
            check_digest(spec, ws, p)
        return p

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
                return checked(p)
            tried.append(f"{p}: not found")
    dest = installed_path(spec, part, wd)
    if dest.is_file():
        return checked(dest)
    tried.append(f"{dest}: not installed")
    for src in ws.sources:
        if src.type == "hf":
            hit = hf_cached_any(ws, src)
            if hit is not None:
                return checked(hit)
            names = " or ".join(alt.filename or "" for alt in hf_lookups(ws, src))
            tried.append(f"Hugging Face cache {src.repo_id}/{names}: not cached")
    if allow_download:
        return download(spec, part=part, weights_dir=wd, progress=progress)
    raise WeightsUnavailable(spec.id, tried, how_to_fix(spec, part),
                             what="weights not installed" if part == "weights" else "backbone weights not installed")


