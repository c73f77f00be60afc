"""OpenAI CLIP ViT-B/16 with read-only prompt tokens, the frozen backbone of Prompt2Guard (P2G).

Our own code, with OpenAI's parameter names (302 keys, manifests/P2G.json ``backbone.keys``), so open_clip's plain
state dict of the OpenAI weights loads strictly. Beside the plain ``encode_image`` / ``encode_text`` it offers what
P2G adds to CLIP: learned prompt tokens appended to the image sequence and written after the text EOT token, both
read-only (no token attends to them). Also here: the CLIP tokenizer and P2G's 1000 ImageNet class names.
"""
from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.models.checkpoint import unwrap_state_dict

__all__ = [
    "EMBED_DIM",
    "TEXT_WIDTH",
    "VISION_WIDTH",
    "OpenAIClipViTB16",
    "clean_backbone_state_dict",
    "imagenet_classnames",
    "tokenize",
]

# Keys of OpenAI's JIT archive state dict that are not weights (clip.build_model drops them too).
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_CLASSNAMES_FILE = Path(__file__).with_name("p2g_imagenet_classes.txt")

# OpenAI ViT-B/16 hyper-parameters (manifests/P2G.json backbone.hyperparameters).
EMBED_DIM, VISION_WIDTH, VISION_LAYERS, PATCH, IMAGE_SIZE = 512, 768, 12, 16, 224
TEXT_WIDTH, TEXT_HEADS, TEXT_LAYERS, CONTEXT_LENGTH, VOCAB_SIZE = 512, 8, 12, 77, 49408


# --------------------------------------------------------------------------------------------- text helpers

@functools.lru_cache(maxsize=1)
def imagenet_classnames() -> tuple[str, ...]:
    """The 1000 ImageNet class names Prompt2Guard's zero-shot uses (its own list, not open_clip's)."""
    names = tuple(line for line in _CLASSNAMES_FILE.read_text(encoding="utf-8").splitlines()
                  if line and not line.startswith("#"))
    if len(names) != 1000 or len(set(names)) != 1000:
        raise RuntimeError(f"{_CLASSNAMES_FILE} must hold 1000 distinct class names (found {len(names)})")
    return names


_tokenizer_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _tokenizer() -> Any:
    # open_clip's SimpleTokenizer = OpenAI's BPE (same vocabulary file, ftfy + whitespace clean + lower case).
    from open_clip.tokenizer import SimpleTokenizer
    return SimpleTokenizer(context_length=CONTEXT_LENGTH)


def tokenize(texts: Sequence[str]) -> torch.Tensor:
    """CLIP BPE token ids, ``[N, 77]`` (SOT … EOT, zero padded), as OpenAI's ``clip.tokenize``.

    Example:
        >>> tokenize(["a photo of a goldfish"]).argmax(-1)   # EOT position
        tensor([6])
    """
    with _tokenizer_lock:                     # the BPE cache is a plain dict shared by all sessions
        return _tokenizer()(list(texts))


# --------------------------------------------------------------------------------------------- CLIP modules

