"""RINE (Koutlis & Papadopoulos, ECCV 2024): Representations from INtermediate Encoder-blocks of a frozen CLIP.

Faithful to ``src/models.py`` / ``src/utils.py`` of github.com/mever-team/rine (written here in our own code):

1. The frozen OpenAI CLIP ViT-L/14 image encoder runs on a 224×224 crop; the **CLS token of the output of every
   block's ``ln_2``** (the LayerNorm in front of each MLP; 24 blocks) is collected → ``g`` ``[N, 24, 1024]``.
2. ``proj1`` (``nproj`` × Linear+ReLU, with the upstream Dropouts, inactive at inference) maps each block's token to
   ``proj_dim``; the Trainable Importance Estimator weights the blocks with ``softmax(alpha)`` over the block axis
   (one weight per block *and* feature) and sums them; ``proj2`` (``nproj`` × Linear+ReLU) and the head
   Linear-ReLU-Linear-ReLU-Linear give one logit (positive = fake, p = sigmoid).

The checkpoint (``ckpt/model_<setting>_trainable.pth``) is a raw dict of the trainable part only — ``alpha``,
``proj1.*``, ``proj2.*``, ``head.*`` — loaded strictly into :attr:`RineNet.trainable`. Head sizes per upstream
checkpoint (``get_our_trained_model``): 1class 4×1024, 2class 4×128, 4class 2×1024, ldm 4×1024 (YAML options
``nproj`` / ``proj_dim``). The backbone is a separate file shared by every variant
(:mod:`core.models.detectors.openai_clip`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.models.checkpoint import load_strict, unwrap_state_dict
from core.models.detectors.base import Detector
from core.models.detectors.openai_clip import build_visual_tower, load_visual_strict
from core.models.detectors.vit_cam import TokenCamMixin, token_gradcam
from core.models.preprocess import Prepared
from core.models.registry import register_arch
from core.models.specs import DetectorSpec


def _projection(d_in: int, dim: int, layers: int) -> nn.Sequential:
    """Dropout, then ``layers`` × (Linear, ReLU, Dropout): upstream's indices (Linear at 1, 4, 7, …) = its keys."""
    mods: list[nn.Module] = [nn.Dropout()]
    for i in range(layers):
        mods += [nn.Linear(d_in if i == 0 else dim, dim), nn.ReLU(), nn.Dropout()]
    return nn.Sequential(*mods)


