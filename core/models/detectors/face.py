"""FACE: MTCNN face finding + an InceptionResnetV1 face-swap classifier (arch ``face_incres``).

Pipeline of the reference app (aaronespasa/deepfake-detection, ``inference-gradio.ipynb``), applied to EVERY face:
MTCNN (facenet-pytorch, 160 px, margin 0, ``post_process=False``) → 3×160×160 crop with values 0..255 →
bilinear resize to 256×256 (``align_corners=False``) → /255 → ``InceptionResnetV1(classify=True, num_classes=1)``
→ one logit, ``sigmoid = P(fake)`` (the model was trained with real=0, fake=1).

The reference keeps only the most probable face; we score all of them and let the face with the highest P(fake)
decide, because one swapped face in a group photo makes the whole image suspicious. An image without a face gives
a ``no_face`` result, never an exception. :func:`find_faces` runs MTCNN alone (its weights ship inside the
facenet-pytorch wheel), so boxes can be shown even when the classifier checkpoint is missing.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from core.convert import sigmoid
from core.errors import BadImage, ConfigError, ScoreError
from core.models.detectors.base import Detector
from core.models.explain import Explanation, get_submodule_by_path, gradcam
from core.models.preprocess import Prepared, describe
from core.models.registry import register_arch
from core.models.specs import DetectorSpec
from core.results import DetectionResult, FaceResult

if TYPE_CHECKING:
    from facenet_pytorch import MTCNN

__all__ = ["FaceCfg", "PreparedFace", "FaceDetector", "get_mtcnn", "find_faces", "prepare_face",
           "paste_heatmaps", "build_face"]

NO_FACE_MESSAGE = "no face found"


@dataclass(frozen=True)
class FaceCfg:
    """MTCNN and classifier-input settings (the YAML's ``options``; defaults = the reference app)."""

    face_size: int = 160                              # MTCNN output crop side (image_size)
    margin: int = 0                                   # MTCNN margin, in pixels of the final crop
    min_face_size: int = 20                           # smallest face MTCNN looks for, in image pixels
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-Net acceptance thresholds
    factor: float = 0.709                             # scale step of MTCNN's image pyramid
    input_size: int = 256                             # classifier input side (bilinear resize of the crop)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], where: str = "<options>") -> "FaceCfg":
        """Build from a spec's ``options`` mapping, rejecting unknown keys and bad values.

        Raises:
            ConfigError: naming the offending option.
        """
        allowed = set(cls.__dataclass_fields__)
        extra = set(options) - allowed
        if extra:
            raise ConfigError(f"{where}: field 'options': unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")
        kw: dict[str, Any] = {}
        for name in ("face_size", "min_face_size", "input_size"):
            if name in options:
                v = options[name]
                if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                    raise ConfigError(f"{where}: field 'options.{name}': must be a positive integer")
                kw[name] = v
        if "margin" in options:
            v = options["margin"]
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"{where}: field 'options.margin': must be a non-negative integer")
            kw["margin"] = v
        if "thresholds" in options:
            v = options["thresholds"]
            if not (isinstance(v, (list, tuple)) and len(v) == 3
                    and all(isinstance(t, (int, float)) and 0.0 < float(t) < 1.0 for t in v)):
                raise ConfigError(f"{where}: field 'options.thresholds': must be three numbers in (0, 1)")
            kw["thresholds"] = (float(v[0]), float(v[1]), float(v[2]))
        if "factor" in options:
            v = options["factor"]
            if not isinstance(v, (int, float)) or not 0.0 < float(v) < 1.0:
                raise ConfigError(f"{where}: field 'options.factor': must be a number in (0, 1)")
            kw["factor"] = float(v)
        cfg = cls(**kw)
        if cfg.margin >= cfg.face_size:
            raise ConfigError(f"{where}: field 'options.margin': must be smaller than face_size")
        return cfg


