"""Grad-CAM ("where the model looked") on shared, cached models.

Hooks are borrowed for one call only (removed on exit) and the detector's lock serialises explanations, because
Streamlit shares one cached model between all sessions. The map is pytorch-grad-cam's GradCAM, computed with its
arithmetic but with the autograd graph started at the target layer (:func:`graph_from_layer`): the layers before it
run as inference, so an explanation costs about one forward pass (the library's own path is kept as the reference
the tests compare against: ``gradcam(..., from_layer=False)``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
            forward: Callable[[torch.Tensor], torch.Tensor] | None = None, *, from_layer: bool = True) -> np.ndarray:
    """Grad-CAM heatmap of the fake logit for one input.

    Args:
        model: the network (left unchanged: hooks are removed on exit, parameters untouched).
        target_layer: the conv block whose activations are weighted.
        input_tensor: 1×C×H×W.
        forward: optional callable used instead of ``model`` (e.g. a wrapper returning the logit).
        from_layer: the fast path (default): the autograd graph starts at ``target_layer``'s output (see
            :func:`graph_from_layer`) and the map is computed here with pytorch-grad-cam's arithmetic. False runs
            pytorch-grad-cam's ``GradCAM`` itself with the graph from the input, the slower old path the fast one
            is tested against (same map to float rounding).

    Returns:
        H×W float32 heatmap in [0, 1] at the input resolution.
    """
    x = input_tensor.detach()
    if from_layer:
        try:
            with graph_from_layer(target_layer):
                return _own_gradcam(model if forward is None else forward, target_layer, x)
        except RuntimeError as exc:
            if "leaf Variable" not in str(exc):
                raise
            # a later layer writes into the target's output in place: that needs the whole graph (old path)
    return _library_gradcam(model, target_layer, x.requires_grad_(True), forward)


def _own_gradcam(forward: Callable[[torch.Tensor], torch.Tensor], layer: nn.Module, x: torch.Tensor) -> np.ndarray:
    """pytorch-grad-cam's GradCAM, step for step, without importing it (its import pulls in scikit-learn,
    pandas and matplotlib: about 3.5 s on the first explanation of a session)."""
    import cv2    # the resize pytorch-grad-cam uses (bilinear), for the same map

    store: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: tuple, out: Any) -> None:
        store["act"] = out
        if isinstance(out, torch.Tensor) and out.requires_grad:
            out.register_hook(lambda g: store.__setitem__("grad", g))

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            _LogitTarget()(forward(x)).backward()
    finally:
        handle.remove()
    if "grad" not in store:
        raise RuntimeError(f"the target layer {type(layer).__name__} is not on the path to the logit")
    act = store.pop("act").detach().float().cpu().numpy()             # [1, C, h, w]
    grad = store.pop("grad").detach().float().cpu().numpy()
    weights = np.mean(grad, axis=(2, 3))                               # GradCAM.get_cam_weights
    cam = np.maximum((weights[:, :, None, None] * act).sum(axis=1), 0)[0]
    cam = _minmax(cam)
    cam = cv2.resize(np.float32(cam), (int(x.shape[-1]), int(x.shape[-2])))   # scale_cam_image(target_size)
    heat = _minmax(np.maximum(cam, 0))                                 # aggregate_multi_layers (one layer)
    return np.clip(np.nan_to_num(np.float32(heat)), 0.0, 1.0)


def _minmax(img: np.ndarray) -> np.ndarray:
    img = img - np.min(img)
    return img / (1e-7 + np.max(img))


def _library_gradcam(model: nn.Module, target_layer: nn.Module, input_tensor: torch.Tensor,
                     forward: Callable[[torch.Tensor], torch.Tensor] | None) -> np.ndarray:
    from pytorch_grad_cam import GradCAM

    wrapped: nn.Module = model if forward is None else _Wrap(model, forward)
    with torch.enable_grad(), GradCAM(model=wrapped, target_layers=[target_layer]) as cam:
        heat = cam(input_tensor=input_tensor, targets=[_LogitTarget()])[0]
    heat = np.nan_to_num(heat.astype(np.float32))
    return np.clip(heat, 0.0, 1.0)


@contextmanager
def graph_from_layer(layer: nn.Module) -> Iterator[None]:
    """Start the autograd graph at ``layer``'s output: its output becomes a leaf that requires grad.

    Grad-CAM needs only d(logit)/d(activation of the target layer), which depends only on the network *after*
    that layer. With the input and the parameters not requiring grad, everything before the layer then runs like
    inference (no graph, no saved activations) and the backward pass covers only the layers after it — for a CNN
    explained at its last stage, Grad-CAM costs about one forward pass instead of several. The activations and
    the gradient are the same tensors as with the whole graph, so the map is the same.

    Register this hook before any hook that reads the output (a forward hook's return value replaces the output
    for the hooks after it and for the rest of the network). Hold the detector's lock around it.
    """
    def start_graph(_module: nn.Module, _inputs: tuple, out: Any) -> Any:
        if isinstance(out, torch.Tensor) and torch.is_grad_enabled() and not out.requires_grad:
            return out.detach().requires_grad_(True)
        return None

    handle = layer.register_forward_hook(start_graph)
    try:
        yield
    finally:
        handle.remove()


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
