"""Building detectors: the architecture from the registry, the checkpoint(s) from the weights store.

Sits above :mod:`core.models.registry` and :mod:`core.models.weights` (which never import it).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from core.errors import WeightsUnavailable
from core.models import weights as W
from core.models.checkpoint import Loaded, load_verified
from core.models.registry import get_arch, get_spec
from core.models.specs import DetectorSpec
from core.models.weights.store import read_sidecar

if TYPE_CHECKING:
    from core.models.detectors.base import Detector


def build_detector(spec: DetectorSpec, *, device: str | torch.device = "cpu") -> "Detector":
    """The detector's architecture with random weights (nothing is loaded or downloaded).

    Used to check a checkpoint against the architecture and by tests; never shown to a user as a verdict.
    """
    return get_arch(spec.arch)(spec, device=device)


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
        A ready :class:`~core.models.detectors.base.Detector` in eval mode; with ``pretrained`` its network is
        already optimised for inference (:meth:`~core.models.detectors.base.Detector.optimize_for_inference`).

    Raises:
        UnknownDetector, WeightsUnavailable, WeightsCorrupt, WeightsRefused.

    Example:
        >>> det = create_detector("NPR", weights="NPR.pth")
        >>> det.predict(load_image("img.png")).label
        'real'
    """
    spec = get_spec(name, variant)
    if weights is not None and spec.weights is None:
        raise WeightsUnavailable(spec.id, [], f"{spec.id} takes no checkpoint file.", what="no weights expected")
    det = build_detector(spec, device=device)
    if pretrained:
        if spec.weights is not None:
            loaded, path = _load_part(spec, "weights", weights, weights_dir, allow_download, progress)
            det.load_checkpoint(loaded.obj, loaded.name)
            det.weights_path, det.weights_sha256 = path, loaded.sha256
            if weights is not None:
                det.custom_weights = path.name      # results say "custom file", never the official variant
            elif spec.variant == "custom":
                det.custom_weights = _custom_name(path, loaded.sha256)
        if spec.backbone is not None:
            loaded, path = _load_part(spec, "backbone", backbone_weights, weights_dir, allow_download, progress)
            det.load_backbone(loaded.obj, loaded.name)
            det.backbone_path, det.backbone_sha256 = path, loaded.sha256
        det.model.eval()
        det.optimize_for_inference()      # the weights are final: fold batch norms (same scores, faster)
    return det


def _custom_name(path: Path, sha256: str) -> str:
    """The name the user gave an imported custom checkpoint, when the record is about these very bytes."""
    side = read_sidecar(path) or {}
    name = side.get("name")
    return name if isinstance(name, str) and name and side.get("sha256") == sha256 else path.name


def _load_part(spec: DetectorSpec, part: str, explicit: str | Path | None, weights_dir: str | Path | None,
               allow_download: bool, progress: Callable[[int, int | None], None] | None) -> tuple[Loaded, Path]:
    """Resolve, then load from one immutable snapshot; the official checksum is checked on the bytes loaded."""
    path = W.resolve_weights(spec, weights=explicit, weights_dir=weights_dir, allow_download=allow_download,
                             progress=progress, part=part, check=False)
    ws = W.part_spec(spec, part)
    loaded = load_verified(path, spec.id, want_blob=explicit is None and ws.sha256 is None
                           and ws.git_blob_sha1 is not None)
    if explicit is None:
        W.check_known(spec, ws, str(path), loaded.size, loaded.sha256, lambda: loaded.git_blob_sha1 or "")
    return loaded, Path(path)


__all__ = ["build_detector", "create_detector"]
