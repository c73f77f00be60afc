"""Reading pickles inside checkpoints without executing code: a scan that decides, from the pickle's own opcodes,
whether it names anything beyond plain tensors, and a reader for TorchScript archives (OpenAI's ``ViT-B-16.pt``).

The scan replaces guessing from torch's error text: only a pickle that names a global outside torch's tensor
allow-list is "refused: would run code"; every other failure is a corrupt file. The TorchScript reader rebuilds
only tensors (from ``<name>/data/<key>`` records) and records each module's declared parameters and buffers by
reading the class headers in ``<name>/code/`` as text; it never compiles or runs that code.
"""
from __future__ import annotations

import collections
import io
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import torch

from core.errors import WeightsCorrupt, WeightsRefused


def _dtype_of(storage_type: Any) -> torch.dtype:
    """The element type of a pickled storage class (``torch.FloatStorage`` → float32; untyped → uint8)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the legacy typed-storage classes warn on every attribute read
        dtype = getattr(storage_type, "dtype", torch.uint8)
    return dtype if isinstance(dtype, torch.dtype) else torch.uint8


def _allowed_globals() -> dict[str, Any]:
    """torch's own ``weights_only`` allow-list (name → object)."""
    try:
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed = dict(_get_allowed_globals())
    except ImportError:                                    # a torch without the private helper: the core set
        allowed = {f"torch.{n}": getattr(torch, n) for n in dir(torch) if n.endswith("Storage")}
        allowed.update({"collections.OrderedDict": collections.OrderedDict,
                        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
                        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter})
    for obj in torch.serialization.get_safe_globals():
        if not isinstance(obj, tuple):
            allowed[f"{obj.__module__}.{obj.__name__}"] = obj
    return allowed


