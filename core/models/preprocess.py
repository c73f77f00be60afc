"""The ONE place that turns a PIL image into a detector's input tensor (keyed by the YAML's PreprocessCfg).

Every transform here reproduces an upstream test pipeline exactly (torchvision's own functional ops on the PIL
image, so resampling, rounding of the centre-crop offset and normalisation are bit-identical to the papers' code).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from core.models.specs import PreprocessCfg

_INTERP = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "lanczos": InterpolationMode.LANCZOS,
}


@dataclass(frozen=True)
class Prepared:
    """A preprocessed image plus the facts the result must report."""

    tensor: torch.Tensor                              # C x H x W float32, normalised (ten_crop: 10 x C x H x W)
    image_size: tuple[int, int]                       # (W, H) of the original RGB image
    input_size: tuple[int, int]                       # (W, H) of ``tensor``
    crop_box: tuple[int, int, int, int] | None        # region of the original image the tensor covers
    resized: bool
    description: str
    aux: Mapping[str, Any] = field(default_factory=dict)   # extra inputs a detector needs (P2G: zero-shot view)


def _center_box(w: int, h: int, cw: int, ch: int) -> tuple[int, int, int, int]:
    # torchvision CenterCrop rounding: int(round(...)) with Python's half-to-even round.
    top = int(round((h - ch) / 2.0))
    left = int(round((w - cw) / 2.0))
    return left, top, left + cw, top + ch


def describe(cfg: PreprocessCfg) -> str:
    """One line a human can check against the paper's code."""
    stats = "CLIP" if cfg.mean[0] < 0.482 else "ImageNet"
    if cfg.mode == "face":
        return "MTCNN face crops (160 px) → bilinear 256×256 → /255"
    if cfg.mode == "resize_crop":
        return f"resize shorter side {cfg.resize} ({cfg.interpolation}) → centre crop {cfg.crop} → {stats} mean/std"
    if cfg.mode == "center_crop":
        return (f"centre crop {cfg.crop}×{cfg.crop} at native resolution (no resize; zero-pad a side under "
                f"{cfg.crop}) → {stats} mean/std")
    if cfg.mode == "ten_crop":
        return (f"ten {cfg.crop}×{cfg.crop} crops at native resolution (4 corners + centre, and mirrored) → "
                f"{stats} mean/std; logits averaged")
    parts = ["full resolution"]
    if isinstance(cfg.resize, tuple):
        parts = [f"resize to {cfg.resize[0]}×{cfg.resize[1]} ({cfg.interpolation})"]
    elif isinstance(cfg.resize, int):
        parts = [f"resize shorter side {cfg.resize} ({cfg.interpolation})"]
    if cfg.large_crop:
        parts.append(f"centre crop {cfg.large_crop}×{cfg.large_crop} when both sides exceed {cfg.large_crop}")
    if cfg.even_crop:
        parts.append("drop last row/column when odd")
    parts.append(f"{stats} mean/std")
    return " → ".join(parts)


def _native_crop_transform(cfg: PreprocessCfg, text: str) -> Callable[[Image.Image], Prepared]:
    """``center_crop`` / ``ten_crop``: torchvision CenterCrop / TenCrop on the PIL image, never resampled (RINE)."""
    side, mean, std = int(cfg.crop or 0), list(cfg.mean), list(cfg.std)

    def transform(image: Image.Image) -> Prepared:
        image = image if image.mode == "RGB" else image.convert("RGB")
        w0, h0 = image.size
        if cfg.mode == "ten_crop":
            if w0 < side or h0 < side:        # torchvision's TenCrop refuses too (undefined upstream)
                raise ValueError(f"ten-crop needs at least {side}×{side} pixels; the image is {w0}×{h0}")
            crops = TF.ten_crop(image, [side, side])
            tensor = torch.stack([TF.normalize(TF.to_tensor(c), mean, std) for c in crops])
            return Prepared(tensor, (w0, h0), (side, side), None, False, text)
        # CenterCrop zero-pads a side under `side` first ((side - s) // 2 before), so the box is the whole side.
        tensor = TF.normalize(TF.to_tensor(TF.center_crop(image, [side, side])), mean, std)
        box = _center_box(w0, h0, min(side, w0), min(side, h0))
        return Prepared(tensor, (w0, h0), (side, side), box, False, text)

    return transform


def build_transform(cfg: PreprocessCfg) -> Callable[[Image.Image], Prepared]:
    """Build the transform for one detector.

    Args:
        cfg: the detector's preprocessing config.

    Returns:
        A function mapping an RGB PIL image to a :class:`Prepared`.

    Raises:
        ValueError: for ``mode: face`` (faces are cropped by MTCNN inside the face detector).

    Example:
        >>> t = build_transform(PreprocessCfg(mode="resize_crop", resize=224, crop=224, interpolation="bicubic"))
        >>> t(Image.new("RGB", (640, 480))).tensor.shape
        torch.Size([3, 224, 224])
    """
    if cfg.mode == "face":
        raise ValueError("face preprocessing is done by the face detector (MTCNN), not by build_transform")
    interp = _INTERP[cfg.interpolation]
    mean, std = list(cfg.mean), list(cfg.std)
    text = describe(cfg)
    if cfg.mode in ("center_crop", "ten_crop"):
        return _native_crop_transform(cfg, text)

    def transform(image: Image.Image) -> Prepared:
        if image.mode != "RGB":
            image = image.convert("RGB")
        w0, h0 = image.size
        box: tuple[int, int, int, int] | None = None
        resized = False
        img = image
        if cfg.mode == "resize_crop":
            img = TF.resize(img, cfg.resize, interpolation=interp)
            rw, rh = img.size
            cbox = _center_box(rw, rh, cfg.crop, cfg.crop)
            img = TF.center_crop(img, [cfg.crop, cfg.crop])
            sx, sy = w0 / rw, h0 / rh
            box = (max(0, round(cbox[0] * sx)), max(0, round(cbox[1] * sy)),
                   min(w0, round(cbox[2] * sx)), min(h0, round(cbox[3] * sy)))
            resized = True
        else:
            if cfg.large_crop and w0 > cfg.large_crop and h0 > cfg.large_crop:
                box = _center_box(w0, h0, cfg.large_crop, cfg.large_crop)
                img = img.crop(box)
            if cfg.resize is not None:
                size = [cfg.resize[1], cfg.resize[0]] if isinstance(cfg.resize, tuple) else cfg.resize
                img = TF.resize(img, size, interpolation=interp)
                resized = True
            if cfg.even_crop:
                w, h = img.size
                if w % 2 or h % 2:
                    if w < 2 or h < 2:
                        raise ValueError(f"image {w}×{h} is too small for this detector (needs at least 2×2)")
                    img = img.crop((0, 0, w - w % 2, h - h % 2))
                    if not resized:
                        left, top = (box[0], box[1]) if box else (0, 0)
                        box = (left, top, left + w - w % 2, top + h - h % 2)
        tensor = TF.normalize(TF.to_tensor(img), mean, std)
        return Prepared(tensor=tensor, image_size=(w0, h0), input_size=(tensor.shape[2], tensor.shape[1]),
                        crop_box=box, resized=resized, description=text)

    return transform