@dataclass(frozen=True)
class PreparedFace:
    """One detected face and the tensors made from it."""

    face: FaceResult                                  # detection only (label "unscored")
    crop: torch.Tensor                                # 3×face_size×face_size float32, values 0..255 (MTCNN crop)
    tensor: torch.Tensor                              # 3×input_size×input_size float32 in [0, 1] (network input)


# --------------------------------------------------------------------------------------------- MTCNN

_MTCNN_CACHE: dict[tuple[Any, ...], Any] = {}
_MTCNN_LOCK = threading.Lock()


def get_mtcnn(cfg: FaceCfg | None = None, device: str | torch.device = "cpu") -> "MTCNN":
    """The process-wide MTCNN for these settings (built once; its P/R/O-Net weights ship with facenet-pytorch).

    MTCNN's forward pass keeps no state, so one instance serves every thread and session.

    Args:
        cfg: MTCNN settings (defaults to the reference app's).
        device: torch device for the three small networks.

    Returns:
        A ``facenet_pytorch.MTCNN`` with ``keep_all=True`` and ``select_largest=False``.
    """
    from facenet_pytorch import MTCNN  # noqa: F811 - runtime import (the module-level one is for typing only)

    cfg = cfg or FaceCfg()
    dev = torch.device(device)
    key = (cfg.face_size, cfg.margin, cfg.min_face_size, cfg.thresholds, cfg.factor, str(dev))
    with _MTCNN_LOCK:
        m = _MTCNN_CACHE.get(key)
        if m is None:
            # keep_all=True: every face; select_largest=False: most probable first (the reference's choice).
            m = MTCNN(image_size=cfg.face_size, margin=cfg.margin, min_face_size=cfg.min_face_size,
                      thresholds=list(cfg.thresholds), factor=cfg.factor, post_process=False,
                      select_largest=False, keep_all=True, device=dev).eval()
            _MTCNN_CACHE[key] = m
        return m


def _crop_box(box: Sequence[float], image_size: tuple[int, int], cfg: FaceCfg) -> tuple[int, int, int, int]:
    # Same arithmetic as facenet's extract_face: margin is given in final-crop pixels, the box is clamped to the
    # image and truncated with int(), so the reported box is exactly the region that was cropped.
    w0, h0 = image_size
    mx = cfg.margin * (box[2] - box[0]) / (cfg.face_size - cfg.margin)
    my = cfg.margin * (box[3] - box[1]) / (cfg.face_size - cfg.margin)
    return (int(max(box[0] - mx / 2, 0)), int(max(box[1] - my / 2, 0)),
            int(min(box[2] + mx / 2, w0)), int(min(box[3] + my / 2, h0)))


def _detect(image: Image.Image, cfg: FaceCfg, device: str | torch.device) -> list[FaceResult]:
    w0, h0 = image.size
    # MTCNN's pyramid is empty when the shorter side is below min_face_size and it would then fail on an empty
    # torch.cat; such an image cannot hold a face MTCNN is able to find anyway.
    if min(w0, h0) < max(cfg.min_face_size, 12):
        return []
    mtcnn = get_mtcnn(cfg, device)
    try:
        boxes, probs, points = mtcnn.detect(image, landmarks=True)
    except RuntimeError as exc:
        if "non-empty list" in str(exc):      # every candidate of a stage fell outside the image
            return []
        raise
    if boxes is None or len(boxes) == 0:
        return []
    boxes, probs, points = np.asarray(boxes), np.asarray(probs), np.asarray(points)
    # The ordering facenet's select_boxes(method="probability") uses, so face 0 is the face keep_all=False returns.
    order = np.argsort(probs)[::-1]
    faces: list[FaceResult] = []
    for k in order:
        box = boxes[k]
        cbox = _crop_box(box, (w0, h0), cfg)
        if cbox[2] <= cbox[0] or cbox[3] <= cbox[1]:
            continue                          # a box entirely outside the image: nothing to crop
        faces.append(FaceResult(
            index=len(faces), box=tuple(float(v) for v in box[:4]), detection_prob=float(probs[k]),
            landmarks=tuple((float(x), float(y)) for x, y in points[k]), crop_box=cbox))
    return faces


