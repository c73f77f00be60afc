"""Loading untrusted checkpoints without executing code, and unwrapping their containers."""
from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from core.errors import WeightsCorrupt, WeightsRefused


def load_checkpoint(path: str | Path, detector: str = "checkpoint") -> Any:
    """Load a checkpoint with ``torch.load(weights_only=True)`` (or safetensors) on CPU.

    A pickle that names any callable outside torch's tensor allow-list is refused before anything runs.

    Args:
        path: the file.
        detector: detector id, used in error messages.

    Returns:
        The loaded object (a state dict or a dict wrapping one).

    Raises:
        WeightsRefused: the pickle asks to run code (it was not executed).
        WeightsCorrupt: the file is truncated, empty or not a checkpoint.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise WeightsCorrupt(detector, f"cannot read checkpoint {path} ({exc.strerror}).", path=str(path)) from None
    if size == 0:
        raise WeightsCorrupt(detector, f"checkpoint {path} is empty (0 bytes).", path=str(path))
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - any parse failure means a corrupt file
            raise WeightsCorrupt(detector, f"checkpoint {path} is not a valid safetensors file ({exc}).",
                                 path=str(path)) from None
    try:
        try:
            # mmap: tensors are paged in from the file instead of copied, so loading a 1.7 GB backbone does not
            # briefly need twice its size in RAM (zip-format checkpoints only; legacy files fall back below)
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zipfile" not in str(exc).lower():
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "weights_only" in msg or "Unsupported global" in msg or "not an allowed global" in msg.lower():
            raise WeightsRefused(
                detector, f"checkpoint {path} was refused: it contains Python objects that would run code when "
                          "loaded (only plain tensors are accepted). It was not executed.", path=str(path)) from None
        raise WeightsCorrupt(detector, f"checkpoint {path} is corrupt ({msg.splitlines()[0][:200]}).",
                             path=str(path)) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise WeightsCorrupt(detector, f"checkpoint {path} is truncated or not a PyTorch checkpoint ({first}).",
                             path=str(path)) from None


def unwrap_state_dict(obj: Any, container: str, detector: str = "checkpoint",
                      path: str | None = None) -> dict[str, torch.Tensor]:
    """Find the state dict inside a loaded checkpoint and strip a DataParallel ``module.`` prefix.

    Args:
        obj: what :func:`load_checkpoint` returned.
        container: the YAML's declared wrapper: raw | model | model_state_dict | state_dict | checkpoint
            ("checkpoint" = try the usual wrapper keys in turn).
        detector: detector id for messages.
        path: file name for messages.

    Raises:
        WeightsCorrupt: the expected wrapper key is absent or the payload holds non-tensors.
    """
    if not isinstance(obj, Mapping):
        raise WeightsCorrupt(detector, f"checkpoint {path or ''} does not hold a dictionary of tensors.", path=path)
    sd: Any = obj
    wrappers = ("model", "model_state_dict", "state_dict", "net")
    if container in wrappers:
        if container in obj and isinstance(obj[container], Mapping):
            sd = obj[container]
        elif all(isinstance(v, torch.Tensor) for v in obj.values()):
            sd = obj                         # a bare state dict is accepted too
        else:
            raise WeightsCorrupt(detector, f"checkpoint {path or ''} has no '{container}' entry "
                                           f"(keys: {sorted(map(str, obj))[:8]}).", path=path)
    elif container == "checkpoint":
        for k in wrappers:
            if k in obj and isinstance(obj[k], Mapping):
                sd = obj[k]
                break
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsCorrupt(detector, f"checkpoint {path or ''} holds non-tensor entries {bad[:5]} where a state "
                                       "dict was expected.", path=path)
    out = {str(k): v for k, v in sd.items()}
    if out and all(k.startswith("module.") for k in out):
        out = {k[len("module."):]: v for k, v in out.items()}
    return out


def describe_mismatch(layout: Mapping[str, tuple[int, ...]], state_dict: Mapping[str, torch.Tensor], *,
                      optional: tuple[str, ...] = ()) -> list[str]:
    """Human phrases for every way ``state_dict`` fails to fit ``layout`` (key → shape); empty when it fits.

    Args:
        layout: what the model expects.
        state_dict: what the file holds.
        optional: keys the file may omit.
    """
    missing = [k for k in layout if k not in optional and k not in state_dict]
    unexpected = [k for k in state_dict if k not in layout]
    shape_bad = [k for k in state_dict if k in layout and tuple(state_dict[k].shape) != tuple(layout[k])]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[:3]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
    if shape_bad:
        k = shape_bad[0]
        parts.append(f"{len(shape_bad)} shape mismatches (e.g. {k}: file {tuple(state_dict[k].shape)} vs "
                     f"model {tuple(layout[k])})")
    return parts


def load_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], detector: str,
                path: str | None = None) -> None:
    """``load_state_dict(strict=True)`` with a one-sentence error naming the detector, file and key mismatch.

    Tensors are cast to each parameter's dtype (fp16 checkpoints run in float32).
    """
    own = module.state_dict()
    parts = describe_mismatch({k: tuple(v.shape) for k, v in own.items()}, state_dict)
    if parts:
        raise WeightsCorrupt(detector, f"checkpoint {path or ''} does not fit the {detector} architecture: "
                                       + "; ".join(parts) + ".", path=path)
    cast = {k: v.to(dtype=own[k].dtype) for k, v in state_dict.items()}
    module.load_state_dict(cast, strict=True)
