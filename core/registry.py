"""Detector registry: YAML specs (what) + registered builders (how to build).

Adding a detector = one YAML under configs/detectors/ (+ one ``@register_arch`` builder for a new architecture).
The UI and CLI list detectors from here, never from a hard-coded list.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from core.errors import ConfigError, UnknownDetector, WeightsUnavailable
from core.specs import DetectorSpec, parse_spec

ArchBuilder = Callable[..., "Detector"]  # noqa: F821 - (spec, device=...) -> Detector with random weights

_ARCHS: dict[str, ArchBuilder] = {}
_CONFIG_DIRS: list[Path] = [Path(__file__).resolve().parents[1] / "configs" / "detectors"]
# The order the papers' detectors are shown in (ensemble weight order of the seed), then anything added later.
PREFERRED_ORDER = ("CLIP-D", "R50_TF", "R50_nodown", "P2G", "NPR", "FACE")
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
    import core.detectors  # noqa: F401 - importing registers every family's builders


def config_dirs() -> list[Path]:
    """Folders scanned for detector YAMLs: the shipped one, ``add_config_dir`` ones, then
    ``$DEEPFAKE_LENS_CONFIG_DIRS`` (os.pathsep-separated; how tests and users add their own detectors)."""
    extra = [Path(p).expanduser() for p in os.environ.get("DEEPFAKE_LENS_CONFIG_DIRS", "").split(os.pathsep) if p]
    return list(_CONFIG_DIRS) + [p for p in extra if p not in _CONFIG_DIRS]


def _scan() -> dict[str, DetectorSpec]:
    """Parse and validate every YAML; cached until a file or the folder list changes."""
    global _scan_cache
    _ensure_builtin_archs()
    dirs = config_dirs()
    files = sorted({f for d in dirs if d.is_dir() for f in list(d.glob("*.yaml")) + list(d.glob("*.yml"))})
    stamp = tuple((str(f), f.stat().st_mtime_ns) for f in files) + (tuple(map(str, dirs)), tuple(_ARCHS))
    with _scan_lock:
        if _scan_cache is not None and _scan_cache[0] == stamp:
            return _scan_cache[1]
        specs: dict[str, DetectorSpec] = {}
        origin: dict[str, Path] = {}
        for f in files:
            try:
                data = yaml.safe_load(f.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise ConfigError(f"{f}: not valid YAML ({exc})") from None
            spec = parse_spec(data, f, known_archs=set(_ARCHS))
            if spec.key in specs:
                raise ConfigError(f"{f}: field 'id': duplicate detector {spec.key!r} (also in {origin[spec.key]})")
            specs[spec.key] = spec
            origin[spec.key] = f
        by_id: dict[str, list[DetectorSpec]] = {}
        for s in specs.values():
            by_id.setdefault(s.id, []).append(s)
        for det_id, group in by_id.items():
            defaults = [s for s in group if s.default]
            if len(defaults) > 1:
                raise ConfigError(f"{defaults[1].config_path}: field 'default': {det_id} has more than one default "
                                  f"variant ({[s.variant for s in defaults]})")
        _scan_cache = (stamp, specs)
        return specs


def _order(det_id: str) -> tuple[int, str]:
    return (PREFERRED_ORDER.index(det_id) if det_id in PREFERRED_ORDER else len(PREFERRED_ORDER), det_id)


def list_detectors() -> list[str]:
    """The detector ids (paper names), each once, in display order.

    Example:
        >>> list_detectors()
        ['CLIP-D', 'R50_TF', 'R50_nodown', 'P2G', 'NPR', 'FACE']
    """
    return sorted({s.id for s in _scan().values()}, key=_order)


def list_specs(detector_id: str | None = None) -> list[DetectorSpec]:
    """Every variant's spec (optionally of one id), default variant first within an id."""
    specs = [s for s in _scan().values() if detector_id is None or s.id == detector_id]
    return sorted(specs, key=lambda s: (_order(s.id), not _is_default(s), s.variant))


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


def create_detector(name: str, weights: str | Path | None = None, *, variant: str | None = None,
                    backbone_weights: str | Path | None = None, device: str | torch.device = "cpu",
                    weights_dir: str | Path | None = None, pretrained: bool = True, allow_download: bool = False,
                    progress: Callable[[int, int | None], None] | None = None) -> "Detector":  # noqa: F821
    """Build a detector and load its checkpoint(s).

    Args:
        name: ``ID`` (default variant) or ``ID:variant``.
        weights: explicit checkpoint path; None = look in the weights folder, then the Hub cache.
        variant: variant tag (alternative to ``ID:variant``).
        backbone_weights: explicit backbone checkpoint (CLIP-D, P2G); None = resolve as for ``weights``.
        device: torch device.
        weights_dir: override of the weights folder.
        pretrained: False builds random weights (tests only; the UI never shows such a verdict).
        allow_download: when True and online, fetch missing checkpoints from their declared sources.
        progress: ``fn(bytes_done, bytes_total_or_None)`` during downloads.

    Returns:
        A ready :class:`~core.detectors.base.Detector` in eval mode.

    Raises:
        UnknownDetector, WeightsUnavailable, WeightsCorrupt, WeightsRefused.

    Example:
        >>> det = create_detector("NPR", weights="NPR.pth")
        >>> det.predict(load_image("img.png")).label
        'real'
    """
    from core import weights as W  # local import: weights imports the registry for bundle import

    spec = get_spec(name, variant)
    if weights is not None and spec.weights is None:
        raise WeightsUnavailable(spec.id, [], f"{spec.id} takes no checkpoint file.", what="no weights expected")
    det = _ARCHS[spec.arch](spec, device=device)
    if pretrained:
        if spec.weights is not None:
            path = W.resolve_weights(spec, weights=weights, weights_dir=weights_dir, allow_download=allow_download,
                                     progress=progress)
            det.load_checkpoint(W.load_checkpoint(path, spec.id), str(path))
            det.weights_path, det.weights_sha256 = Path(path), W.sha256_file(path)
        if spec.backbone is not None:
            path = W.resolve_weights(spec, weights=backbone_weights, weights_dir=weights_dir,
                                     allow_download=allow_download, progress=progress, part="backbone")
            det.load_backbone(W.load_checkpoint(path, spec.id), str(path))
            det.backbone_path, det.backbone_sha256 = Path(path), W.sha256_file(path)
        det.model.eval()
    return det


__all__ = ["register_arch", "add_config_dir", "list_archs", "list_detectors", "list_specs", "get_spec",
           "create_detector"]


