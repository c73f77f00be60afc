"""Grad-CAM ("where the model looked") on shared, cached models.

Hooks are borrowed for one call only (pytorch-grad-cam's context manager removes them) and the detector's lock
serialises explanations, because Streamlit shares one cached model between all sessions.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

CAVEAT = ("Grad-CAM shows which regions drove the score (the model's focus). It is not a map of manipulated "
          "pixels and should not be read as one.")


def get_submodule_by_path(model: nn.Module, path: str) -> nn.Module:
    """Resolve a dotted path such as ``"layer4.-1"`` or ``"block8.branch1.-1"`` (negative = index from end).

    Raises:
        ValueError: naming the part of the path that does not exist.
    """
    mod: nn.Module = model
    for part in path.split("."):
        if part.lstrip("-").isdigit():
            children = list(mod.children())
            idx = int(part)
            if not -len(children) <= idx < len(children):
                raise ValueError(f"layer path {path!r}: index {idx} out of range at {type(mod).__name__}")
            mod = children[idx]
        else:
            if not hasattr(mod, part):
                raise ValueError(f"layer path {path!r}: {type(mod).__name__} has no attribute {part!r}")
            mod = getattr(mod, part)
    if not isinstance(mod, nn.Module):
        raise ValueError(f"layer path {path!r} does not name a module")
    return mod


class _LogitTarget:
    """Grad-CAM target: the fake logit (a single output), so positive gradients point towards 'fake'."""

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return model_output.reshape(-1)[0]


def gradcam(model: nn.Module, target_layer: nn.Module, input_tensor: torch.Tensor,
            forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> np.ndarray:
    """Grad-CAM heatmap of the fake logit for one input.

    Args:
        model: the network (left unchanged: hooks are removed on exit, parameters untouched).
        target_layer: the conv block whose activations are weighted.
        input_tensor: 1×C×H×W.
        forward: optional callable used instead of ``model`` (e.g. a wrapper returning the logit).

    Returns:
        H×W float32 heatmap in [0, 1] at the input resolution.
    """
    from pytorch_grad_cam import GradCAM

    wrapped: nn.Module = model if forward is None else _Wrap(model, forward)
    with torch.enable_grad(), GradCAM(model=wrapped, target_layers=[target_layer]) as cam:
        heat = cam(input_tensor=input_tensor, targets=[_LogitTarget()])[0]
    heat = np.nan_to_num(heat.astype(np.float32))
    return np.clip(heat, 0.0, 1.0)


class _Wrap(nn.Module):
    def __init__(self, model: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner = model
        self._fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x).reshape(-1, 1)


@dataclass(frozen=True)
class Explanation:
    """A Grad-CAM map of one detector on one image, in the image's own pixel grid."""

    heatmap: np.ndarray = field(compare=False, repr=False)  # H×W float32 in [0, 1]; 0 outside the analysed region
    target_layer: str                                    # dotted path of the layer whose activations were weighted
    caveat: str = CAVEAT                                 # how (not) to read the map; show it next to the map
    method: str = "Grad-CAM"
    image_size: tuple[int, int] = (0, 0)                 # (W, H) of the original image (= heatmap.shape[::-1])
    input_size: tuple[int, int] = (0, 0)                 # (W, H) of the tensor the CAM was computed on
    crop_box: tuple[int, int, int, int] | None = None    # analysed region (left, top, right, bottom); None = all


@contextmanager
def input_gradients_only(model: nn.Module) -> Iterator[None]:
    """Temporarily stop parameter gradients so Grad-CAM leaves no ``.grad`` on a shared model (and runs faster).

    Grad-CAM only needs the gradient with respect to a layer's activations; the input must then require grad.
    The previous ``requires_grad`` flags are restored on exit. Hold the detector's lock around this.
    """
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def heatmap_to_image(heat: np.ndarray, image_size: tuple[int, int],
                     crop_box: tuple[int, int, int, int] | None) -> np.ndarray:
    """Place an input-resolution heatmap onto the original image's pixel grid.

    Args:
        heat: h×w map over the model input.
        image_size: (W, H) of the original image.
        crop_box: the region of the original image the input covers (None = the whole image). The map is
            resized (bilinear) to the box when the input was resampled; outside the box the result is 0.

    Returns:
        H×W float32 in [0, 1].
    """
    w, h = image_size
    left, top, right, bottom = crop_box if crop_box is not None else (0, 0, w, h)
    bw, bh = right - left, bottom - top
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != (bh, bw):
        t = torch.from_numpy(np.ascontiguousarray(heat))[None, None]
        heat = torch.nn.functional.interpolate(t, size=(bh, bw), mode="bilinear", align_corners=False)[0, 0].numpy()
    out = np.zeros((h, w), dtype=np.float32)
    out[top:bottom, left:right] = heat
    return np.clip(np.nan_to_num(out), 0.0, 1.0)
