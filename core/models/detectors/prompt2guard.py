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

The backbone weights come from a second file in OpenAI key names: open_clip's copy of OpenAI ViT-B/16
(``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``) or OpenAI's own TorchScript ``ViT-B-16.pt``, whose
tensors are read without running its code (:mod:`core.models.torchscript`); the checkpoint holds only the prompts and
the task keys. The CLIP modules, tokenizer and class names live in
:mod:`core.models.detectors.p2g_clip`. The network reads two views of each image, so :meth:`P2GDetector.batch` stacks
them on the channel axis and :meth:`P2GDetector.forward` takes that ``[N, 6, 224, 224]`` batch, like every family's
forward takes what its ``batch`` builds.
"""
from __future__ import annotations

import dataclasses
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from core.convert import sigmoid
from core.errors import BadImage, ConfigError, WeightsCorrupt
from core.models.checkpoint import load_strict, unwrap_state_dict
from core.models.detectors.base import Detector
from core.models.detectors.p2g_clip import (
    EMBED_DIM,
    TEXT_WIDTH,
    VISION_WIDTH,
    OpenAIClipViTB16,
    clean_backbone_state_dict,
    imagenet_classnames,
    tokenize,
)
from core.models.preprocess import Prepared, build_transform
from core.models.registry import register_arch
from core.models.specs import CLIP_MEAN, CLIP_STD, DetectorSpec, PreprocessCfg

__all__ = [
    "DECISIONS",
    "ZERO_SHOT_PREPROCESS",
    "OpenAIClipViTB16",
    "P2GDetector",
    "P2GNet",
    "build_prompt2guard",
    "clean_backbone_state_dict",
    "decisions",
    "imagenet_classnames",
    "tokenize",
]

DECISIONS = ("mix_top_mean", "mean", "top1", "max_pair")
PROTOTYPES = {"fake": "fake_keys_one_cluster", "real": "real_keys_one_cluster", "all": "all_keys_one_cluster"}
REAL_FAKE = ("real", "fake")                 # upstream cddb_classnames: index 0 real, 1 fake
# The published run (configs/cddb_inference.json + checkpoint): ensemble_token_embedding, ensemble_before_cosine_sim,
# ensemble_after_cosine_sim, confidence_score_enable. Only this combination is implemented.
SUPPORTED_ENSEMBLING = (False, False, True, False)
_PROMPT_KEY = re.compile(r"^prompt_learner\.(\d+)\.(text_prompt|img_prompt)$")

# Upstream zero-shot view: clip._transform(224) = Resize(224, BICUBIC) → CenterCrop(224) → ToTensor → CLIP stats.
ZERO_SHOT_PREPROCESS = PreprocessCfg(mode="resize_crop", resize=224, crop=224, interpolation="bicubic",
                                     mean=CLIP_MEAN, std=CLIP_STD)


# --------------------------------------------------------------------------------------------- decision rules

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



# --------------------------------------------------------------------------------------------- model

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

    def text_prompts(self) -> torch.Tensor:
        """The K·T learned text prompts, task-major ``[K·T, 512]``."""
        return torch.cat([p.text_prompt for p in self.prompt_learner])

    def forward(self, images: torch.Tensor, text_tokens: torch.Tensor, prototype: str = "fake",
                text_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Task logits for a batch.

        Args:
            images: ``[B, 3, 224, 224]`` (ImageNet-normalised).
            text_tokens: ``[B·2·k, 77]`` prompts ordered (image, real/fake, object) as upstream.
            prototype: which task keys weight the tasks (upstream config: "fake").
            text_features: ``encode_text_prompted(text_tokens, text_prompts())`` when already known (a cache of
                it: it depends only on each token row, the prompts and the backbone); None computes it.

        Returns:
            ``logits`` ``[B, T, 2]`` (real, fake), ``task_weights`` ``[B, T]``, ``image_feature`` ``[B, 512]``.
        """
        learners = self.prompt_learner            # read once: a checkpoint load may swap it meanwhile
        b, t, k = images.shape[0], len(learners), learners[0].text_prompt.shape[0]
        keys = getattr(self, PROTOTYPES[prototype])
        text_prompts = torch.cat([p.text_prompt for p in learners])                     # [K·T, 512], task-major
        img_prompts = torch.cat([p.img_prompt for p in learners])                       # [K·T, 768]
        text_f = (self.clip.encode_text_prompted(text_tokens, text_prompts)              # [B·2·O, K·T, 512]
                  if text_features is None else text_features)
        i_f, img_f = self.clip.visual(images, img_prompts)                              # [B, 512], [B, K·T, 512]
        weights = torch.softmax(i_f @ keys.to(i_f.dtype).t(), dim=1)                    # [B, T]
        text_f = F.normalize(text_f, dim=-1).view(b, 2, -1, t, k, EMBED_DIM)            # [B, L, O, T, K, D]
        img_f = F.normalize(img_f, dim=-1).view(b, t, k, EMBED_DIM)                     # [B, T, K, D]
        cos = torch.einsum("btkd,blotkd->btlko", img_f, text_f)                         # [B, T, L, K, O]
        # Upstream scales both the image and the text feature of task t by w_t before the dot product: w_t².
        logits = self.clip.logit_scale.exp() * cos.mean(dim=(3, 4)) * weights[:, :, None] ** 2
        return {"logits": logits, "task_weights": weights, "image_feature": i_f}


