"""The detector interface: prepare → score → result. Families override the smallest piece they need."""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from core.convert import sigmoid
from core.errors import BadImage, ScoreError, WeightsCorrupt
from core.models.checkpoint import load_strict, unwrap_state_dict
from core.models.explain import (
    Explanation,
    get_submodule_by_path,
    gradcam,
    heatmap_to_image,
    input_gradients_only,
)
from core.models.fast import bf16_copy, fold_batchnorm, fuse_bottlenecks
from core.models.preprocess import Prepared, build_transform
from core.models.specs import DetectorSpec
from core.results import DetectionResult


class Detector:
    """A loaded detector: a torch module, its spec and its transform.

    Subclasses usually override only :meth:`forward` (tensor batch → logits); a detector whose input is more than
    one tensor also overrides :meth:`prepare` and :meth:`batch` (how prepared images become forward's input), and
    :meth:`score` to add details. Every override keeps the base signature: :meth:`predict` (one image → result),
    :meth:`predict_batch`, :meth:`explain` and :meth:`forward` work the same way on every family.

    Attributes:
        spec: the YAML spec.
        model: the torch module (eval mode; shared by all sessions: never mutate it while serving).
        weights_path / weights_sha256: the checkpoint the scores come from (None until loaded).
        lock: serialises forward passes and Grad-CAM on the shared model (hooks are per module, so a forward
            from another thread during Grad-CAM would corrupt its activations).
        precision: ``"fp32"`` (faithful default) or ``"bf16"`` (fast mode), see :meth:`set_precision`.
        folded: True once :meth:`optimize_for_inference` folded the batch norms into the convolutions.
    """

    def __init__(self, spec: DetectorSpec, model: torch.nn.Module, *, device: str | torch.device = "cpu",
                 fold_batchnorm: bool = False, resident_bf16: bool = False) -> None:
        """Wrap a built network.

        Args:
            spec: the YAML spec.
            model: the network (random weights until a checkpoint is loaded).
            device: torch device.
            fold_batchnorm: the network is a conv/batch-norm stack that :func:`core.models.fast.fold_batchnorm`
                understands; :meth:`optimize_for_inference` then folds it (exact up to float rounding).
            resident_bf16: the fast mode runs a bf16 channels-last copy of the network (weights cast once),
                instead of autocast (which re-casts every weight on every call). Only for networks that are one
                self-contained module taking one image tensor.
        """
        self.spec = spec
        self.device = torch.device(device)
        # channels_last (NHWC) lets oneDNN run ResNet convolutions much closer to the machine's peak on CPU with
        # the same logits to float rounding (checked by the golden tests); declared per detector in the YAML.
        self.memory_format = torch.channels_last if spec.options.get("channels_last") else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory_format).eval()
        self.precision = "fp32"            # "bf16": the opt-in fast path, see set_precision()
        self.fold_batchnorm = fold_batchnorm
        self.resident_bf16 = resident_bf16
        self.folded = False
        self._bf16_model: torch.nn.Module | None = None   # the fast mode's resident copy (resident_bf16 only)
        self._fast_active = False                          # True only inside a fast score, under the lock
        self.transform = build_transform(spec.preprocess) if spec.preprocess.mode != "face" else None
        self.weights_path: Path | None = None
        self.weights_sha256: str | None = None
        self.backbone_path: Path | None = None
        self.backbone_sha256: str | None = None
        self.custom_weights: str | None = None   # the user's file name when not the variant's official weights
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ identity
    @property
    def detector_id(self) -> str:
        return self.spec.id

    @property
    def key(self) -> str:
        return self.spec.key

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.key} weights={self.weights_path}>"

    # ------------------------------------------------------------------ weights
    def load_checkpoint(self, checkpoint: Any, path: str | None = None) -> None:
        """Load the detector's own checkpoint (already safely unpickled) strictly into :attr:`model`."""
        assert self.spec.weights is not None
        if self.folded:
            # the folded network has no batch-norm keys left; a checkpoint goes into a fresh build instead
            raise RuntimeError(f"{self.spec.key}: the network was optimised for inference (batch norms folded); "
                               "load checkpoints into a new detector (create_detector / build_detector).")
        sd = unwrap_state_dict(checkpoint, self.spec.weights.container, self.spec.id, path)
        load_strict(self.model, sd, self.spec.id, path)
        self.model.eval()
        if self._bf16_model is not None:
            self._bf16_model = bf16_copy(self.model)      # the fast copy follows the new weights

    def optimize_for_inference(self) -> None:
        """Rewrite the loaded network for faster inference with the same scores (to float rounding).

        Folds batch norms into convolutions where the builder declared it (``fold_batchnorm``), then fuses each
        ResNet bottleneck's ReLUs and residual addition into its convolutions (inference only; Grad-CAM runs the
        ordinary forward). Call it once the
        weights are final: :func:`~core.models.factory.create_detector` does, after loading the checkpoint.
        Afterwards the state dict lacks the batch-norm keys and :meth:`load_checkpoint` refuses.
        """
        with self.lock:
            if self.fold_batchnorm and not self.folded:
                fold_batchnorm(self.model.eval())
                fuse_bottlenecks(self.model)   # ReLU and residual additions inside oneDNN's convolutions
                self.folded = True
                if self._bf16_model is not None:
                    self._bf16_model = bf16_copy(self.model)

    def load_backbone(self, checkpoint: Any, path: str | None = None) -> None:
        """Load a separate backbone checkpoint (CLIP-D, P2G). Detectors without one refuse."""
        raise WeightsCorrupt(self.spec.id, "this detector has no separate backbone weights.", path=path)

    # ------------------------------------------------------------------ inference
    def prepare(self, image: Image.Image) -> Prepared:
        """Preprocess one RGB image (raises BadImage when the image cannot be fed to this detector)."""
        if self.transform is None:
            raise NotImplementedError(f"{type(self).__name__} must override prepare()")
        try:
            return self.transform(image)
        except ValueError as exc:
            raise BadImage("<image>", f"cannot be analysed by {self.spec.id}: {exc}") from None

    def batch(self, prepared: Sequence[Prepared]) -> torch.Tensor:
        """Same-shaped prepared images → the input :meth:`forward` takes (default: their tensors stacked, N×C×H×W).

        Families whose network reads more than one view of an image (P2G) override this, not forward's signature.
        """
        return torch.stack([p.tensor for p in prepared]).to(self.device, memory_format=self.memory_format)

    def run_model(self, batch: torch.Tensor) -> torch.Tensor:
        """The network on a batch in the active precision (the resident bf16 copy inside a fast score)."""
        if self._fast_active and self._bf16_model is not None:
            return self._bf16_model(batch.to(torch.bfloat16, memory_format=torch.channels_last)).float()
        return self.model(batch)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Batch (see :meth:`batch`) → logits of shape [N] (positive = fake)."""
        out = self.run_model(batch)
        return out.reshape(out.shape[0], -1)[:, 0]

    def score(self, prepared: Sequence[Prepared]) -> list[tuple[float, Mapping[str, Any]]]:
        """Score same-shaped prepared images in one forward pass → [(logit, details)]."""
        logits = self.forward(self.batch(prepared))
        return [(float(v), {}) for v in logits.float().cpu()]

    def set_precision(self, precision: str) -> None:
        """``"fp32"`` (default, faithful) or ``"bf16"`` (fast mode: faster, logits differ slightly).

        The fast mode keeps a bf16 channels-last copy of the network resident where the builder declared
        ``resident_bf16`` (the weights are cast once, here), and uses CPU autocast otherwise. Results computed in
        it say so in ``details["precision"]``; Grad-CAM always runs in fp32. Whether a detector's fast mode is
        faithful enough to offer is measured by ``bench/run.py`` and declared by ``options.fast_bf16``.
        """
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r}")
        with self.lock:
            self.precision = precision
            if precision == "bf16" and self.resident_bf16 and self._bf16_model is None:
                self._bf16_model = bf16_copy(self.model)
            elif precision == "fp32":
                self._bf16_model = None               # frees the copy

    @property
    def fast_offered(self) -> bool:
        """True when the YAML offers this detector's fast mode (``options.fast_bf16``: it met the fidelity bar)."""
        return bool(self.spec.options.get("fast_bf16"))

    def use_fast_mode(self) -> bool:
        """Switch to bf16 when the fast mode is offered for this detector; returns whether it was."""
        if self.fast_offered:
            self.set_precision("bf16")
        return self.fast_offered

    def _run_score(self, prepared: Sequence[Prepared]) -> list[tuple[float, Mapping[str, Any]]]:
        """score() under the lock and the chosen precision."""
        # The lock keeps a forward pass out of another thread's Grad-CAM: hooks are per module, not per call,
        # so an unlocked forward would overwrite the activations being explained.
        with self.lock:
            if self.precision != "bf16":
                return self.score(prepared)
            if self._bf16_model is not None:
                self._fast_active = True
                try:
                    out = self.score(prepared)
                finally:
                    self._fast_active = False
            else:
                # options.fast_per_image: a network whose bf16 batches hit a slow kernel on CPU (CLIP-D: batch-first
                # attention makes autocast's projections run as bmm over copied weights, ~40 s a batch) is
                # scored one image at a time in the fast mode; same values, measured in bench/speed_b.py.
                per_image = bool(self.spec.options.get("fast_per_image")) and len(prepared) > 1
                with torch.autocast(self.device.type, dtype=torch.bfloat16):
                    out = [r for p in prepared for r in self.score([p])] if per_image else self.score(prepared)
            return [(logit, {**det, "precision": "bf16"}) for logit, det in out]

    def result_identity(self, details: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The variant a result reports, and its details: the user's own file is "custom", never the official one."""
        if not self.custom_weights:
            return self.spec.variant, dict(details)
        return "custom", {**details, "weights": f"custom file {self.custom_weights}"}

    def _result(self, prep: Prepared, logit: float, elapsed: float, details: Mapping[str, Any]) -> DetectionResult:
        if not math.isfinite(logit):
            # a NaN/inf score must never become a label; the caller shows this sentence instead of a verdict
            raise ScoreError(f"{self.spec.key}: the model produced a non-finite score ({logit}); no verdict was "
                             "given. The weights are probably damaged: re-import the checkpoint.")
        p = sigmoid(logit)
        variant, details = self.result_identity(details)
        return DetectionResult(
            detector_id=self.spec.id, variant=variant, logit=logit, p_fake=p,
            label="fake" if p > self.spec.threshold else "real", threshold=self.spec.threshold,
            elapsed_s=elapsed, image_size=prep.image_size, input_size=prep.input_size, crop_box=prep.crop_box,
            resized=prep.resized, preprocessing=prep.description, weights_sha256=self.weights_sha256,
            details=dict(details),
        )

    @torch.inference_mode()
    def predict(self, image: Image.Image) -> DetectionResult:
        """Score one RGB image.

        Example:
            >>> det = create_detector("NPR")
            >>> det.predict(load_image("x.png")).p_fake
            0.93
        """
        t0 = time.perf_counter()
        prep = self.prepare(image)
        (logit, details), = self._run_score([prep])
        return self._result(prep, logit, time.perf_counter() - t0, details)

    @torch.inference_mode()
    def predict_batch(self, images: Sequence[Image.Image], batch_size: int = 8) -> list[DetectionResult]:
        """Score many images; images whose inputs share a shape go through the network together.

        Size-aware bucketing: a batch holds at most ``options.batch_pixels`` input pixels (default 2²⁰), so
        full-resolution detectors do not build multi-gigabyte activations for a batch of large images (for them
        a batch of one is already GEMM-efficient), while 224² CLIP inputs batch up to ``batch_size``.

        Returns results in input order, equal to :meth:`predict` on each image (to float rounding).
        """
        budget = int(self.spec.options.get("batch_pixels", 1 << 20))
        results: list[DetectionResult | None] = [None] * len(images)
        # Prepare lazily and flush a shape's bucket as soon as it is full: memory stays bounded by one batch per
        # shape instead of holding every prepared tensor of a large evaluation at once.
        pending: dict[tuple[int, ...], list[tuple[int, Prepared, float]]] = {}

        def flush(shape: tuple[int, ...]) -> None:
            chunk = pending.pop(shape, [])
            if not chunk:
                return
            t0 = time.perf_counter()
            scores = self._run_score([p for _, p, _ in chunk])
            share = (time.perf_counter() - t0) / len(chunk)
            for (i, prep, t_prep), (logit, det) in zip(chunk, scores):
                results[i] = self._result(prep, logit, t_prep + share, det)

        for i, img in enumerate(images):
            t0 = time.perf_counter()
            prep = self.prepare(img)
            shape = tuple(prep.tensor.shape)
            pending.setdefault(shape, []).append((i, prep, time.perf_counter() - t0))
            if len(pending[shape]) >= max(1, min(batch_size, budget // max(1, shape[-1] * shape[-2]))):
                flush(shape)
        for shape in list(pending):
            flush(shape)
        return [r for r in results if r is not None]

    # ------------------------------------------------------------------ explanation
    @property
    def explainable(self) -> bool:
        """True when Grad-CAM is available for this detector (a target layer is declared)."""
        return self.spec.explain_layer is not None

    def explain(self, image: Image.Image) -> Explanation:
        """Grad-CAM of the fake logit at ``spec.explain_layer``, mapped back onto the original image.

        The heatmap covers the whole image: the analysed region (after any centre crop or resize, see
        ``Prepared.crop_box``) gets the map, everything outside it is 0. Hooks live only inside this call and the
        detector's lock is held meanwhile; parameters and their ``requires_grad`` flags are left as they were.

        Raises:
            NotImplementedError: the spec declares no target layer.
            BadImage: the image cannot be fed to this detector.

        Example:
            >>> exp = create_detector("NPR").explain(load_image("x.png"))
            >>> exp.heatmap.shape == (image.height, image.width)
            True
        """
        if self.spec.explain_layer is None:
            raise NotImplementedError(f"{self.spec.key} declares no Grad-CAM target layer (explain.target_layer).")
        # inference_mode(False): a caller inside inference mode would otherwise make the backward pass impossible
        # (and its tensors could not require grad), so the input is prepared inside too.
        with torch.inference_mode(False):
            prep = self.prepare(image)
            x = prep.tensor.unsqueeze(0).to(self.device, memory_format=self.memory_format).requires_grad_(True)
            with self.lock, input_gradients_only(self.model):
                layer = get_submodule_by_path(self.model, self.spec.explain_layer)
                heat = gradcam(self.model, layer, x, forward=self.forward)
        return Explanation(heatmap=heatmap_to_image(heat, prep.image_size, prep.crop_box),
                           target_layer=self.spec.explain_layer, image_size=prep.image_size,
                           input_size=prep.input_size, crop_box=prep.crop_box)
