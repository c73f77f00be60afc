"""Prompt2Guard (P2G; Laiti, Liberatori, De Min & Ricci, ICPR 2024): prompt learning on a frozen OpenAI CLIP ViT-B/16.

The forward pass reproduces ``SliNet.interface`` of github.com/laitifranz/Prompt2Guard (src/models/slinet.py, with
the checkpoint's ensembling flags ``[False, False, True, False]``) in our own code:

1. **Object labels.** CLIP zero-shot on the image (resize 224 bicubic → crop 224 → CLIP mean/std): cosine between
   the unprompted image feature and ``"a photo of a {c}"`` for 1000 ImageNet names, ``softmax(100·cos)``, top-k (5).
2. **Text side.** ``"a real photo of a {obj}."`` and ``"a fake photo of a {obj}."`` for the k objects; the K·T learned
   text prompts *replace* the token embeddings right after the EOT token (no positional embedding). They are
   read-only: no token attends to them (attention columns from the EOT+1 position on are masked), so each prompt
   output is a function of its own embedding and the real tokens. Features: ``ln_final`` → ``text_projection``.
3. **Image side.** The K·T learned image prompts are appended after the 197 CLS + patch tokens (no positional
   embedding either) as read-only tokens; their outputs → ``ln_post`` → ``proj``. The unnormalised projected CLS
   output is ``i_f``.
4. **Task weights.** ``w = softmax_t(i_f · fake_key_t)`` over the T tasks (CDDB: gaugan, biggan, wild,
   whichfaceisreal, san).
5. **Logits** ``[T, 2]`` (real, fake): task t uses its K prompts, image and text features each scaled by ``w_t``
   (so ``w_t²`` overall), ``logit_scale.exp() · cos`` averaged over the k objects and the K prompts.
6. **Decision** (src/eval.py ``compute_predictions``): ``top1`` (the task holding the largest of the 2T logits),
   ``mean`` (mean over tasks) or ``mix_top_mean`` (the mean pair when its real/fake gap is larger than the gap of
   the per-class maxima, else the max pair). Our logit is ``fake − real`` of the chosen pair, so
   ``sigmoid(logit) = softmax(pair)[fake]``.

The backbone weights come from a second file (open_clip's plain state dict of OpenAI ViT-B/16, OpenAI key names);
the checkpoint holds only the prompts and the task keys.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.convert import sigmoid
from core.errors import BadImage, ConfigError, WeightsCorrupt
from core.models.checkpoint import load_strict, unwrap_state_dict
from core.models.detectors.base import Detector
from core.models.preprocess import Prepared, build_transform
from core.models.registry import register_arch
from core.models.specs import CLIP_MEAN, CLIP_STD, DetectorSpec, PreprocessCfg

__all__ = ["P2GNet", "P2GDetector", "OpenAIClipViTB16", "imagenet_classnames", "tokenize", "decisions",
           "clean_backbone_state_dict", "ZERO_SHOT_PREPROCESS", "DECISIONS", "build_prompt2guard"]

DECISIONS = ("mix_top_mean", "mean", "top1", "max_pair")
PROTOTYPES = {"fake": "fake_keys_one_cluster", "real": "real_keys_one_cluster", "all": "all_keys_one_cluster"}
REAL_FAKE = ("real", "fake")                 # upstream cddb_classnames: index 0 real, 1 fake
# The published run (configs/cddb_inference.json + checkpoint): ensemble_token_embedding, ensemble_before_cosine_sim,
# ensemble_after_cosine_sim, confidence_score_enable. Only this combination is implemented.
SUPPORTED_ENSEMBLING = (False, False, True, False)
# Keys of OpenAI's JIT archive state dict that are not weights (clip.build_model drops them too).
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")
_CLASSNAMES_FILE = Path(__file__).with_name("p2g_imagenet_classes.txt")
_PROMPT_KEY = re.compile(r"^prompt_learner\.(\d+)\.(text_prompt|img_prompt)$")

# Upstream zero-shot view: clip._transform(224) = Resize(224, BICUBIC) → CenterCrop(224) → ToTensor → CLIP stats.
ZERO_SHOT_PREPROCESS = PreprocessCfg(mode="resize_crop", resize=224, crop=224, interpolation="bicubic",
                                     mean=CLIP_MEAN, std=CLIP_STD)

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


def decisions(task_logits: torch.Tensor) -> dict[str, Any]:
    """The upstream decision rules on one image's task logits ``[T, 2]`` (real, fake).

    Returns:
        ``logits`` (fake − real of the pair each rule picks: top1, max_pair, mean, mix_top_mean), ``top1_task``
        (the task holding the largest of the 2T logits) and ``mix_top_mean_uses`` ("mean" or "max_pair").

    Example:
        >>> decisions(torch.tensor([[0.25, 0.75], [0.5, 0.0]]))["logits"]["mean"]
        0.0
    """
    t = task_logits.double()
    flat = int(torch.argmax(t.reshape(-1)))
    top1_task = flat // 2
    mx = t.max(dim=0).values                   # per class (real, fake) maximum over tasks
    mean = t.mean(dim=0)
    d_max, d_mean = float(mx[1] - mx[0]), float(mean[1] - mean[0])
    uses_mean = abs(d_mean) > abs(d_max)      # compute_predictions: strict '>' picks the mean pair
    logits = {
        "top1": float(t[top1_task, 1] - t[top1_task, 0]),
        "max_pair": d_max,
        "mean": d_mean,
        "mix_top_mean": d_mean if uses_mean else d_max,
    }
    return {"logits": logits, "top1_task": top1_task, "mix_top_mean_uses": "mean" if uses_mean else "max_pair"}


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


class _PromptLearner(nn.Module):
    """One task's learned prompts (upstream ``PromptLearner``): K text tokens and K image tokens."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.text_prompt = nn.Parameter(0.02 * torch.randn(k, TEXT_WIDTH))
        self.img_prompt = nn.Parameter(0.02 * torch.randn(k, VISION_WIDTH))


