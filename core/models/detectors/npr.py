"""NPR (Tan et al., CVPR 2024): Neighboring Pixel Relationships fed to a truncated ResNet-50.

Up-sampling layers of generators leave a fixed pattern between neighbouring pixels of each 2×2 cell. NPR exposes
it by subtracting a nearest-neighbour down-then-up-sampled copy of the image, ``r = x − up2(down2(x))``, and
classifies ``r · 2/3`` with a small ResNet: conv1 3×3 stride 2, bn, relu, max-pool, ``layer1`` and ``layer2``
only, global average pool, ``fc1`` 512 → 1. Key names follow the official ``NPR.pth`` (raw state dict).

The residual needs even height and width; the preprocessing drops the last row/column (the upstream README's fix).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

from core.models.detectors.base import Detector
from core.models.registry import register_arch
from core.models.specs import DetectorSpec


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """``x − up2(down2(x))`` with nearest interpolation, exactly as the upstream computes it.

    ``F.interpolate`` with ``recompute_scale_factor=True`` is kept (rather than slicing ``x[..., ::2, ::2]``) so the
    sampled pixels are the upstream's for every size.
    """
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """A ResNet stage of torchvision Bottlenecks (key names ``N.conv1`` … ``N.downsample.{0,1}``)."""
    downsample = None
    if stride != 1 or inplanes != planes * Bottleneck.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * Bottleneck.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * Bottleneck.expansion),
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class NPRResNet(nn.Module):
    """The NPR network: residual → conv1(3×3, s2) → bn → relu → max-pool → layer1 → layer2 → avg-pool → fc1."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _make_layer(64, 64, 3, stride=1)
        self.layer2 = _make_layer(256, 128, 4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(512, 1)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image batch → the 512-d pooled feature ``[N, 512]`` (before ``fc1``).

        Raises:
            ValueError: when a side is shorter than 2 pixels (no 2×2 neighbourhood to compare).
        """
        h, w = x.shape[-2:]
        if h < 2 or w < 2:
            raise ValueError(f"NPR needs at least 2×2 pixels, got {w}×{h}")
        # Odd sides would break the subtraction; drop the last row/column like the upstream README.
        # The preprocessing already does this, so this is a no-op on the normal path.
        x = x[..., : h - h % 2, : w - w % 2]
        r = npr_residual(x)
        # Same operation order as upstream (r * 2.0 / 3.0): float32 rounding then matches exactly.
        x = self.conv1(r * 2.0 / 3.0)
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer2(self.layer1(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image batch ``[N, 3, H, W]`` → logit ``[N, 1]`` (positive = fake)."""
        return self.fc1(self.pooled(x))


@register_arch("npr_resnet50")
def build_npr(spec: DetectorSpec, device: str | torch.device = "cpu") -> Detector:
    """Builder for ``arch: npr_resnet50`` (NPR; random weights until a checkpoint is loaded)."""
    return Detector(spec, NPRResNet(), device=device, fold_batchnorm=True, resident_bf16=True)