def find_faces(image: Image.Image, *, cfg: FaceCfg | None = None,
               device: str | torch.device = "cpu") -> list[FaceResult]:
    """Run MTCNN alone: every face with its box, probability and landmarks (no classifier weights needed).

    Args:
        image: an RGB PIL image (other modes are converted).
        cfg: MTCNN settings (defaults to the reference app's).
        device: torch device for MTCNN.

    Returns:
        The faces, most probable first, each labelled ``"unscored"``; an empty list when there is none.

    Example:
        >>> [f.box for f in find_faces(load_image("group.jpg"))]
        [(173.1, 80.4, 369.6, 354.6), ...]
    """
    if image.mode != "RGB":
        image = image.convert("RGB")
    return _detect(image, cfg or FaceCfg(), device)


@torch.no_grad()
def prepare_face(image: Image.Image, face: FaceResult, cfg: FaceCfg | None = None) -> PreparedFace:
    """Crop one detected face exactly as the reference app does and build the classifier input.

    The crop is facenet's ``extract_face`` (PIL crop of :attr:`FaceResult.crop_box`, PIL bilinear resize to
    ``face_size``, values 0..255); the input is ``F.interpolate`` to ``input_size`` (bilinear,
    ``align_corners=False``) divided by 255. Runs under ``no_grad`` (not inference mode) so the tensors can be
    fed to Grad-CAM.
    """
    from facenet_pytorch import extract_face

    cfg = cfg or FaceCfg()
    if image.mode != "RGB":
        image = image.convert("RGB")
    # float32, like MTCNN's own boxes, so extract_face's margin arithmetic rounds exactly as _crop_box did.
    crop = extract_face(image, np.asarray(face.box, dtype=np.float32), cfg.face_size, cfg.margin)
    x = F.interpolate(crop.unsqueeze(0), size=(cfg.input_size, cfg.input_size), mode="bilinear",
                      align_corners=False) / 255.0
    return PreparedFace(face=face, crop=crop, tensor=x[0])


def paste_heatmaps(image_size: tuple[int, int], faces: Sequence[FaceResult]) -> np.ndarray:
    """Paste every face's Grad-CAM heatmap back onto a full-image map.

    Each heatmap is resized (bilinear) to its face's crop box and placed there; overlapping faces keep the
    larger value. Pixels outside every face are 0.

    Args:
        image_size: (W, H) of the analysed image.
        faces: faces carrying a ``heatmap`` (faces without one are skipped).

    Returns:
        H×W float32 array in [0, 1].
    """
    w0, h0 = image_size
    full = np.zeros((h0, w0), dtype=np.float32)
    for f in faces:
        if f.heatmap is None:
            continue
        x1, y1, x2, y2 = f.crop_box
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w0, x2), min(h0, y2)
        if x2 <= x1 or y2 <= y1:
            continue
        h = torch.from_numpy(np.asarray(f.heatmap, dtype=np.float32))[None, None]
        patch = F.interpolate(h, size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False)[0, 0].numpy()
        np.maximum(full[y1:y2, x1:x2], patch, out=full[y1:y2, x1:x2])
    return np.clip(full, 0.0, 1.0)


# --------------------------------------------------------------------------------------------- detector