class P2GNet(nn.Module):
    """CLIP backbone (``clip``), one prompt learner per task (``prompt_learner.{t}``) and the task keys (buffers).

    Args:
        num_tasks: T (CDDB: 5).
        k: learned prompts per task (7).
        topk_classes: zero-shot object labels per image (5).
    """

    def __init__(self, num_tasks: int = 5, k: int = 7, topk_classes: int = 5) -> None:
        super().__init__()
        self.clip = OpenAIClipViTB16()
        self.k = k
        self.topk_classes = topk_classes
        self.prompt_learner = nn.ModuleList([_PromptLearner(k) for _ in range(num_tasks)])
        keys = F.normalize(torch.randn(num_tasks, EMBED_DIM), dim=-1)
        for name in PROTOTYPES.values():          # not in the state dict: they come from checkpoint['keys']
            self.register_buffer(name, keys.clone(), persistent=False)

    @property
    def num_tasks(self) -> int:
        return len(self.prompt_learner)

    def forward(self, images: torch.Tensor, text_tokens: torch.Tensor,
                prototype: str = "fake") -> dict[str, torch.Tensor]:
        """Task logits for a batch.

        Args:
            images: ``[B, 3, 224, 224]`` (ImageNet-normalised).
            text_tokens: ``[B·2·k, 77]`` prompts ordered (image, real/fake, object) as upstream.
            prototype: which task keys weight the tasks (upstream config: "fake").

        Returns:
            ``logits`` ``[B, T, 2]`` (real, fake), ``task_weights`` ``[B, T]``, ``image_feature`` ``[B, 512]``.
        """
        learners = self.prompt_learner            # read once: a checkpoint load may swap it meanwhile
        b, t, k = images.shape[0], len(learners), learners[0].text_prompt.shape[0]
        keys = getattr(self, PROTOTYPES[prototype])
        text_prompts = torch.cat([p.text_prompt for p in learners])                     # [K·T, 512], task-major
        img_prompts = torch.cat([p.img_prompt for p in learners])                       # [K·T, 768]
        text_f = self.clip.encode_text_prompted(text_tokens, text_prompts)              # [B·2·O, K·T, 512]
        i_f, img_f = self.clip.visual(images, img_prompts)                              # [B, 512], [B, K·T, 512]
        weights = torch.softmax(i_f @ keys.to(i_f.dtype).t(), dim=1)                    # [B, T]
        text_f = F.normalize(text_f, dim=-1).view(b, 2, -1, t, k, EMBED_DIM)            # [B, L, O, T, K, D]
        img_f = F.normalize(img_f, dim=-1).view(b, t, k, EMBED_DIM)                     # [B, T, K, D]
        cos = torch.einsum("btkd,blotkd->btlko", img_f, text_f)                         # [B, T, L, K, O]
        # Upstream scales both the image and the text feature of task t by w_t before the dot product: w_t².
        logits = self.clip.logit_scale.exp() * cos.mean(dim=(3, 4)) * weights[:, :, None] ** 2
        return {"logits": logits, "task_weights": weights, "image_feature": i_f}


