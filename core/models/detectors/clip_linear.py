"""CLIP-D (Cozzolino et al., CVPRW 2024): a linear probe on frozen open_clip ViT-L/14 features.

The feature is the *next-to-last* one: ``visual.proj`` is removed, so the vision tower returns the 1024-d
``ln_post`` of the CLS token, which is L2-normalised and fed to ``fc`` = Linear(1024, 1). Positive logit = fake.

Two weight files make one detector, as upstream:

* the detector checkpoint (``weights.pth``, 5 KB) holds only ``fc.weight`` / ``fc.bias``. The backbone therefore
  lives *outside* the module's ``state_dict()`` (held in a plain list, like upstream's ``self.bb``), so
  ``Detector.load_checkpoint`` loads the head strictly with no special case;
* the backbone checkpoint is an open_clip state dict (``open_clip_pytorch_model.bin`` of
  laion/CLIP-ViT-L-14-CommonPool.XL-s13B-b90K), loaded by :meth:`ClipLinearDetector.load_backbone`.

Memory: CLIP-D never runs the text tower (~123 M parameters, ~0.5 GB in float32), so it is never built: the
full CLIP is built on PyTorch's ``meta`` device (shapes only, no memory) to record the official layout, and only the
vision tower (304 M parameters) gets real weights. A backbone file is still checked key for key (text keys
included) against that recorded layout, and only its ``visual.*`` part is loaded. After real backbone weights are
loaded the shapes-only text tower is dropped too. ``options.keep_text_tower: true`` builds and keeps the real text
tower instead (loaded from the file).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import WeightsCorrupt
from core.models.checkpoint import describe_mismatch, unwrap_state_dict
from core.models.detectors.base import Detector
from core.models.registry import register_arch
from core.models.specs import DetectorSpec

PROJ_KEY = "visual.proj"                      # in every open_clip file; unused by CLIP-D (next-to-last feature)
DEFAULT_CLIP_ARCH = "ViT-L-14"


class _DropRandomInitWarning(logging.Filter):
    """Hides open_clip's "initialized randomly" warning: here random init is intended (weights come next)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


@contextmanager
def _quiet_random_init() -> Iterator[None]:
    flt = _DropRandomInitWarning()
    root = logging.getLogger()
    root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


def build_open_clip(arch: str = DEFAULT_CLIP_ARCH, *, text_tower: bool = True) -> nn.Module:
    """Build an open_clip CLIP model with random weights (never downloads).

    Args:
        arch: open_clip model name, e.g. ``"ViT-L-14"``.
        text_tower: False builds the text tower on the ``meta`` device only (its names and shapes, no memory and
            no initialisation): enough to check a file against the full layout, for detectors that never run it.

    Returns:
        The ``open_clip.model.CLIP`` module in eval mode, float32, vision tower on CPU.
    """
    import open_clip  # local import: open_clip is slow to import and only CLIP detectors need it

    with _quiet_random_init():
        if text_tower:
            return open_clip.create_model(arch, pretrained=None).eval()
        with torch.device("meta"):
            model = open_clip.create_model(arch, pretrained=None, device="meta")
        cfg = open_clip.get_model_config(arch)
        # The vision tower built by the same open_clip function CLIP.__init__ uses, with real (random) weights.
        visual = open_clip.model._build_vision_tower(cfg["embed_dim"], cfg["vision_cfg"],
                                                     bool(cfg.get("quick_gelu", False)), None)
    if repr(visual) != repr(model.visual):     # an open_clip change in how CLIP builds its vision tower
        with _quiet_random_init():
            return open_clip.create_model(arch, pretrained=None).eval()
    model.visual = visual
    return model.eval()


def text_tower_built(clip: nn.Module) -> bool:
    """True when every tensor of a CLIP model holds values (False: its text tower is shapes only, ``meta``)."""
    return not any(t.is_meta for t in (*clip.parameters(), *clip.buffers()))


