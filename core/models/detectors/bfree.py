"""B-Free (Guillaro et al., CVPR 2025): a fine-tuned DINOv2-reg4 ViT-B/14 scoring five 504-px crops.

Faithful to grip-unina/B-Free (``networks/wrapper5crops.py`` around timm's ``vit_base_patch14_reg4_dinov2``),
written here in our own code with timm's parameter names, so the official ``{'model': state_dict}`` loads strictly:

1. The 14×14 stride-14 patch convolution runs on the whole (normalised, full-resolution) input → a token grid of
   ⌊H/14⌋ × ⌊W/14⌋ (the last H mod 14 rows / W mod 14 columns are never seen).
2. Five 36×36-token crops (504 px) are taken **on that grid**: centre ((gh−36)//2, (gw−36)//2), top-left,
   bottom-left, bottom-right, top-right. When a side has fewer than 36 tokens the grid is tiled (repeated
   ⌈36/g⌉ times) and its top-left 36×36 kept — which also cuts the other side to 36 — so the five crops are identical.
3. Each crop: + position embedding (patch tokens only), then [CLS, 4 registers] prepended; 12 pre-norm blocks with
   layer scale (LayerNorm eps 1e-6, GELU, 12 heads); final norm; CLS → Linear(768, 1).
4. Logit = mean of the five crop logits (positive = fake).

Coinciding crops (a tiled grid; a side of exactly 36 tokens) are computed once: the same numbers to float rounding
(upstream's copies differ by ~1e-7 from their batch position), up to five times faster on images under 518 px.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.errors import BadImage
from core.models.detectors.base import Detector
from core.models.detectors.vit_cam import TokenCamMixin, token_gradcam
from core.models.preprocess import Prepared
from core.models.registry import register_arch
from core.models.specs import DetectorSpec

PATCH = 14          # pixels per token side
GRID = 36           # tokens per crop side (504 px)
REGISTERS = 4
CROP_NAMES = ("centre", "top-left", "bottom-left", "bottom-right", "top-right")   # upstream order


@dataclass(frozen=True)
class CropPlan:
    """Where the five crops sit on a ``gh × gw`` token grid.

    ``rows[k]`` / ``cols[k]`` are the grid indices of *distinct* crop ``k``; ``members[i]`` says which distinct
    crop upstream's crop ``i`` (:data:`CROP_NAMES` order) is; ``origins`` are the five crops' top-left cells.
    Coinciding crops (a tiled grid, or a side of exactly 36 tokens) are computed once.
    """

    grid_hw: tuple[int, int]
    tiled: bool
    rows: tuple[tuple[int, ...], ...]
    cols: tuple[tuple[int, ...], ...]
    origins: tuple[tuple[int, int], ...]
    members: tuple[int, ...]


def crop_plan(gh: int, gw: int, size: int = GRID) -> CropPlan:
    """The upstream five-crop rule on a token grid (see the module docstring).

    Example:
        >>> crop_plan(50, 71).origins
        ((7, 17), (0, 0), (14, 0), (14, 35), (0, 35))
        >>> crop_plan(34, 45).tiled, crop_plan(34, 45).rows[0][34:], crop_plan(36, 50).members
        (True, (0, 1), (0, 1, 1, 2, 2))
    """
    if gh < 1 or gw < 1:
        raise ValueError(f"a token grid of {gh}×{gw} has no patch")
    if gh < size or gw < size:
        # Tiling then keeping the top-left size×size = indexing the grid modulo its size.
        return CropPlan((gh, gw), True, (tuple(r % gh for r in range(size)),),
                        (tuple(c % gw for c in range(size)),), ((0, 0),) * 5, (0,) * 5)
    origins = (((gh - size) // 2, (gw - size) // 2), (0, 0), (gh - size, 0), (gh - size, gw - size), (0, gw - size))
    distinct = list(dict.fromkeys(origins))
    return CropPlan((gh, gw), False, tuple(tuple(range(t, t + size)) for t, _ in distinct),
                    tuple(tuple(range(c, c + size)) for _, c in distinct), origins,
                    tuple(distinct.index(o) for o in origins))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, stride=PATCH)


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, 4 * dim)
        self.ls2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class BFreeNet(nn.Module):
    """DINOv2-reg4 ViT-B/14 with the five-crop wrapper; ``state_dict()`` = timm's names (177 keys for ViT-B).

    Args:
        dim / depth / heads: ViT-B/14 is 768 / 12 / 12 (smaller values make test models).

    Example:
        >>> net = BFreeNet(dim=24, depth=1, heads=2)
        >>> net(torch.zeros(1, 3, 28, 28)).shape
        torch.Size([1])
    """

    def __init__(self, dim: int = 768, depth: int = 12, heads: int = 12) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.reg_token = nn.Parameter(torch.zeros(1, REGISTERS, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, GRID * GRID, dim) * 0.02)
        self.patch_embed = _PatchEmbed(dim)
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 1)

    def crops(self, x: torch.Tensor) -> tuple[torch.Tensor, CropPlan]:
        """Images ``[N, 3, H, W]`` → crop tokens ``[N·K, 1296, C]`` (K distinct crops) and the plan."""
        grid = self.patch_embed.proj(x)                                        # [N, C, gh, gw]
        plan = crop_plan(grid.shape[2], grid.shape[3])
        picked = [grid[:, :, torch.tensor(r)][:, :, :, torch.tensor(c)] for r, c in zip(plan.rows, plan.cols)]
        tokens = torch.stack(picked, dim=1).flatten(3).transpose(2, 3)        # [N, K, 1296, C]
        return tokens.flatten(0, 1), plan

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Crop tokens ``[B, 1296, C]`` → final-norm CLS ``[B, C]`` (the head's input)."""
        b = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(b, -1, -1), self.reg_token.expand(b, -1, -1),
                       tokens + self.pos_embed], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]

    def crop_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, CropPlan]:
        """Images → per-crop logits ``[N, 5]`` (upstream order) and the plan."""
        tokens, plan = self.crops(x)
        logits = self.head(self.encode(tokens)).reshape(x.shape[0], len(plan.rows))
        return logits[:, list(plan.members)], plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images → logits ``[N]`` (mean over the five crops)."""
        return self.crop_logits(x)[0].mean(dim=1)


class BFreeDetector(TokenCamMixin, Detector):
    """B-Free with the :class:`Detector` interface; ``details`` hold the five crop logits and where they lie."""

    model: BFreeNet

    def prepare(self, image: Image.Image) -> Prepared:
        """Full-resolution ImageNet-normalised input (the 1024 centre-crop policy from the YAML applies)."""
        prep = super().prepare(image)
        w, h = prep.input_size
        if w < PATCH or h < PATCH:
            raise BadImage("<image>", f"is {w}×{h} pixels; {self.spec.id} needs at least {PATCH}×{PATCH}")
        return prep

    def score(self, prepared: Sequence[Prepared]) -> list[tuple[float, Mapping[str, Any]]]:
        """One forward for same-shaped inputs → [(mean crop logit, details)]."""
        batch = torch.stack([p.tensor for p in prepared]).to(self.device)
        logits, plan = self.model.crop_logits(batch)
        logits = logits.float().cpu()
        return [(float(row.mean()), self._details(row, plan, prep)) for row, prep in zip(logits, prepared)]

    @staticmethod
    def _details(row: torch.Tensor, plan: CropPlan, prep: Prepared) -> dict[str, Any]:
        ox, oy = prep.crop_box[:2] if prep.crop_box else (0, 0)
        gh, gw = plan.grid_hw
        span_h, span_w = min(gh, GRID) * PATCH, min(gw, GRID) * PATCH     # the tiled crop shows each cell once
        boxes = [[ox + c * PATCH, oy + r * PATCH, ox + c * PATCH + span_w, oy + r * PATCH + span_h]
                 for r, c in plan.origins]
        return {"crop_logits": [float(v) for v in row], "crop_names": list(CROP_NAMES), "crop_boxes": boxes,
                "patch_grid": [gh, gw], "tiled": plan.tiled}

    def _input_heat(self, prep: Prepared, layer: nn.Module) -> np.ndarray:
        x = prep.tensor.unsqueeze(0).to(self.device)
        tokens = token_gradcam(self.forward, layer, x, n_prefix=1 + REGISTERS)   # [K, 1296]
        plan = crop_plan(x.shape[2] // PATCH, x.shape[3] // PATCH)
        total = torch.zeros(plan.grid_hw)
        count = torch.zeros(plan.grid_hw)
        for k, (r, c) in enumerate(zip(plan.rows, plan.cols)):
            idx = (torch.tensor(r)[:, None].expand(GRID, GRID).reshape(-1),
                   torch.tensor(c)[None, :].expand(GRID, GRID).reshape(-1))
            total.index_put_(idx, tokens[k].cpu(), accumulate=True)
            count.index_put_(idx, torch.ones(GRID * GRID), accumulate=True)
        grid = (total / count.clamp(min=1))[None, None]
        heat = F.interpolate(grid, scale_factor=PATCH, mode="bilinear", align_corners=False)[0, 0]
        # Rows/columns past the last whole patch were never seen by the network: they get 0.
        return F.pad(heat, (0, x.shape[3] - heat.shape[1], 0, x.shape[2] - heat.shape[0])).numpy()


@register_arch("bfree")
def build_bfree(spec: DetectorSpec, device: str | torch.device = "cpu") -> BFreeDetector:
    """Builder for ``arch: bfree`` (random weights until the checkpoint is loaded; nothing downloaded).

    Options (YAML ``options``): ``dim``, ``depth``, ``heads`` (default ViT-B/14: 768, 12, 12).
    """
    opts = spec.options
    net = BFreeNet(dim=int(opts.get("dim", 768)), depth=int(opts.get("depth", 12)), heads=int(opts.get("heads", 12)))
    return BFreeDetector(spec, net, device=device)


__all__ = ["BFreeNet", "BFreeDetector", "CropPlan", "crop_plan", "build_bfree", "CROP_NAMES"]