class FaceDetector(Detector):
    """MTCNN on the whole image, then the face-swap classifier on every face.

    Attributes:
        cfg: MTCNN / input settings from the YAML's ``options``.
    """

    def __init__(self, spec: DetectorSpec, model: torch.nn.Module, *, device: str | torch.device = "cpu") -> None:
        super().__init__(spec, model, device=device)
        self.cfg = FaceCfg.from_options(spec.options, spec.config_path or spec.key)
        self._description = describe(spec.preprocess)

    # ------------------------------------------------------------------ preprocessing
    def find_faces(self, image: Image.Image) -> list[FaceResult]:
        """MTCNN alone with this detector's settings (see :func:`find_faces`)."""
        return find_faces(image, cfg=self.cfg, device=self.device)

    def prepare_faces(self, image: Image.Image) -> list[PreparedFace]:
        """Detect every face and build its crop and network input (most probable face first)."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        return [prepare_face(image, f, self.cfg) for f in self.find_faces(image)]

    def prepare(self, image: Image.Image) -> Prepared:
        """The most probable face as a :class:`Prepared` (base-class interface; :meth:`predict` scores all faces).

        Raises:
            BadImage: when MTCNN finds no face.
        """
        faces = self.prepare_faces(image)
        if not faces:
            raise BadImage("<image>", f"cannot be analysed by {self.spec.id}: {NO_FACE_MESSAGE}.")
        first = faces[0]
        return Prepared(tensor=first.tensor, image_size=image.size, input_size=self._input_wh,
                        crop_box=first.face.crop_box, resized=True, description=self._description,
                        aux={"faces": faces})

    @property
    def _input_wh(self) -> tuple[int, int]:
        return (self.cfg.input_size, self.cfg.input_size)

    # ------------------------------------------------------------------ scoring
    def face_logit(self, tensor: torch.Tensor) -> float:
        """Classifier logit of one prepared face input (3×S×S or 1×3×S×S)."""
        x = tensor if tensor.dim() == 4 else tensor.unsqueeze(0)
        # The lock keeps a forward pass from running while Grad-CAM hooks are attached to the shared model
        # (they would record this pass's activations into the explanation).
        with self.lock, torch.inference_mode():
            return float(self.forward(x.to(self.device))[0].float().cpu())

    def face_heatmap(self, tensor: torch.Tensor) -> np.ndarray:
        """Grad-CAM of the fake logit for one prepared face input, at the input resolution.

        Hooks live only for this call (pytorch-grad-cam's context manager) and the detector's lock serialises
        explanations on the shared model; parameter gradients are dropped afterwards so the model is left as found.

        Returns:
            input_size×input_size float32 array in [0, 1].

        Raises:
            ValueError: when the spec declares no ``explain.target_layer``.
        """
        if self.spec.explain_layer is None:
            raise ValueError(f"{self.spec.key} declares no explain.target_layer")
        layer = get_submodule_by_path(self.model, self.spec.explain_layer)
        with self.lock, torch.inference_mode(False):
            # A tensor made under inference mode cannot enter autograd: clone it into a normal one. Grad-CAM needs
            # only activation gradients: no weight gradients, and the graph starts at the target layer (gradcam's
            # from_layer), so the layers before it run as inference (identical heatmap). Flags are restored below.
            x = (tensor if tensor.dim() == 4 else tensor.unsqueeze(0)).clone().to(self.device)
            params = list(self.model.parameters())
            flags = [p.requires_grad for p in params]
            try:
                for p in params:
                    p.requires_grad_(False)
                heat = gradcam(self.model, layer, x)
            finally:
                for p, flag in zip(params, flags):
                    p.requires_grad_(flag)
                self.model.zero_grad(set_to_none=True)
                self.model.eval()
        return heat

    def _score_face(self, pf: PreparedFace, with_cam: bool) -> FaceResult:
        logit = self.face_logit(pf.tensor)
        if not math.isfinite(logit):   # a NaN/inf score never becomes a label
            raise ScoreError(f"{self.spec.key}: the model produced a non-finite score ({logit}); no verdict was "
                             "given. The weights are probably damaged: re-import the checkpoint.")
        p = sigmoid(logit)
        heat = self.face_heatmap(pf.tensor) if with_cam else None
        return replace(pf.face, logit=logit, p_fake=p, label="fake" if p > self.spec.threshold else "real",
                       heatmap=heat)

    def _no_face(self, image: Image.Image, elapsed: float) -> DetectionResult:
        nan = float("nan")
        variant, details = self.result_identity({"message": NO_FACE_MESSAGE})
        return DetectionResult(
            detector_id=self.spec.id, variant=variant, logit=nan, p_fake=nan, label="no_face",
            threshold=self.spec.threshold, elapsed_s=elapsed, image_size=image.size, input_size=(0, 0),
            crop_box=None, resized=False, preprocessing=self._description, weights_sha256=self.weights_sha256,
            details=details, faces=())

    def predict(self, image: Image.Image) -> DetectionResult:
        """Score every face; the face with the highest P(fake) decides the image's verdict (the base interface).

        Returns:
            A :class:`DetectionResult` whose ``faces`` lists every face (most probable face first) and whose
            logit, crop box and input size are those of the deciding face; label ``"no_face"`` (logit and
            p_fake NaN) when MTCNN finds none.

        Example:
            >>> r = create_detector("FACE").predict(load_image("group.jpg"))
            >>> r.label, len(r.faces)
            ('fake', 3)
        """
        return self.predict_faces(image)

    def predict_faces(self, image: Image.Image, *, with_cam: bool = False) -> DetectionResult:
        """:meth:`predict`, optionally with a Grad-CAM heatmap per face (``FaceResult.heatmap``).

        The face family's second entry point: per-face maps belong to the faces of the result, so they are computed
        in the same pass as the scores (Grad-CAM needs gradients, so this runs outside inference mode).

        Args:
            image: an RGB PIL image.
            with_cam: also compute each face's Grad-CAM heatmap (input_size × input_size, values in [0, 1]).
        """
        t0 = time.perf_counter()
        if image.mode != "RGB":
            image = image.convert("RGB")
        prepared = self.prepare_faces(image)
        if not prepared:
            return self._no_face(image, time.perf_counter() - t0)
        # One forward pass per face: each face's score is then independent of the other faces in the photo.
        faces = tuple(self._score_face(pf, with_cam) for pf in prepared)
        best = max(faces, key=lambda f: (f.logit, -f.index))
        variant, details = self.result_identity({"n_faces": len(faces), "deciding_face": best.index,
                                                 "face_p_fake": [f.p_fake for f in faces]})
        return DetectionResult(
            detector_id=self.spec.id, variant=variant, logit=best.logit, p_fake=best.p_fake,
            label=best.label, threshold=self.spec.threshold, elapsed_s=time.perf_counter() - t0,
            image_size=image.size, input_size=self._input_wh, crop_box=best.crop_box, resized=True,
            preprocessing=self._description, weights_sha256=self.weights_sha256, details=details, faces=faces)

    def explain(self, image: Image.Image) -> Explanation:
        """Grad-CAM of every face pasted onto one full-image map (0 outside the faces).

        For per-face maps and scores use :meth:`predict_faces` with ``with_cam=True`` (``FaceResult.heatmap``).
        """
        if image.mode != "RGB":
            image = image.convert("RGB")
        result = self.predict_faces(image, with_cam=True)
        return Explanation(heatmap=paste_heatmaps(image.size, result.faces), target_layer=self.spec.explain_layer or "",
                           image_size=image.size, input_size=self._input_wh, crop_box=None)

    def predict_batch(self, images: Sequence[Image.Image], batch_size: int = 8) -> list[DetectionResult]:
        """Score many images one after the other (MTCNN works per image). ``batch_size`` is accepted and unused."""
        del batch_size
        return [self.predict(img) for img in images]


@register_arch("face_incres")
def build_face(spec: DetectorSpec, device: str | torch.device = "cpu") -> FaceDetector:
    """Builder for ``arch: face_incres``: ``InceptionResnetV1(pretrained=None, classify=True, num_classes=1)``.

    Random classifier weights until a checkpoint is loaded; nothing is downloaded (MTCNN's weights are local).
    """
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1(pretrained=None, classify=True, num_classes=1)
    return FaceDetector(spec, model, device=device)
