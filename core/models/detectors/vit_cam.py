"""Grad-CAM over the patch tokens of a Vision Transformer layer (RINE, B-Free).

A ViT layer outputs ``[N, prefix + h·w, C]`` tokens instead of a ``C×H×W`` map, so the usual Grad-CAM recipe is
applied to the patch tokens: channel weights = gradient of the fake logit averaged over the patch tokens, map =
ReLU(Σ_c weight_c · activation_c) per token, laid out on the ``h×w`` patch grid. The prefix tokens (CLS, registers)
carry no position and are left out. As for CNNs, the map shows which patches pushed the score towards "fake" through
that layer; it is not a map of manipulated pixels (see :data:`core.models.explain.CAVEAT`).

Hooks live only for one call; the detector's lock is held meanwhile and parameter gradients stay off
(:func:`core.models.explain.input_gradients_only`), so the shared model is left exactly as it was.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from core.models.explain import Explanation, get_submodule_by_path, heatmap_to_image, input_gradients_only
from core.models.preprocess import Prepared


def token_gradcam(forward: Callable[[torch.Tensor], torch.Tensor], layer: nn.Module, x: torch.Tensor,
                  n_prefix: int, *, from_layer: bool = True) -> torch.Tensor:
    """Grad-CAM of the summed fake logit(s) over one layer's patch tokens.

    Args:
        forward: input → logits (any shape; they are summed, so a mean over crops weights each crop equally).
        layer: a module whose output is batch-first ``[B, n_prefix + P, C]``.
        x: the network input.
        n_prefix: tokens before the patch tokens (1 for CLS; 5 for CLS + 4 registers).
        from_layer: record the autograd graph only from ``layer``'s output on, so the blocks before it run
            without a graph and the backward pass covers only the blocks after it (same map, see
            :func:`core.models.explain.graph_from_layer`); False records it from the input (the slower old path).

    Returns:
        ``[B, P]`` non-negative token scores (not normalised).
    """
    store: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: tuple, out: torch.Tensor) -> torch.Tensor | None:
        if from_layer and not out.requires_grad:
            out = out.detach().requires_grad_(True)     # the graph starts here (the input needs no grad)
        store["act"] = out
        out.register_hook(lambda g: store.__setitem__("grad", g))
        return out

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = x.detach() if from_layer else x.detach().requires_grad_(True)
            forward(x).sum().backward()
    finally:
        handle.remove()
    act, grad = store["act"].detach()[:, n_prefix:], store["grad"].detach()[:, n_prefix:]
    weights = grad.mean(dim=1, keepdim=True)                       # [B, 1, C]
    return torch.relu((weights * act).sum(dim=-1)).float()          # [B, P]


def normalise(heat: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (as pytorch-grad-cam scales its maps); a constant map becomes 0."""
    heat = np.nan_to_num(np.asarray(heat, dtype=np.float32))
    heat = heat - heat.min()
    return np.clip(heat / (heat.max() + 1e-7), 0.0, 1.0)


class TokenCamMixin:
    """``explain()`` for ViT detectors: subclasses map token scores onto their input with :meth:`_input_heat`."""

    def _input_heat(self, prep: Prepared, layer: nn.Module) -> np.ndarray:
        """H×W heat over the area of the original image that ``prep.crop_box`` names (input pixels)."""
        raise NotImplementedError

    def explain(self, image: Image.Image) -> Explanation:
        """Token Grad-CAM of the fake logit at ``spec.explain_layer``, mapped back onto the original image.

        Raises:
            NotImplementedError: the spec declares no target layer.
            BadImage: the image cannot be fed to this detector.
        """
        spec = self.spec                                            # type: ignore[attr-defined]
        if spec.explain_layer is None:
            raise NotImplementedError(f"{spec.key} declares no Grad-CAM target layer (explain.target_layer).")
        with torch.inference_mode(False):
            prep = self.prepare(image)                              # type: ignore[attr-defined]
            with self.lock, input_gradients_only(self.model):       # type: ignore[attr-defined]
                layer = get_submodule_by_path(self.model, spec.explain_layer)  # type: ignore[attr-defined]
                heat = self._input_heat(prep, layer)
        return Explanation(heatmap=heatmap_to_image(normalise(heat), prep.image_size, prep.crop_box),
                           target_layer=spec.explain_layer, method="Grad-CAM (ViT patch tokens)",
                           image_size=prep.image_size, input_size=prep.input_size, crop_box=prep.crop_box)


__all__ = ["token_gradcam", "normalise", "TokenCamMixin"]
