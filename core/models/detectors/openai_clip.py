"""The frozen OpenAI CLIP ViT-L/14 image tower shared by detectors built on it (RINE; UnivFD would be another).

One backbone file serves every detector variant that uses it, in whichever of its three public forms the analyst has:

* OpenAI's ``ViT-L-14.pt`` — a TorchScript archive (read without executing code by
  :func:`core.models.checkpoint.load_checkpoint`) whose state dict carries three non-weight entries
  (``input_resolution``, ``context_length``, ``vocab_size``) that ``clip.build_model`` drops too;
* the same weights as a plain state dict with OpenAI key names — e.g. open_clip's ``open_clip_pytorch_model.bin``
  of ``timm/vit_large_patch14_clip_224.openai`` (open_clip names its OpenAI models exactly as OpenAI did);
* Hugging Face transformers' ``openai/clip-vit-large-patch14`` (``vision_model.encoder.layers.N.self_attn.q_proj``
  …), renamed here to the OpenAI names (q/k/v concatenated, projections transposed).

Whatever the form, the file must hold the complete OpenAI layout (446 keys for ViT-L/14: vision and text towers,
``visual.proj`` included) with the official shapes — that is what is checked, key for key. Only the vision tower is
ever built with weights: the detectors built on it never run the text tower (~123 M parameters), whose layout comes
from a shapes-only (``meta`` device) build.

The module is built with open_clip's ``ViT-L-14-quickgelu`` (OpenAI's activation), whose state dict names and
shapes equal OpenAI's; it is batch-first, so block outputs are ``[N, tokens, width]``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from core.errors import WeightsCorrupt
from core.models.checkpoint import describe_mismatch, unwrap_state_dict

OPENAI_ARCH = "ViT-L-14-quickgelu"          # open_clip config = OpenAI's ViT-L/14 (QuickGELU)
NON_WEIGHT_KEYS = ("input_resolution", "context_length", "vocab_size")  # in the JIT archive's state dict

# transformers CLIPModel name → OpenAI name, applied in order. The q/k/v split and the two projections change
# shapes and are handled separately.
_HF_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^vision_model\.embeddings\.class_embedding$", "visual.class_embedding"),
    (r"^vision_model\.embeddings\.patch_embedding\.weight$", "visual.conv1.weight"),
    (r"^vision_model\.embeddings\.position_embedding\.weight$", "visual.positional_embedding"),
    (r"^vision_model\.pre_layrnorm\.", "visual.ln_pre."),          # sic: transformers' own spelling
    (r"^vision_model\.post_layernorm\.", "visual.ln_post."),
    (r"^vision_model\.encoder\.layers\.", "visual.transformer.resblocks."),
    (r"^text_model\.embeddings\.token_embedding\.", "token_embedding."),
    (r"^text_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^text_model\.final_layer_norm\.", "ln_final."),
    (r"^text_model\.encoder\.layers\.", "transformer.resblocks."),
    (r"\.self_attn\.out_proj\.", ".attn.out_proj."),
    (r"\.layer_norm1\.", ".ln_1."),
    (r"\.layer_norm2\.", ".ln_2."),
    (r"\.mlp\.fc1\.", ".mlp.c_fc."),
    (r"\.mlp\.fc2\.", ".mlp.c_proj."),
)
_HF_PROJ = {"visual_projection.weight": "visual.proj", "text_projection.weight": "text_projection"}
_HF_QKV = re.compile(r"^(.*)\.self_attn\.([qkv])_proj\.(weight|bias)$")


def build_openai_clip() -> nn.Module:
    """OpenAI CLIP ViT-L/14 (vision + text) with random weights, float32, eval mode; never downloads."""
    from core.models.detectors.clip_linear import build_open_clip   # open_clip is imported lazily there

    return build_open_clip(OPENAI_ARCH)


def build_visual_tower() -> tuple[nn.Module, dict[str, tuple[int, ...]]]:
    """The frozen vision tower (random weights) and the full 446-key layout a backbone file is checked against."""
    from core.models.detectors.clip_linear import build_open_clip

    # The text tower is never used: built on the meta device only (its layout, no memory), never materialised.
    clip = build_open_clip(OPENAI_ARCH, text_tower=False)
    layout = {k: tuple(v.shape) for k, v in clip.state_dict().items()}
    visual = clip.visual
    del clip
    for p in visual.parameters():
        p.requires_grad_(False)              # frozen, as in the papers
    return visual.eval(), layout


def _rename(key: str) -> str:
    for pattern, repl in _HF_RENAMES:
        key = re.sub(pattern, repl, key)
    return key


def _from_transformers(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a transformers ``CLIPModel`` state dict to OpenAI names (values unchanged but q/k/v and projections)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        if key.endswith("position_ids"):
            continue                          # a buffer of indices in older transformers files, not a weight
        m = _HF_QKV.match(key)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
        elif key in _HF_PROJ:
            out[_HF_PROJ[key]] = value.t().contiguous()   # nn.Linear stores [out, in]; OpenAI computes x @ proj
        else:
            out[_rename(key)] = value
    for (prefix, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:      # keep the original names: the layout check reports them
            out.update({f"{prefix}.self_attn.{q}_proj.{kind}": v for q, v in parts.items()})
            continue
        out[f"{_rename(prefix)}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def openai_state_dict(checkpoint: Any, detector: str, path: str | None = None) -> dict[str, torch.Tensor]:
    """Normalise any of the three accepted backbone forms to an OpenAI-named state dict.

    Args:
        checkpoint: what :func:`core.models.checkpoint.load_checkpoint` returned for the backbone file.
        detector: detector id for error messages.
        path: file name for error messages.

    Returns:
        The state dict with OpenAI key names (non-weight entries dropped, ``logit_scale`` a scalar).

    Raises:
        WeightsCorrupt: the file does not hold a dictionary of tensors.

    Example:
        >>> sd = openai_state_dict({"vision_model.post_layernorm.weight": torch.ones(1024)}, "RINE")
        >>> list(sd)
        ['visual.ln_post.weight']
    """
    sd = unwrap_state_dict(checkpoint, "checkpoint", detector, path)
    if any(k.startswith(("vision_model.", "text_model.")) for k in sd):
        sd = _from_transformers(sd)
    sd = {k: v for k, v in sd.items() if k not in NON_WEIGHT_KEYS}
    if "logit_scale" in sd and sd["logit_scale"].numel() == 1:
        sd["logit_scale"] = sd["logit_scale"].reshape(())
    return sd


def load_visual_strict(visual: nn.Module, layout: Mapping[str, tuple[int, ...]], checkpoint: Any, detector: str,
                       path: str | None = None, expected: str = "the OpenAI CLIP ViT-L/14 state dict") -> None:
    """Check a backbone file against the full OpenAI layout, then load its ``visual.*`` part strictly (float32).

    Raises:
        WeightsCorrupt: one sentence naming the missing, unexpected or mis-shaped keys, or non-float tensors.
    """
    sd = openai_state_dict(checkpoint, detector, path)
    problems = describe_mismatch(layout, sd)
    non_float = [k for k, v in sd.items() if k in layout and not torch.is_floating_point(v)]
    if non_float:
        problems.append(f"{len(non_float)} non-floating-point tensors (e.g. {non_float[:3]})")
    if problems:
        where = f"backbone checkpoint {path}" if path else "backbone checkpoint"
        raise WeightsCorrupt(detector, f"{where} does not fit the {detector} backbone (expected {expected}): "
                                       + "; ".join(problems) + ".", path=path)
    own = visual.state_dict()
    # fp16 files (OpenAI's archive) run in float32 here: the cast is exact, and CPUs compute float32 faithfully.
    visual.load_state_dict({k[len("visual."):]: v.to(dtype=own[k[len("visual."):]].dtype)
                            for k, v in sd.items() if k.startswith("visual.")}, strict=True)


__all__ = ["OPENAI_ARCH", "NON_WEIGHT_KEYS", "build_openai_clip", "build_visual_tower", "openai_state_dict",
           "load_visual_strict"]