class RineHead(nn.Module):
    """The trainable part of RINE; its ``state_dict()`` keys are exactly the upstream checkpoint's.

    Args:
        nproj: Linear+ReLU layers in each of ``proj1`` and ``proj2``.
        proj_dim: their width.
        width: the backbone's token width (1024 for ViT-L/14).
        blocks: transformer blocks whose CLS tokens are weighted (24 for ViT-L/14).

    Example:
        >>> sorted(RineHead(nproj=2, proj_dim=8, width=16, blocks=3).state_dict())[:3]
        ['alpha', 'head.0.bias', 'head.0.weight']
    """

    def __init__(self, nproj: int, proj_dim: int, width: int = 1024, blocks: int = 24) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.randn(1, blocks, proj_dim))
        self.proj1 = _projection(width, proj_dim, nproj)
        self.proj2 = _projection(proj_dim, proj_dim, nproj)
        self.head = nn.Sequential(nn.Linear(proj_dim, proj_dim), nn.ReLU(), nn.Dropout(),
                                  nn.Linear(proj_dim, proj_dim), nn.ReLU(), nn.Dropout(), nn.Linear(proj_dim, 1))

    def forward(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``g`` ``[N, blocks, width]`` → (logit ``[N, 1]``, feature after proj2 ``[N, proj_dim]``)."""
        z = (torch.softmax(self.alpha, dim=1) * self.proj1(g.float())).sum(dim=1)
        z = self.proj2(z)
        return self.head(z), z

    def block_weights(self) -> torch.Tensor:
        """softmax(alpha) averaged over the feature axis: how much each block counts, ``[blocks]`` (sums to 1)."""
        return torch.softmax(self.alpha.detach(), dim=1)[0].mean(dim=1)


class RineNet(nn.Module):
    """Frozen CLIP vision tower (:attr:`visual`) + :class:`RineHead` (:attr:`trainable`); ``forward`` → ``[N, 1]``."""

    def __init__(self, visual: nn.Module, trainable: RineHead) -> None:
        super().__init__()
        self.visual = visual
        self.trainable = trainable

    def block_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, 224, 224]`` → the CLS token of every block's ``ln_2`` output, ``[N, blocks, width]``.

        Forward hooks on the ``ln_2`` modules, as upstream, registered for this call only (callers serialise
        forwards on a shared model with the detector's lock).
        """
        blocks = self.visual.transformer.resblocks
        batch_first = getattr(self.visual.transformer, "batch_first", True)
        seen: list[torch.Tensor | None] = [None] * len(blocks)

        def keep(i: int):
            def hook(_m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
                seen[i] = out[:, 0] if batch_first else out[0]
            return hook

        handles = [blk.ln_2.register_forward_hook(keep(i)) for i, blk in enumerate(blocks)]
        try:
            self.visual(x)
        finally:
            for h in handles:
                h.remove()
        return torch.stack(seen, dim=1)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images → logits ``[N, 1]`` (positive = fake)."""
        return self.trainable(self.block_tokens(x))[0]


class RineDetector(TokenCamMixin, Detector):
    """RINE: head checkpoint into :attr:`RineNet.trainable`, OpenAI backbone via :meth:`load_backbone`.

    With ``preprocess.mode: ten_crop`` (upstream's Synthbuster evaluation) each image gives ten crops; the logit is
    the mean of their ten logits (``details["crop_logits"]`` holds them, upstream order).
    """

    model: RineNet

    def __init__(self, spec: DetectorSpec, model: RineNet, layout: Mapping[str, tuple[int, ...]], *,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(spec, model, device=device)
        self.backbone_layout = dict(layout)           # the full OpenAI layout files are checked against

    def load_checkpoint(self, checkpoint: Any, path: str | None = None) -> None:
        """Load ``model_<setting>_trainable.pth`` (alpha, proj1, proj2, head) strictly into the trainable part."""
        container = self.spec.weights.container if self.spec.weights is not None else "raw"
        sd = unwrap_state_dict(checkpoint, container, self.spec.id, path)
        load_strict(self.model.trainable, sd, self.spec.id, path)
        self.model.eval()

    def load_backbone(self, checkpoint: Any, path: str | None = None) -> None:
        """Load the OpenAI CLIP ViT-L/14 weights (JIT archive, OpenAI/open_clip or transformers names).

        Raises:
            WeightsCorrupt: the file is not the complete OpenAI ViT-L/14 state dict.
        """
        load_visual_strict(self.model.visual, self.backbone_layout, checkpoint, self.spec.id, path)
        self.model.eval()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Batch → logits ``[N]``; a ten-crop batch ``[N, 10, 3, 224, 224]`` gives each image's mean crop logit."""
        if batch.dim() == 5:
            n, k = batch.shape[:2]
            return super().forward(batch.flatten(0, 1)).reshape(n, k).mean(dim=1)
        return super().forward(batch)

    def score(self, prepared: Sequence[Prepared]) -> list[tuple[float, Mapping[str, Any]]]:
        """Single crop: one forward for the batch. Ten-crop: every crop of every image in one forward, logits averaged."""
        batch = torch.stack([p.tensor for p in prepared]).to(self.device)
        if batch.dim() == 4:
            return super().score(prepared)
        n, k = batch.shape[:2]
        crops = self.forward(batch.flatten(0, 1)).float().reshape(n, k).cpu()
        return [(float(row.mean()), {"crop_logits": [float(v) for v in row]}) for row in crops]

    def _input_heat(self, prep: Prepared, layer: nn.Module) -> np.ndarray:
        if prep.tensor.dim() != 3:
            raise NotImplementedError(f"{self.spec.key}: Grad-CAM is offered for the single centre crop only.")
        x = prep.tensor.unsqueeze(0).to(self.device)
        tokens = token_gradcam(self.forward, layer, x, n_prefix=1)
        side = int(round(tokens.shape[1] ** 0.5))
        heat = F.interpolate(tokens.reshape(1, 1, side, side), size=tuple(x.shape[-2:]), mode="bilinear",
                             align_corners=False)[0, 0].cpu().numpy()
        # A side under 224 was zero-padded ((224 - s) // 2 before): keep only the part that shows the image.
        (w0, h0), (wi, hi) = prep.image_size, prep.input_size
        top, left = (max(0, (hi - h0) // 2), max(0, (wi - w0) // 2))
        return heat[top:top + min(h0, hi), left:left + min(w0, wi)]


@register_arch("rine")
def build_rine(spec: DetectorSpec, device: str | torch.device = "cpu") -> RineDetector:
    """Builder for ``arch: rine`` (random backbone and head until checkpoints are loaded; nothing downloaded).

    Options (YAML ``options``): ``nproj`` (Linear+ReLU layers per projection, default 2) and ``proj_dim`` (their
    width, default 1024) — the upstream checkpoint's head configuration.
    """
    nproj = int(spec.options.get("nproj", 2))
    proj_dim = int(spec.options.get("proj_dim", 1024))
    visual, layout = build_visual_tower()
    head = RineHead(nproj, proj_dim, width=int(visual.transformer.width), blocks=len(visual.transformer.resblocks))
    return RineDetector(spec, RineNet(visual, head), layout, device=device)


__all__ = ["RineHead", "RineNet", "RineDetector", "build_rine"]