# --------------------------------------------------------------------------------------------- detector

def clean_backbone_state_dict(obj: Any, detector: str = "P2G", path: str | None = None) -> dict[str, torch.Tensor]:
    """Accept an OpenAI-named CLIP ViT-B/16 state dict (open_clip's ``open_clip_pytorch_model.bin`` or the state
    dict of OpenAI's model) and drop what is not a weight.

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


class P2GDetector(Detector):
    """Prompt2Guard with the :class:`Detector` interface (two views per image, zero-shot labels, task mixture).

    ``spec.options``:
        decision: ``mix_top_mean`` (default, the upstream eval's mixture), ``mean``, ``top1`` or ``max_pair``.
        prototype: task keys used for the task weights: ``fake`` (default, as the published config), ``real``, ``all``.
        task_names: names shown for the tasks (CDDB order), used when their number matches the checkpoint.
    """

    def __init__(self, spec: DetectorSpec, model: P2GNet, *, device: str | torch.device = "cpu") -> None:
        super().__init__(spec, model, device=device)
        self.decision = str(spec.options.get("decision", "mix_top_mean"))
        self.prototype = str(spec.options.get("prototype", "fake"))
        if self.decision not in DECISIONS:
            raise ConfigError(f"{spec.config_path}: field 'options.decision': {self.decision!r} is not one of "
                              f"{DECISIONS}")
        if self.prototype not in PROTOTYPES:
            raise ConfigError(f"{spec.config_path}: field 'options.prototype': {self.prototype!r} is not one of "
                              f"{tuple(PROTOTYPES)}")
        self.zero_shot_transform = build_transform(ZERO_SHOT_PREPROCESS)
        self.checkpoint_info: dict[str, Any] = {}
        self._class_features: torch.Tensor | None = None   # [1000, 512] normalised, depends on the backbone only

    # ------------------------------------------------------------------ weights
    def load_checkpoint(self, checkpoint: Any, path: str | None = None) -> None:
        """Load the prompts (strict), the task keys, K, top-k and the ensembling flags from a P2G checkpoint.

        Handles the multi-task CDDB layout (keys ``[T, 512]``) and the single-task TrueFake layout (keys ``[512]``).
        Nothing is changed unless the whole checkpoint is valid.

        Raises:
            WeightsCorrupt: naming the file and what does not fit.
        """
        det = self.spec.id
        container = self.spec.weights.container if self.spec.weights is not None else "model_state_dict"

        def bad(why: str) -> WeightsCorrupt:
            return WeightsCorrupt(det, f"checkpoint {path or ''} is not a Prompt2Guard checkpoint: {why}.", path=path)

        if not isinstance(checkpoint, Mapping):
            raise bad("it does not hold a dictionary")
        sd = unwrap_state_dict(checkpoint, container, det, path)
        tasks: dict[int, set[str]] = {}
        for key in sd:
            m = _PROMPT_KEY.match(key)
            if m is None:
                raise bad(f"unexpected key {key!r} (only prompt_learner.<task>.text_prompt/img_prompt are expected)")
            tasks.setdefault(int(m.group(1)), set()).add(m.group(2))
        n_tasks = len(tasks)
        if n_tasks == 0 or sorted(tasks) != list(range(n_tasks)):
            raise bad(f"prompt learners must be numbered 0..T-1 (found {sorted(tasks)})")
        for t, parts in tasks.items():
            missing = {"text_prompt", "img_prompt"} - parts
            if missing:
                raise bad(f"prompt_learner.{t} lacks {sorted(missing)}")
        if "tasks" in checkpoint and int(checkpoint["tasks"]) + 1 != n_tasks:
            raise bad(f"'tasks' says {int(checkpoint['tasks']) + 1} tasks but the state dict has {n_tasks}")
        k = int(checkpoint.get("K", sd["prompt_learner.0.text_prompt"].shape[0]))
        topk = int(checkpoint.get("topk_classes", self.model.topk_classes))
        if not 1 <= topk <= 5:
            raise bad(f"topk_classes must be 1..5 (found {topk})")
        flags = checkpoint.get("ensembling_flags")
        if flags is not None and topk > 1 and tuple(bool(f) for f in flags) != SUPPORTED_ENSEMBLING:
            raise bad(f"ensembling flags {list(flags)} are not supported (only {list(SUPPORTED_ENSEMBLING)}, the "
                      "published configuration)")
        keys_obj = checkpoint.get("keys")
        if not isinstance(keys_obj, Mapping):
            raise bad("no 'keys' dictionary (the task prototypes)")
        keys: dict[str, torch.Tensor] = {}
        for name in PROTOTYPES.values():
            value = keys_obj.get(name)
            if value is None:
                continue
            if not isinstance(value, torch.Tensor):
                raise bad(f"keys[{name!r}] is not a tensor")
            value = value.detach().to("cpu", torch.float32)
            if value.dim() == 1:                  # single-task layout (TrueFake bundle): [512] is one task
                value = value.unsqueeze(0)
            if tuple(value.shape) != (n_tasks, EMBED_DIM):
                raise bad(f"keys[{name!r}] has shape {tuple(keys_obj[name].shape)}, expected [{n_tasks}, "
                          f"{EMBED_DIM}] (or [{EMBED_DIM}] for one task)")
            keys[name] = value
        if PROTOTYPES[self.prototype] not in keys:
            raise bad(f"keys[{PROTOTYPES[self.prototype]!r}] is missing (needed by prototype {self.prototype!r})")

        learners = nn.ModuleList([_PromptLearner(k) for _ in range(n_tasks)])
        load_strict(learners, {key[len("prompt_learner."):]: v for key, v in sd.items()}, det, path)
        learners = learners.to(self.device)
        with self.lock:                           # swap atomically for concurrent sessions
            self.model.prompt_learner = learners
            self.model.k = k
            self.model.topk_classes = topk
            for name in PROTOTYPES.values():
                default = keys[PROTOTYPES[self.prototype]]
                self.model.register_buffer(name, keys.get(name, default).to(self.device), persistent=False)
            self.checkpoint_info = {"tasks": n_tasks, "K": k, "topk_classes": topk,
                                    "run_name": str(checkpoint.get("run_name", "")),
                                    "key_sets": sorted(keys)}
        self.model.eval()

    def load_backbone(self, checkpoint: Any, path: str | None = None) -> None:
        """Load OpenAI CLIP ViT-B/16 weights (OpenAI key names; fp16 files are cast to float32) strictly.

        Raises:
            WeightsCorrupt: the file is not an OpenAI-named ViT-B/16 state dict.
        """
        sd = clean_backbone_state_dict(checkpoint, self.spec.id, path)
        with self.lock:
            load_strict(self.model.clip, sd, self.spec.id, path)
            self._class_features = None           # they depend on the backbone: recompute at next use
        self.model.eval()

    # ------------------------------------------------------------------ inference
    def prepare(self, image: Image.Image) -> Prepared:
        """Main view (resize 256 bicubic → crop 224 → ImageNet stats) plus the zero-shot view (``aux['zs_input']``)."""
        prep = super().prepare(image)
        try:
            zs = self.zero_shot_transform(image)
        except ValueError as exc:
            raise BadImage("<image>", f"cannot be analysed by {self.spec.id}: {exc}") from None
        return dataclasses.replace(prep, aux={**prep.aux, "zs_input": zs.tensor},
                                   description=f"{prep.description}; object labels from CLIP zero-shot on "
                                               f"{zs.description}")

    def class_text_features(self) -> torch.Tensor:
        """Normalised text features of ``"a photo of a {c}"`` for the 1000 class names (computed once per backbone)."""
        with self.lock:
            if self._class_features is None:
                tokens = tokenize([f"a photo of a {c}" for c in imagenet_classnames()]).to(self.device)
                with torch.inference_mode():
                    self._class_features = F.normalize(self.model.clip.encode_text(tokens), dim=-1)
            return self._class_features

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Not used: P2G needs two views per image (see :meth:`score`)."""
        raise NotImplementedError("P2G scores Prepared images (two views); use predict() or score()")

    def score(self, prepared: Sequence[Prepared]) -> list[tuple[float, Mapping[str, Any]]]:
        """Zero-shot object labels, then the prompted forward, for a batch of prepared images."""
        classes = self.class_text_features()
        names = imagenet_classnames()
        with torch.inference_mode():
            images = torch.stack([p.tensor for p in prepared]).to(self.device)
            zs = torch.stack([p.aux["zs_input"] for p in prepared]).to(self.device)
            img = F.normalize(self.model.clip.encode_image(zs), dim=-1)
            sims = 100.0 * img @ classes.t()                     # upstream: softmax(100·cos), not logit_scale
            probs = sims.softmax(dim=-1)
            topk = self.model.topk_classes
            top_p, top_i = probs.topk(max(topk, 10), dim=-1)
            prompts: list[list[str]] = []
            for row in top_i[:, :topk].tolist():
                prompts.append([f"a {kind} photo of a {names[i]}." for kind in REAL_FAKE for i in row])
            tokens = tokenize([p for per_image in prompts for p in per_image]).to(self.device)
            out = self.model(images, tokens, self.prototype)
        task_names = list(self.spec.options.get("task_names") or [])
        results: list[tuple[float, Mapping[str, Any]]] = []
        for b in range(len(prepared)):
            task_logits = out["logits"][b].float().cpu()
            dec = decisions(task_logits)
            logit = dec["logits"][self.decision]
            details = {
                "decision": self.decision,
                "logits": dec["logits"],
                "p_fake": {name: sigmoid(v) for name, v in dec["logits"].items()},
                "mix_top_mean_uses": dec["mix_top_mean_uses"],
                "top1_task": dec["top1_task"],
                "task_logits": task_logits.tolist(),          # [T][real, fake]
                "task_weights": out["task_weights"][b].float().cpu().tolist(),
                "prototype": self.prototype,
                "task_names": task_names if len(task_names) == len(task_logits) else [],
                "object_labels": [[names[i], round(100.0 * float(p), 4)]
                                  for p, i in zip(top_p[b, :topk].tolist(), top_i[b, :topk].tolist())],
                "zero_shot_top10": [[names[i], int(i), float(sims[b, i])] for i in top_i[b, :10].tolist()],
                "prompts": prompts[b],
            }
            results.append((logit, details))
        return results


@register_arch("prompt2guard")
def build_prompt2guard(spec: DetectorSpec, device: str | torch.device = "cpu") -> P2GDetector:
    """Builder for ``arch: prompt2guard``: random CLIP and prompts (options ``num_tasks``, ``K``, ``topk_classes``
    set the shapes until a checkpoint is loaded)."""
    opts = spec.options
    model = P2GNet(num_tasks=int(opts.get("num_tasks", 5)), k=int(opts.get("K", 7)),
                   topk_classes=int(opts.get("topk_classes", 5)))
    return P2GDetector(spec, model, device=device)
