"""ResNet-50 detectors that keep (most of) the image resolution: R50_TF (TrueFake) and R50_nodown (Corvi 2023).

Both are torchvision ResNet-50s whose early downsampling was removed so that the high-frequency traces generators
leave are not averaged away before the network sees them:

* ``resnet50_truefake_proto`` (R50_TF, Dell'Anna et al., IJCNN 2025): conv1 is 7×7 with **stride 1**, the max-pool
  keeps stride 2, ``fc`` maps 2048 → 128 (+ dropout) and a one-prototype distance layer (``proto``) turns the
  128-d feature into the logit. Keys live under ``backbone.*`` and ``proto.*`` (raw state dict).
* ``resnet50_nodown`` (R50_nodown, Corvi et al., ICASSP 2023): conv1 **and** max-pool have stride 1, global
  average pool, dropout, ``fc`` 2048 → 1. Plain torchvision key names (``conv1``, ``bn1``, ``layer1..4``, ``fc``).

Both run at full resolution with ImageNet statistics; the YAML adds the seed's 1024×1024 centre crop for huge
images (``preprocess.large_crop``).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet, resnet50

from core.models.detectors.base import Detector
from core.models.registry import register_arch
from core.models.specs import DetectorSpec

_FEATURE_DIM = 2048  # ResNet-50 output channels (512 × Bottleneck expansion 4)


class PrototypeScore(nn.Module):
    """TrueFake's prototype score layer (``ScoresLayer``): a signed, scaled distance to learned centres.

    For a feature ``f`` and each centre ``c_k`` with log-width ``s_k = relu(logsigma_k)``::

        d = f - c_k
        score_k = sign(sum(d)) * ||d||² / (2 * exp(2 * s_k)) + D * s_k
        logit = sum_k score_k

    The sign makes the squared distance a signed score (positive = fake side of the centre).

    Args:
        dim: feature size ``D`` (128 for R50_TF).
        num_centers: number of prototypes ``K`` (1 for the published checkpoint).
    """

    def __init__(self, dim: int = 128, num_centers: int = 1) -> None:
        super().__init__()
        self.dim = dim
        self.centers = nn.Parameter(torch.zeros(num_centers, dim))
        self.logsigmas = nn.Parameter(torch.zeros(num_centers))

    def components(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(sum of differences, squared distance)`` to each centre, both ``[N, K]``."""
        diff = feature.reshape(feature.shape[0], 1, self.dim) - self.centers.unsqueeze(0)
        return diff.sum(dim=2), (diff * diff).sum(dim=2)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """Feature ``[N, D]`` → logit ``[N, 1]``."""
        sum_diff, sq_dist = self.components(feature)
        width = torch.relu(self.logsigmas)
        scores = torch.sign(sum_diff) * sq_dist / (2.0 * torch.exp(2.0 * width)) + self.dim * width
        return scores.sum(dim=1, keepdim=True)


class TrueFakeR50(nn.Module):
    """R50_TF: torchvision ResNet-50 (conv1 stride 1, fc → 128 + dropout) followed by :class:`PrototypeScore`."""

    def __init__(self, embed_dim: int = 128, num_centers: int = 1) -> None:
        super().__init__()
        backbone = resnet50(weights=None)
        # Stride-1 stem: the upstream replaces conv1 only; the max-pool (3, stride 2) stays.
        backbone.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=1, padding=3, bias=False)
        backbone.fc = nn.Sequential(nn.Linear(_FEATURE_DIM, embed_dim), nn.Dropout(0.5))
        self.backbone = backbone
        self.proto = PrototypeScore(embed_dim, num_centers)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d embedding (``backbone`` output, after fc and dropout) → ``[N, 128]``."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised image batch ``[N, 3, H, W]`` → logit ``[N, 1]`` (positive = fake).

        The prototype distance runs in the prototypes' dtype: in the fast mode's bf16 copy (see
        :func:`core.models.fast.bf16_copy`, which keeps ``proto`` in fp32) the logits in the tens stay exact.
        """
        return self.proto(self.features(x).to(self.proto.centers.dtype))


class NoDownResNet50(ResNet):
    """R50_nodown: ResNet-50 with stride-1 conv1 and max-pool, dropout 0.5 before a 2048 → 1 ``fc``.

    Subclasses torchvision's ResNet so the state-dict keys are exactly torchvision's (``conv1``, ``bn1``,
    ``layer1..4``, ``fc``), which is how the Corvi 2023 checkpoint stores them.
    """

    def __init__(self) -> None:
        super().__init__(Bottleneck, [3, 4, 6, 3], num_classes=1)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=1, padding=3, bias=False)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.dropout = nn.Dropout(0.5)  # no parameters: the key set stays torchvision's

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled 2048-d feature (before dropout and fc) → ``[N, 2048]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Normalised image batch ``[N, 3, H, W]`` → logit ``[N, 1]`` (positive = fake)."""
        return self.fc(self.dropout(self.pooled(x)))


@register_arch("resnet50_truefake_proto")
def build_r50_tf(spec: DetectorSpec, device: str | torch.device = "cpu") -> Detector:
    """Builder for ``arch: resnet50_truefake_proto`` (R50_TF; random weights until a checkpoint is loaded).

    ``options.num_centers`` (default 1) and ``options.embed_dim`` (default 128) follow the upstream settings.
    """
    model = TrueFakeR50(embed_dim=int(spec.options.get("embed_dim", 128)),
                        num_centers=int(spec.options.get("num_centers", 1)))
    return Detector(spec, model, device=device, fold_batchnorm=True, resident_bf16=True)


@register_arch("resnet50_nodown")
def build_r50_nodown(spec: DetectorSpec, device: str | torch.device = "cpu") -> Detector:
    """Builder for ``arch: resnet50_nodown`` (R50_nodown; random weights until a checkpoint is loaded)."""
    return Detector(spec, NoDownResNet50(), device=device, fold_batchnorm=True, resident_bf16=True)