class ClipLinear(nn.Module):
    """Frozen open_clip backbone (next-to-last feature, L2-normalised) + linear head ``fc``.

    ``state_dict()`` holds exactly ``fc.weight`` and ``fc.bias`` (the official head checkpoint's keys). The
    backbone is reached through :attr:`backbone` / :attr:`visual`, is moved along by ``.to()`` and always runs in
    eval mode (it is frozen, as in the paper).

    Args:
        clip: an ``open_clip`` CLIP model whose ``visual.proj`` is still present (its input size gives the
            feature width).
        num_classes: head outputs (1: a single fake logit).
        normalize: L2-normalise the feature before the head (True for CLIP-D).

    Example:
        >>> model = ClipLinear(build_open_clip("ViT-L-14"))
        >>> sorted(model.state_dict())
        ['fc.bias', 'fc.weight']
    """

    def __init__(self, clip: nn.Module, num_classes: int = 1, normalize: bool = True) -> None:
        super().__init__()
        proj = clip.visual.proj
        if proj is None:
            raise ValueError("ClipLinear needs the CLIP model with visual.proj still set (it gives the width)")
        # The layout the official backbone file has, recorded before anything is removed, so that every later
        # load is checked against the full open_clip layout (also after the text tower was deleted).
        self._backbone_layout: dict[str, tuple[int, ...]] = {k: tuple(v.shape) for k, v in clip.state_dict().items()}
        self.num_features = int(proj.shape[0])
        clip.visual.proj = None               # next-to-last feature: ln_post(CLS), 1024-d for ViT-L/14
        self.normalize = normalize
        self.fc = nn.Linear(self.num_features, num_classes)
        # Plain lists are invisible to nn.Module: the backbone stays out of state_dict()/parameters().
        self._clip: list[nn.Module | None] = [clip.eval()]
        self._visual: list[nn.Module] = [clip.visual]

    # ------------------------------------------------------------------ backbone access
    @property
    def visual(self) -> nn.Module:
        """The open_clip vision tower (``visual.proj`` is None)."""
        return self._visual[0]

    @property
    def backbone(self) -> nn.Module | None:
        """The full open_clip CLIP model, or None once the text tower was deleted."""
        return self._clip[0]

    @property
    def has_text_tower(self) -> bool:
        """True while the full CLIP (text tower included, built or shapes only) is held; False after
        :meth:`drop_text_tower`."""
        return self._clip[0] is not None

    @property
    def text_tower_built(self) -> bool:
        """True when the held text tower has real weights (``keep_text_tower``), False when it is shapes only."""
        return self._clip[0] is not None and text_tower_built(self._clip[0])

    def _backbone_module(self) -> tuple[nn.Module, str]:
        """The module backbone weights go into and the key prefix it drops: the full CLIP when its text tower is
        built, else the vision tower alone."""
        return (self._clip[0], "") if self.text_tower_built else (self.visual, "visual.")

    @property
    def backbone_layout(self) -> dict[str, tuple[int, ...]]:
        """Key → shape of the official open_clip backbone file (``visual.proj`` included)."""
        return dict(self._backbone_layout)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The backbone's open_clip-named state dict (without ``visual.proj``).

        The full CLIP layout (445 keys for ViT-L/14) while the text tower is held, ``visual.*`` only after it
        was dropped. A text tower that was never built (shapes only) is given as zeros of its shapes: a template
        (for tests and benchmarks) that a backbone file must match, never weights that run.
        """
        if self._clip[0] is not None:
            return {k: torch.zeros(v.shape, dtype=v.dtype) if v.is_meta else v
                    for k, v in self._clip[0].state_dict().items()}
        return {f"visual.{k}": v for k, v in self.visual.state_dict().items()}

    def load_backbone_state_dict(self, state_dict: Mapping[str, torch.Tensor], detector: str = "CLIP-D",
                                 path: str | None = None, expected: str = "the open_clip CLIP state dict") -> None:
        """Load an open_clip state dict strictly into the backbone.

        ``visual.proj`` is accepted (every open_clip file has it) and ignored, since CLIP-D uses the feature
        before the projection; it may also be absent. Every other key must be present with its shape, and no
        other key may appear. Text-tower keys are checked even when the text tower was deleted.

        Args:
            state_dict: open_clip key names (``visual.*``, ``transformer.*``, ``token_embedding.weight``, ...).
            detector: detector id for error messages.
            path: file name for error messages.
            expected: what the file should be, for error messages (e.g. its Hub repo and file name).

        Raises:
            WeightsCorrupt: naming the missing, unexpected or mis-shaped keys.
        """
        layout = self._backbone_layout
        where = f"backbone checkpoint {path}" if path else "backbone checkpoint"
        parts = describe_mismatch(layout, state_dict, optional=(PROJ_KEY,))
        non_float = [k for k in state_dict if k in layout and not torch.is_floating_point(state_dict[k])]
        if non_float:
            parts.append(f"{len(non_float)} non-floating-point tensors (e.g. {non_float[:3]})")
        if parts:
            raise WeightsCorrupt(
                detector, f"{where} does not fit the {detector} backbone (expected {expected}): "
                          + "; ".join(parts) + ".", path=path)
        target, prefix = self._backbone_module()
        own = target.state_dict()
        # Cast to the module's dtype (half-precision files run in float32) and load strictly.
        sd = {k[len(prefix):]: v.to(dtype=own[k[len(prefix):]].dtype)
              for k, v in state_dict.items() if k != PROJ_KEY and k.startswith(prefix)}
        target.load_state_dict(sd, strict=True)

    def drop_text_tower(self) -> None:
        """Delete the text tower (CLIP-D never uses it; saves ~0.5 GB for ViT-L/14). Irreversible."""
        self._clip[0] = None

    # ------------------------------------------------------------------ nn.Module plumbing
    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> "ClipLinear":
        # .to()/.float()/.cuda() go through _apply: move the hidden backbone too (upstream overrides .to()).
        # A shapes-only text tower stays on the meta device (it has no values to move).
        self._backbone_module()[0]._apply(fn, recurse)
        return super()._apply(fn, recurse)

    def train(self, mode: bool = True) -> "ClipLinear":
        """Set the head's mode; the frozen backbone always stays in eval mode."""
        super().train(mode)
        (self._clip[0] if self._clip[0] is not None else self.visual).eval()
        return self

    # ------------------------------------------------------------------ forward
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×224×224 → N×1024 next-to-last features (L2-normalised when ``normalize``)."""
        feats = self.visual(x)
        return F.normalize(feats, dim=-1) if self.normalize else feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N×3×224×224 → N×num_classes logits."""
        return self.fc(self.features(x))


