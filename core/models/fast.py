"""Inference-time rewrites of a loaded network: batch-norm folding (exact up to rounding) and a resident bf16 copy.

Both act on the module a detector already loaded; neither changes what the network computes beyond float rounding:

* :func:`fold_batchnorm` merges every ``BatchNorm2d`` that directly follows a ``Conv2d`` into that convolution's
  weight and bias (in float64, then cast back), so inference skips one full pass over each activation map. Only
  the pairing conventions of torchvision ResNets are recognised: children named ``convK``/``bnK`` of one module
  (the stem and every ``Bottleneck``) and a ``Conv2d`` followed by a ``BatchNorm2d`` in an ``nn.Sequential``
  (``downsample``). A folded module's state dict no longer has the batch-norm keys, so checkpoints are loaded
  before folding, never after.
* :func:`fuse_bottlenecks` makes each folded torchvision ``Bottleneck`` run, in inference, as three oneDNN
  convolutions with the ReLU (and the residual addition) applied inside the convolution kernels: the same
  arithmetic in fewer passes over memory. Where a gradient must flow through a block (Grad-CAM after its target
  layer) the block runs its ordinary forward.
* :func:`bf16_copy` is a bfloat16 copy in channels-last layout for the fast mode: the weights are cast once instead
  of on every call (what autocast does), and oneDNN's bf16 kernels read them in the layout they want.
"""
from __future__ import annotations

import copy
import re

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck

_CONV_NAME = re.compile(r"conv(\d+)$")


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Rewrite ``conv`` in place so that ``conv(x) == bn(conv(x))`` in eval mode (to float rounding)."""
    with torch.no_grad():
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        weight = conv.weight.double() * scale.reshape(-1, *([1] * (conv.weight.dim() - 1)))
        new_bias = bn.bias.double() + (bias - bn.running_mean.double()) * scale
        dtype = conv.weight.dtype
        fmt = torch.channels_last if conv.weight.is_contiguous(memory_format=torch.channels_last) \
            and not conv.weight.is_contiguous() else torch.contiguous_format
        conv.weight = nn.Parameter(weight.to(dtype).contiguous(memory_format=fmt), requires_grad=False)
        conv.bias = nn.Parameter(new_bias.to(dtype), requires_grad=False)


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and bn.track_running_stats
            and bn.running_mean is not None and conv.out_channels == bn.num_features)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold each eval-mode batch norm into the convolution that feeds it; the norm becomes ``nn.Identity``.

    Args:
        model: a module in eval mode whose weights are final (loaded).

    Returns:
        The number of (convolution, batch-norm) pairs folded.

    Raises:
        ValueError: the model is in training mode (batch statistics would not be the running ones).
    """
    if model.training:
        raise ValueError("fold_batchnorm needs a model in eval mode")
    folded = 0
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names, names[1:]):
                if _foldable(module._modules[a], module._modules[b]):
                    _fold_pair(module._modules[a], module._modules[b])
                    module._modules[b] = nn.Identity()
                    folded += 1
            continue
        for name, child in list(module.named_children()):
            m = _CONV_NAME.fullmatch(name)
            bn_name = f"bn{m.group(1)}" if m else None
            if bn_name and _foldable(child, getattr(module, bn_name, None)):
                _fold_pair(child, getattr(module, bn_name))
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded


def _fused_ops_available() -> bool:
    """oneDNN's fused convolution ops (the ones torch.compile emits on CPU) are present in this torch build."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def _conv_args(conv: nn.Conv2d) -> tuple:
    return conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups


class FusedBottleneck(Bottleneck):
    """A folded ``Bottleneck`` whose inference forward fuses ReLU and the residual addition into the convolutions.

    Same parameters, buffers and submodules as the block it replaces (its class is swapped in place), so module
    paths such as Grad-CAM's target layer are unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Three fused oneDNN convolutions on CPU when no gradient has to flow through the block (inference, or the
        layers before Grad-CAM's target); otherwise the ordinary block."""
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.conv1.weight.requires_grad)
        if needs_grad or x.device.type != "cpu" or x.dtype != self.conv1.weight.dtype:
            return super().forward(x)
        x = x.contiguous(memory_format=torch.channels_last)
        identity = x if self.downsample is None else self.downsample(x)
        op = torch.ops.mkldnn._convolution_pointwise
        out = op(x, *_conv_args(self.conv1), "relu", [None], "")
        out = op(out, *_conv_args(self.conv2), "relu", [None], "")
        identity = identity.contiguous(memory_format=torch.channels_last)
        return op.binary(out, identity, *_conv_args(self.conv3), "add", 1.0, "relu", [], "")


def fuse_bottlenecks(model: nn.Module) -> int:
    """Swap every folded torchvision ``Bottleneck`` of ``model`` to :class:`FusedBottleneck`; returns how many.

    A block is fused only when its batch norms were folded (they are ``nn.Identity``) and oneDNN's fused ops exist.
    """
    if not _fused_ops_available():
        return 0
    fused = 0
    for module in model.modules():
        if type(module) is Bottleneck and all(isinstance(getattr(module, f"bn{i}"), nn.Identity) for i in (1, 2, 3)):
            module.__class__ = FusedBottleneck
            fused += 1
    return fused


_BF16_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def bf16_copy(model: nn.Module) -> nn.Module:
    """A bfloat16, channels-last, eval-mode copy of ``model`` (the original is left untouched).

    Only the standard layers (``Conv2d``, ``Linear``, ``BatchNorm2d``) are cast: a family's own parameterised
    module (R50_TF's prototype score) keeps fp32 parameters, and its forward casts its input to them.
    """
    twin = copy.deepcopy(model).eval().requires_grad_(False)
    for module in twin.modules():
        if isinstance(module, _BF16_LAYERS):
            module.to(dtype=torch.bfloat16)
    return twin.to(memory_format=torch.channels_last)


__all__ = ["fold_batchnorm", "fuse_bottlenecks", "FusedBottleneck", "bf16_copy"]
