"""``tiny_cnn``: a few conv layers with the same interface as the real detectors.

Used by the unit and app tests (random or test-made weights, tiny inputs) and handy for trying a new
preprocessing config. It is never listed by the shipped configs.
"""
from __future__ import annotations

import torch
from torch import nn

from core.models.detectors.base import Detector
from core.models.registry import register_arch
from core.models.specs import DetectorSpec


class TinyCNN(nn.Module):
    """conv(3→8, s2) → ReLU → conv(8→16, s2) → ReLU → global average → Linear(16→1)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_arch("tiny_cnn")
def build_tiny(spec: DetectorSpec, device: str | torch.device = "cpu") -> Detector:
    """Builder for ``arch: tiny_cnn`` (random weights until a checkpoint is loaded)."""
    return Detector(spec, TinyCNN(), device=device)