class ClipLinearDetector(Detector):
    """CLIP-D: head checkpoint via the base class, open_clip backbone via :meth:`load_backbone`."""

    model: ClipLinear

    def load_backbone(self, checkpoint: Any, path: str | None = None) -> None:
        """Load the open_clip backbone checkpoint (already safely unpickled), then drop the text tower.

        Raises:
            WeightsCorrupt: the file is not the expected open_clip ViT-L-14 state dict.
        """
        container = self.spec.backbone.container if self.spec.backbone is not None else "raw"
        sd = unwrap_state_dict(checkpoint, container, self.spec.id, path)
        arch = self.spec.options.get("clip_arch", DEFAULT_CLIP_ARCH)
        sources = self.spec.backbone.sources if self.spec.backbone is not None else ()
        expected = f"an open_clip {arch} state dict" + (f" such as {sources[0].describe()}" if sources else "")
        self.model.load_backbone_state_dict(sd, self.spec.id, path, expected=expected)
        if not self.spec.options.get("keep_text_tower", False):
            self.model.drop_text_tower()
        self.model.eval()

    @torch.inference_mode()
    def features(self, batch: torch.Tensor) -> torch.Tensor:
        """The head's input (N×1024) for a batch of prepared tensors; useful to inspect or calibrate."""
        return self.model.features(batch.to(self.device))


@register_arch("clip_linear")
def build_clip_linear(spec: DetectorSpec, device: str | torch.device = "cpu") -> Detector:
    """Builder for ``arch: clip_linear`` (random backbone and head until checkpoints are loaded).

    Options (YAML ``options``): ``clip_arch`` (open_clip model name, default ``ViT-L-14``), ``normalize``
    (default true), ``keep_text_tower`` (default false: the text tower is never built, only its layout is kept).
    """
    opts = spec.options
    clip = build_open_clip(str(opts.get("clip_arch", DEFAULT_CLIP_ARCH)),
                           text_tower=bool(opts.get("keep_text_tower", False)))
    model = ClipLinear(clip, num_classes=1, normalize=bool(opts.get("normalize", True)))
    return ClipLinearDetector(spec, model, device=device)


__all__ = ["ClipLinear", "ClipLinearDetector", "build_clip_linear", "build_open_clip", "text_tower_built",
           "PROJ_KEY"]