class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _ResidualBlock(nn.Module):
    """OpenAI ``ResidualAttentionBlock`` (same parameter names), batch-first, with an additive attention mask."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)   # holds in_proj_weight/bias and out_proj (OpenAI names)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", _QuickGELU()),
                                              ("c_proj", nn.Linear(width * 4, width))]))
        self.ln_2 = nn.LayerNorm(width)

    def _attention(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        # Same computation as F.multi_head_attention_forward with need_weights=False (packed in-projection,
        # per-head scaled_dot_product_attention, out-projection); done by hand so one mask can serve a batch.
        n, length, width = x.shape
        heads = self.attn.num_heads
        qkv = F.linear(x, self.attn.in_proj_weight, self.attn.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.attn.out_proj(out.transpose(1, 2).reshape(n, length, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self._attention(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[_ResidualBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class _VisionTransformer(nn.Module):
    """OpenAI ``VisionTransformer`` (ViT-B/16) with optional read-only prompt tokens."""

    def __init__(self) -> None:
        super().__init__()
        scale = VISION_WIDTH ** -0.5
        self.conv1 = nn.Conv2d(3, VISION_WIDTH, kernel_size=PATCH, stride=PATCH, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(VISION_WIDTH))
        self.positional_embedding = nn.Parameter(scale * torch.randn((IMAGE_SIZE // PATCH) ** 2 + 1, VISION_WIDTH))
        self.ln_pre = nn.LayerNorm(VISION_WIDTH)
        self.transformer = _Transformer(VISION_WIDTH, VISION_LAYERS, VISION_WIDTH // 64)
        self.ln_post = nn.LayerNorm(VISION_WIDTH)
        self.proj = nn.Parameter(scale * torch.randn(VISION_WIDTH, EMBED_DIM))

    def forward(self, x: torch.Tensor, prompts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Image batch → (projected CLS feature ``[N, 512]``, projected prompt outputs ``[N, P, 512]`` or None)."""
        n = x.shape[0]
        x = self.conv1(x).flatten(2).transpose(1, 2)                        # [N, 196, 768]
        cls = self.class_embedding.to(x.dtype).expand(n, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        mask = None
        n_prompts = 0
        if prompts is not None:
            n_prompts = prompts.shape[0]
            x = torch.cat([x, prompts.to(x.dtype).unsqueeze(0).expand(n, -1, -1)], dim=1)
            length = x.shape[1]
            # Read-only prompts: every query (prompts included) ignores the prompt columns.
            mask = torch.zeros(length, length, dtype=x.dtype, device=x.device)
            mask[:, length - n_prompts:] = float("-inf")
        x = self.transformer(self.ln_pre(x), mask)
        cls_feature = self.ln_post(x[:, 0]) @ self.proj
        prompt_features = self.ln_post(x[:, -n_prompts:]) @ self.proj if n_prompts else None
        return cls_feature, prompt_features


class OpenAIClipViTB16(nn.Module):
    """OpenAI CLIP ViT-B/16 with OpenAI's parameter names (302 keys, see manifests/P2G.json ``backbone.keys``).

    Random weights at construction; load the real ones with :meth:`P2GDetector.load_backbone`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.visual = _VisionTransformer()
        self.transformer = _Transformer(TEXT_WIDTH, TEXT_LAYERS, TEXT_HEADS)
        self.token_embedding = nn.Embedding(VOCAB_SIZE, TEXT_WIDTH)
        self.positional_embedding = nn.Parameter(0.01 * torch.randn(CONTEXT_LENGTH, TEXT_WIDTH))
        self.ln_final = nn.LayerNorm(TEXT_WIDTH)
        self.text_projection = nn.Parameter(TEXT_WIDTH ** -0.5 * torch.randn(TEXT_WIDTH, EMBED_DIM))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Unprompted image features ``[N, 512]`` (not normalised), as ``CLIP.encode_image``."""
        return self.visual(images)[0]

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """EOT features ``[N, 512]`` (not normalised), as ``CLIP.encode_text``.

        Sequences are grouped by EOT position and cut right after it: under the causal mask the EOT output does
        not depend on later positions, so this only saves work (1000 class prompts are ~10 tokens, not 77).
        """
        eot = tokens.argmax(dim=-1)
        out = torch.empty(tokens.shape[0], EMBED_DIM, dtype=self.text_projection.dtype, device=tokens.device)
        for pos in torch.unique(eot).tolist():
            rows = (eot == pos).nonzero(as_tuple=True)[0]
            length = pos + 1
            x = self.token_embedding(tokens[rows, :length]) + self.positional_embedding[:length]
            mask = torch.full((length, length), float("-inf"), dtype=x.dtype, device=x.device).triu_(1)
            x = self.ln_final(self.transformer(x, mask))
            out[rows] = x[:, pos] @ self.text_projection
        return out

    def encode_text_prompted(self, tokens: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """Outputs of the read-only text prompts written after each EOT: ``[N, P, 512]`` (not normalised)."""
        n, n_prompts = tokens.shape[0], prompts.shape[0]
        lens = tokens.argmax(dim=-1) + 1                                     # upstream len_prompts = EOT + 1
        length = int(lens.max()) + n_prompts
        if length > CONTEXT_LENGTH:
            raise ValueError(f"a prompt is too long for {n_prompts} learned tokens (needs {length} > "
                             f"{CONTEXT_LENGTH} positions)")
        x = self.token_embedding(tokens[:, :length]) + self.positional_embedding[:length]
        rows = torch.arange(n, device=tokens.device)[:, None]
        cols = lens[:, None] + torch.arange(n_prompts, device=tokens.device)[None]
        x = x.index_put((rows, cols), prompts.to(x.dtype).unsqueeze(0).expand(n, -1, -1))  # replace, no pos. emb.
        # Causal mask, and no query may look at position EOT+1 or later (the prompts and the padding after them).
        positions = torch.arange(length, device=tokens.device)
        causal = positions[None, :] > positions[:, None]
        blocked = causal[None] | (positions[None, None, :] >= lens[:, None, None])     # [N, L, L]
        mask = torch.zeros(n, 1, length, length, dtype=x.dtype, device=x.device)
        mask.masked_fill_(blocked[:, None], float("-inf"))
        x = self.ln_final(self.transformer(x, mask))
        return x[rows, cols] @ self.text_projection


def clean_backbone_state_dict(obj: Any, detector: str = "P2G", path: str | None = None) -> dict[str, torch.Tensor]:
    """Accept an OpenAI-named CLIP ViT-B/16 state dict (open_clip's ``open_clip_model.safetensors`` /
    ``open_clip_pytorch_model.bin``, or the state dict read from OpenAI's TorchScript ``ViT-B-16.pt``) and drop what
    is not a weight.

    Unwraps ``{'state_dict': ...}``, strips a ``module.`` prefix, drops ``input_resolution``/``context_length``/
    ``vocab_size`` and reshapes a 1-element ``logit_scale`` to a scalar.

    Raises:
        WeightsCorrupt: not a dictionary of tensors.
    """
    sd = unwrap_state_dict(obj, "checkpoint", detector, path)
    sd = {k: v for k, v in sd.items() if k not in _OPENAI_EXTRA_KEYS}
    if "logit_scale" in sd and sd["logit_scale"].numel() == 1:
        sd["logit_scale"] = sd["logit_scale"].reshape(())
    return sd