# --------------------------------------------------------------------------------------------- detector

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
        # Prompted text features by (precision, token row): "a real/fake photo of a {object}." for the objects
        # seen so far. They depend on the row, the learned prompts and the backbone only, and the same objects
        # recur across images, so the text side (about a third of P2G's work) is mostly computed once.
        self._text_cache: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()
        self.text_cache_size = int(spec.options.get("text_cache_size", 512))   # ~70 KB per row (K·T = 35)

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
            if not value.is_floating_point():         # never cast integer or boolean data into prototypes
                raise bad(f"keys[{name!r}] is {value.dtype}, not floating-point")
            value = value.detach().to("cpu", torch.float32)
            if not bool(torch.isfinite(value).all()):      # also float64 values beyond float32's range
                raise bad(f"keys[{name!r}] holds NaN or infinite values (or values too large for float32)")
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
            self._text_cache.clear()              # the cached text features used the old prompts
            self.checkpoint_info = {"tasks": n_tasks, "K": k, "topk_classes": topk,
                                    "run_name": str(checkpoint.get("run_name", "")),
                                    "key_sets": sorted(keys)}
        self.model.eval()

    def load_backbone(self, checkpoint: Any, path: str | None = None) -> None:
        """Load OpenAI CLIP ViT-B/16 weights (OpenAI key names; fp16 files are cast to float32) strictly.

        ``checkpoint`` is what :func:`~core.models.checkpoint.load_checkpoint` returns for open_clip's state dict
        (safetensors or pickle) or for OpenAI's TorchScript ``ViT-B-16.pt`` (its state dict, read without running it).

        Raises:
            WeightsCorrupt: the file is not an OpenAI-named ViT-B/16 state dict.
        """
        sd = clean_backbone_state_dict(checkpoint, self.spec.id, path)
        with self.lock:
            load_strict(self.model.clip, sd, self.spec.id, path)
            self._class_features = None           # they depend on the backbone: recompute at next use
            self._text_cache.clear()
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

    def batch(self, prepared: Sequence[Prepared]) -> torch.Tensor:
        """Both views of each image on the channel axis: ``[N, 6, 224, 224]``, the input of :meth:`forward`.

        Channels 0-2: the main view (resize 256 → crop 224, ImageNet stats); 3-5: the zero-shot view
        (``prep.aux['zs_input']``: resize 224 → crop 224, CLIP stats).
        """
        main = torch.stack([p.tensor for p in prepared])
        zs = torch.stack([p.aux["zs_input"] for p in prepared])
        return torch.cat([main, zs], dim=1).to(self.device)

    def _infer(self, batch: torch.Tensor) -> dict[str, Any]:
        """Zero-shot object labels, then the prompted forward → the network outputs plus the labels and prompts."""
        if batch.dim() != 4 or batch.shape[1] != 6:
            raise ValueError(f"P2G's forward takes [N, 6, H, W] (main view and zero-shot view, see batch()), not "
                             f"{list(batch.shape)}")
        classes = self.class_text_features()
        names = imagenet_classnames()
        with torch.inference_mode():
            images, zs = batch[:, :3].contiguous(), batch[:, 3:].contiguous()
            img = F.normalize(self.model.clip.encode_image(zs), dim=-1)
            sims = 100.0 * img @ classes.t()                     # upstream: softmax(100·cos), not logit_scale
            probs = sims.softmax(dim=-1)
            topk = self.model.topk_classes
            top_p, top_i = probs.topk(max(topk, 10), dim=-1)
            prompts = [[f"a {kind} photo of a {names[i]}." for kind in REAL_FAKE for i in row]
                       for row in top_i[:, :topk].tolist()]
            tokens = tokenize([p for per_image in prompts for p in per_image]).to(self.device)
            out = self.model(images, tokens, self.prototype, self._prompted_text(tokens))
        return {**out, "sims": sims, "top_p": top_p, "top_i": top_i, "topk": topk, "prompts": prompts}

    def _prompted_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``encode_text_prompted(tokens, prompts)``, computing only the rows not in the cache (call under the lock)."""
        if self.text_cache_size <= 0:
            return self.model.clip.encode_text_prompted(tokens, self.model.text_prompts())
        state = (self.precision, torch.is_autocast_enabled(self.device.type))
        ends = (tokens.argmax(dim=-1) + 1).tolist()                      # each row up to its EOT
        keys = [(state, *row[:end]) for row, end in zip(tokens.tolist(), ends)]
        with self.lock:
            missing = list(dict.fromkeys(k for k in keys if k not in self._text_cache))
            if missing:
                rows = [keys.index(k) for k in missing]
                feats = self.model.clip.encode_text_prompted(tokens[rows], self.model.text_prompts())
                for k, f in zip(missing, feats):
                    self._text_cache[k] = f.clone()
            out = torch.stack([self._text_cache[k] for k in keys])
            for k in keys:
                self._text_cache.move_to_end(k)
            while len(self._text_cache) > self.text_cache_size:
                self._text_cache.popitem(last=False)
        return out

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """:meth:`batch` → logits ``[N]`` (float64) of the configured decision rule: fake − real of the chosen pair.

        Raises:
            ValueError: the batch is not ``[N, 6, H, W]``.
        """
        logits = self._infer(batch)["logits"]
        return torch.tensor([decisions(t.float().cpu())["logits"][self.decision] for t in logits],
                            dtype=torch.float64)

    def score(self, prepared: Sequence[Prepared]) -> list[tuple[float, Mapping[str, Any]]]:
        """The forward pass of :meth:`forward` for a batch of prepared images, with every rule and label in details."""
        out = self._infer(self.batch(prepared))
        names, topk, top_p, top_i, sims = imagenet_classnames(), out["topk"], out["top_p"], out["top_i"], out["sims"]
        task_names = list(self.spec.options.get("task_names") or [])
        results: list[tuple[float, Mapping[str, Any]]] = []
        for b in range(len(prepared)):
            task_logits = out["logits"][b].float().cpu()
            dec = decisions(task_logits)
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
                "prompts": out["prompts"][b],
            }
            results.append((dec["logits"][self.decision], details))
        return results


@register_arch("prompt2guard")
def build_prompt2guard(spec: DetectorSpec, device: str | torch.device = "cpu") -> P2GDetector:
    """Builder for ``arch: prompt2guard``: random CLIP and prompts (options ``num_tasks``, ``K``, ``topk_classes``
    set the shapes until a checkpoint is loaded)."""
    opts = spec.options
    model = P2GNet(num_tasks=int(opts.get("num_tasks", 5)), k=int(opts.get("K", 7)),
                   topk_classes=int(opts.get("topk_classes", 5)))
    return P2GDetector(spec, model, device=device)
