"""Detector registry: YAML specs (what) + registered builders (how to build).

Adding a detector = one YAML under configs/detectors/ (its variants inside; + one ``@register_arch`` builder for a new
architecture). The UI and CLI list detectors from here, never from a hard-coded list; the display order comes from
each YAML's ``order``. Parsing is :mod:`core.models.specs` (pure); this module adds the builders.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from core import settings
from core.errors import ConfigError, UnknownDetector
from core.models.specs import DetectorSpec, scan_specs, spec_files

ArchBuilder = Callable[..., "Detector"]  # noqa: F821 - (spec, device=...) -> Detector with random weights

_ARCHS: dict[str, ArchBuilder] = {}
_CONFIG_DIRS: list[Path] = [settings.DETECTOR_CONFIG_DIR]
_scan_lock = threading.Lock()
_scan_cache: tuple[tuple, dict[str, DetectorSpec]] | None = None


def register_arch(name: str) -> Callable[[ArchBuilder], ArchBuilder]:
    """Decorator registering a builder ``fn(spec, device="cpu") -> Detector`` under an architecture key.

    The builder must create the model with random weights and never download anything.

    Raises:
        ValueError: when the name is already registered.
    """
    def deco(fn: ArchBuilder) -> ArchBuilder:
        if name in _ARCHS and _ARCHS[name] is not fn:
            raise ValueError(f"duplicate arch {name!r}")
        _ARCHS[name] = fn
        return fn
    return deco


def get_arch(name: str) -> ArchBuilder:
    """The registered builder of an architecture key (raises UnknownDetector when none is)."""
    _ensure_builtin_archs()
    try:
        return _ARCHS[name]
    except KeyError:
        raise UnknownDetector(f"no architecture {name!r} is registered; known: {', '.join(sorted(_ARCHS))}.") from None


def list_archs() -> list[str]:
    """Registered architecture keys."""
    _ensure_builtin_archs()
    return sorted(_ARCHS)


def add_config_dir(path: str | Path) -> None:
    """Add a folder of detector YAMLs (used by tests and by users with their own detectors)."""
    p = Path(path)
    if p not in _CONFIG_DIRS:
        _CONFIG_DIRS.append(p)


def _ensure_builtin_archs() -> None:
    import core.models.detectors  # noqa: F401 - importing registers every family's builders


def config_dirs() -> list[Path]:
    """Folders scanned for detector YAMLs: the shipped one, ``add_config_dir`` ones, then
    ``$DEEPFAKE_LENS_CONFIG_DIRS`` (os.pathsep-separated; how tests and users add their own detectors)."""
    extra = settings.extra_config_dirs()
    return list(_CONFIG_DIRS) + [p for p in extra if p not in _CONFIG_DIRS]


def _scan() -> dict[str, DetectorSpec]:
    """Parse and validate every YAML (:func:`core.models.specs.scan_specs`) and check each ``arch`` against the
    registered builders; cached until a file, the folder list or the set of builders changes."""
    global _scan_cache
    _ensure_builtin_archs()
    dirs = config_dirs()
    files = spec_files(dirs)
    stamp = tuple((str(f), f.stat().st_mtime_ns) for f in files) + (tuple(map(str, dirs)), tuple(_ARCHS))
    with _scan_lock:
        if _scan_cache is not None and _scan_cache[0] == stamp:
            return _scan_cache[1]
        specs = scan_specs(dirs)
        for spec in specs.values():
            if spec.arch not in _ARCHS:
                raise ConfigError(f"{spec.config_path}: variant '{spec.variant}': field 'arch': unknown architecture "
                                  f"{spec.arch!r}; registered: {sorted(_ARCHS)}")
        _scan_cache = (stamp, specs)
        return specs


def _id_order(specs: dict[str, DetectorSpec]) -> dict[str, tuple[int, int, str]]:
    """Display order of each id: its YAML's ``order`` (the smallest over its variants), then ids without one, by name."""
    orders: dict[str, list[int]] = {}
    for s in specs.values():
        orders.setdefault(s.id, [])
        if s.order is not None:
            orders[s.id].append(s.order)
    return {i: ((0, min(o), i) if o else (1, 0, i)) for i, o in orders.items()}


def list_detectors() -> list[str]:
    """The detector ids (paper names), each once, in display order.

    Example:
        >>> list_detectors()
        ['CLIP-D', 'R50_TF', 'R50_nodown', 'P2G', 'NPR', 'FACE']
    """
    order = _id_order(_scan())
    return sorted(order, key=order.__getitem__)


def list_specs(detector_id: str | None = None) -> list[DetectorSpec]:
    """Every variant's spec (optionally of one id), default variant first within an id."""
    all_specs = _scan()
    order = _id_order(all_specs)
    specs = [s for s in all_specs.values() if detector_id is None or s.id == detector_id]
    return sorted(specs, key=lambda s: (order[s.id], not _is_default(s), s.variant))


def _is_default(spec: DetectorSpec) -> bool:
    group = [s for s in _scan().values() if s.id == spec.id]
    if any(s.default for s in group):
        return spec.default
    if any(s.variant == "original" for s in group):
        return spec.variant == "original"
    return spec.variant == min(s.variant for s in group)


def get_spec(name: str, variant: str | None = None) -> DetectorSpec:
    """Look up a spec by ``ID``, ``ID:variant`` or (ID, variant).

    Raises:
        UnknownDetector: naming the known ids/variants.
    """
    if ":" in name and variant is None:
        name, variant = name.split(":", 1)
    specs = _scan()
    group = [s for s in specs.values() if s.id == name]
    if not group:
        raise UnknownDetector(f"unknown detector {name!r}; known: {', '.join(list_detectors())}.")
    if variant is None:
        return next(s for s in group if _is_default(s))
    for s in group:
        if s.variant == variant:
            return s
    raise UnknownDetector(f"{name} has no variant {variant!r}; variants: {', '.join(sorted(s.variant for s in group))}.")


__all__ = [
    "add_config_dir",
    "config_dirs",
    "get_arch",
    "get_spec",
    "list_archs",
    "list_detectors",
    "list_specs",
    "register_arch",
]