class _Stub:
    """Stands for anything a scan does not build (tensors, layouts): it accepts every pickle operation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Stub:
        return _Stub()

    def __setstate__(self, state: Any) -> None:
        pass


class Disallowed(Exception):
    """A pickle names a global outside the allow-list."""


class _ScanUnpickler(pickle.Unpickler):
    """Walks a checkpoint pickle, refusing unknown globals and recording declared storages."""

    def __init__(self, data: bytes, allowed: dict[str, Any]) -> None:
        super().__init__(io.BytesIO(data))
        self.allowed = allowed
        self.storages: list[tuple[str, torch.dtype, int]] = []   # (key, dtype, numel)

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if full not in self.allowed:
            raise Disallowed(full)
        obj = self.allowed[full]
        # dtypes, storage types and plain containers are data; rebuild functions are not run in a scan
        if isinstance(obj, type) and (full.startswith(("collections.", "builtins.")) or name.endswith("Storage")):
            return obj
        return obj if isinstance(obj, torch.dtype) else _Stub()

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            self.storages.append((str(pid[2]), _dtype_of(pid[1]), int(pid[4])))
        return _Stub()


def refused(detector: str, name: str, what: str) -> WeightsRefused:
    """The one sentence for a pickle that names code (the only failure that says "would run code")."""
    return WeightsRefused(detector, f"checkpoint {name} was refused: it names the Python object {what} and would "
                                    "run code when loaded (only plain tensors are accepted). It was not executed.",
                          path=name, how_to_fix="Use the official checkpoint, or re-save the weights as a plain "
                                                "state dict (torch.save(model.state_dict(), ...)).")


def scan_pickle(data: bytes, detector: str, name: str) -> list[tuple[str, torch.dtype, int]]:
    """Refuse a pickle that names code; return the storages it declares as ``(key, dtype, numel)``.

    Raises:
        WeightsRefused: a global outside torch's tensor allow-list is named (nothing was executed).
        WeightsCorrupt: the pickle is malformed.
    """
    up = _ScanUnpickler(data, _allowed_globals())
    try:
        up.load()
    except Disallowed as exc:
        raise refused(detector, name, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any malformed pickle is one sentence
        raise WeightsCorrupt(detector, f"checkpoint {name} is damaged: its pickle cannot be read "
                                       f"({type(exc).__name__}).", path=name,
                             how_to_fix="Get the file again.") from None
    return up.storages


def check_records(zf: zipfile.ZipFile, prefix: str, storages: list[tuple[str, torch.dtype, int]], detector: str,
                  name: str) -> None:
    """Every declared storage record exists and holds at least the bytes its tensors need (never read past)."""
    sizes = {i.filename: i.file_size for i in zf.infolist()}
    for key, dtype, numel in storages:
        rec = f"{prefix}data/{key}"
        need = numel * dtype.itemsize
        if rec not in sizes:
            raise WeightsCorrupt(detector, f"checkpoint {name} is damaged: tensor record {rec} is missing.",
                                 path=name, how_to_fix="Get the file again.")
        if sizes[rec] < need:
            raise WeightsCorrupt(detector, f"checkpoint {name} is damaged: tensor record {rec} holds "
                                           f"{sizes[rec]:,} bytes but its tensor needs {need:,} (truncated "
                                           "record).", path=name, how_to_fix="Get the file again.")


# --------------------------------------------------------------------------------------------- TorchScript

_CLASS = re.compile(r"^class (\w+)\(Module\):\n((?:[ \t]+.*\n|\n)*)", re.MULTILINE)
_LIST = re.compile(r"^\s+__(parameters|buffers)__ = \[([^\]]*)\]", re.MULTILINE)


def _declared_members(zf: zipfile.ZipFile, prefix: str) -> dict[str, list[str]]:
    """``qualified class name → [parameter and buffer names]`` from the class headers in ``code/`` (read as text)."""
    out: dict[str, list[str]] = {}
    for n in zf.namelist():
        if not (n.startswith(f"{prefix}code/") and n.endswith(".py")):
            continue
        module = n[len(f"{prefix}code/"):-3].replace("/", ".")
        text = zf.read(n).decode("utf-8", "replace")
        for m in _CLASS.finditer(text):
            names: list[str] = []
            for kind in ("parameters", "buffers"):
                for lm in _LIST.finditer(m.group(2)):
                    if lm.group(1) == kind:
                        names += [s.strip().strip("\"'") for s in lm.group(2).split(",") if s.strip()]
            out[f"{module}.{m.group(1)}"] = names
    return out


class _ScriptObject:
    """A TorchScript module instance rebuilt as a plain attribute bag (its methods are never run)."""

    qualname = ""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)


def _as_list(items: Any) -> list:
    return list(items)


def _untagged(value: Any, _type: Any) -> Any:
    return value


# The TorchScript pickler tags typed lists and containers with these torch.jit._pickle functions; all they do is
# return their argument, so our own identity functions stand in for them (torch's are never resolved).
_JIT_LIST_TAGS: dict[str, Callable[..., Any]] = {
    **{f"build_{kind}list": _as_list for kind in ("int", "double", "bool", "tensor")},
    "restore_type_tag": _untagged,
}


class _ScriptUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, load_storage: Callable[[str, torch.dtype, int], Any]) -> None:
        super().__init__(io.BytesIO(data))
        self.load_storage = load_storage
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if module.startswith("__torch__"):
            if full not in self.classes:
                self.classes[full] = type(name, (_ScriptObject,), {"qualname": full})
            return self.classes[full]
        if full == "torch._utils._rebuild_tensor_v2":
            return torch._utils._rebuild_tensor_v2
        if module == "torch.jit._pickle" and name in _JIT_LIST_TAGS:
            return _JIT_LIST_TAGS[name]
        if full == "collections.OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name.endswith("Storage") and isinstance(getattr(torch, name, None), type):
            return getattr(torch, name)
        raise Disallowed(full)

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("unknown persistent id")
        return self.load_storage(str(pid[2]), _dtype_of(pid[1]), int(pid[4]))


def _collect(obj: Any, prefix: str, declared: dict[str, list[str]], out: dict[str, torch.Tensor],
             depth: int = 0) -> None:
    if depth > 64:
        return
    names = declared.get(type(obj).qualname)
    attrs = obj.__dict__
    for k in (names if names is not None else list(attrs)):
        v = attrs.get(k)
        if isinstance(v, torch.Tensor):
            out[prefix + k] = v
    for k, v in attrs.items():
        if isinstance(v, _ScriptObject):
            _collect(v, f"{prefix}{k}.", declared, out, depth + 1)


def read_torchscript(zf: zipfile.ZipFile, detector: str, name: str) -> dict[str, torch.Tensor]:
    """The state dict of a TorchScript archive, equal bit for bit to ``torch.jit.load(f).state_dict()``.

    Nothing in the archive is executed: only tensors are rebuilt, from records whose sizes are checked first.

    Raises:
        WeightsRefused: ``data.pkl`` names a global other than tensors, storages and script modules.
        WeightsCorrupt: a record is missing or too short, or the pickle is malformed.
    """
    pkl = min((n for n in zf.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), key=len)
    prefix = pkl[: -len("data.pkl")]
    sizes = {i.filename: i.file_size for i in zf.infolist()}
    cache: dict[str, Any] = {}

    def load_storage(key: str, dtype: torch.dtype, numel: int) -> Any:
        if key not in cache:
            rec = f"{prefix}data/{key}"
            check_records(zf, prefix, [(key, dtype, numel)], detector, name)
            raw = bytearray(zf.read(rec)[: numel * dtype.itemsize]) if sizes.get(rec) else bytearray()
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cache[key] = torch.storage.TypedStorage(wrap_storage=flat.untyped_storage(), dtype=dtype,
                                                        _internal=True)
        return cache[key]

    try:
        root = _ScriptUnpickler(zf.read(pkl), load_storage).load()
    except Disallowed as exc:
        raise refused(detector, name, str(exc)) from None
    except WeightsCorrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a malformed archive is one sentence
        raise WeightsCorrupt(detector, f"checkpoint {name} is a damaged TorchScript archive "
                                       f"({type(exc).__name__}: {str(exc)[:120]}).", path=name,
                             how_to_fix="Get the file again.") from None
    if not isinstance(root, _ScriptObject):
        raise WeightsCorrupt(detector, f"checkpoint {name} is a TorchScript archive without a module.", path=name)
    out: dict[str, torch.Tensor] = {}
    _collect(root, "", _declared_members(zf, prefix), out)
    return out
