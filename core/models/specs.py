"""Declarative detector specs: the YAML files under configs/detectors/ parsed into frozen dataclasses.

A detector is data (this module) plus a registered builder (core/registry.py). Validation is strict and every
error names the file and the field, so a typo in a config fails at scan time, not at the first click.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.errors import ConfigError

CONTAINERS = ("raw", "model", "model_state_dict", "state_dict", "checkpoint")
SOURCE_TYPES = ("local", "hf", "url", "gdrive", "bundle")
PREPROCESS_MODES = ("full", "resize_crop", "face")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class WeightSource:
    """One place a checkpoint can come from (tried in the order listed)."""

    type: Literal["local", "hf", "url", "gdrive", "bundle"]
    path: str | None = None          # local: a file path (``~`` expanded)
    repo_id: str | None = None       # hf
    filename: str | None = None      # hf
    revision: str | None = None      # hf (None = main)
    url: str | None = None           # url
    id: str | None = None            # gdrive file id
    member: str | None = None        # bundle: glob of the member inside the Truebees bundle, e.g. "NPR/**/best.pt"

    def describe(self) -> str:
        """Short human description used in error messages and the Models page."""
        if self.type == "local":
            return f"local file {self.path}"
        if self.type == "hf":
            rev = f"@{self.revision}" if self.revision else ""
            return f"Hugging Face Hub {self.repo_id}{rev} / {self.filename}"
        if self.type == "url":
            return f"URL {self.url}"
        if self.type == "gdrive":
            return f"Google Drive file id {self.id}"
        return f"Truebees bundle member {self.member}"


@dataclass(frozen=True)
class WeightsSpec:
    """A checkpoint of a detector (the main weights, or a backbone)."""

    file: str                                # file name inside <weights_dir>/<ID>/<variant>/
    container: str = "raw"                   # where the state dict sits inside the checkpoint
    sha256: str | None = None                # expected digest; None = unknown (the import records it)
    size: int | None = None                  # expected bytes, when known
    git_blob_sha1: str | None = None         # git blob id, when the upstream only publishes that
    sources: tuple[WeightSource, ...] = ()
    licence: str | None = None
    note: str | None = None                  # e.g. "CDDB-trained, not TrueFake"
    shared_with: str | None = None           # another variant of the same id whose installed file this one uses


@dataclass(frozen=True)
class PreprocessCfg:
    """How a PIL image becomes the network input (see core/preprocess.py)."""

    mode: str = "full"                       # full | resize_crop | face
    resize: int | tuple[int, int] | None = None  # int: shorter side; (w, h): exact size; None: no resize
    interpolation: str = "bilinear"
    crop: int | None = None                  # centre crop side after resize (resize_crop)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    large_crop: int | None = None            # full mode: centre-crop NxN when BOTH sides exceed N (seed policy)
    even_crop: bool = False                  # full mode: drop last row/column when odd (NPR)


@dataclass(frozen=True)
class ModelCard:
    """What an analyst should know before trusting a detector."""

    title: str = ""
    paper: str = ""
    paper_url: str = ""
    code: str = ""
    licence: str = ""
    training_data: str = ""
    notes: str = ""


@dataclass(frozen=True)
class DetectorSpec:
    """Everything the YAML declares about one detector variant."""

    id: str                                  # paper name: R50_TF, R50_nodown, CLIP-D, P2G, NPR, FACE
    variant: str                             # training-data tag: original, truefake, ...
    arch: str                                # key of a @register_arch builder
    weights: WeightsSpec | None
    preprocess: PreprocessCfg
    backbone: WeightsSpec | None = None      # CLIP-D / P2G: the CLIP backbone checkpoint
    threshold: float = 0.5                   # on p_fake
    ensemble_weight: float = 0.0
    default: bool = False                    # the variant used when only the id is given
    explain_layer: str | None = None         # dotted path for Grad-CAM, e.g. "layer4.-1"
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    card: ModelCard = ModelCard()
    config_path: str = ""                    # the YAML it came from

    @property
    def key(self) -> str:
        """``ID:variant``, unique across the registry."""
        return f"{self.id}:{self.variant}"


# --------------------------------------------------------------------------------------------- parsing

def _fail(path: Path | str, where: str, why: str) -> ConfigError:
    return ConfigError(f"{path}: field '{where}': {why}")


def _check_keys(path: Path | str, where: str, data: dict, allowed: set[str]) -> None:
    extra = set(data) - allowed
    if extra:
        raise _fail(path, where, f"unknown key(s) {sorted(extra)}; allowed: {sorted(allowed)}")


def _triple(path: Path | str, where: str, value: Any) -> tuple[float, float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        raise _fail(path, where, "must be a list of three numbers")
    return (float(value[0]), float(value[1]), float(value[2]))


def _parse_source(path: Path | str, where: str, data: Any) -> WeightSource:
    if not isinstance(data, dict) or "type" not in data:
        raise _fail(path, where, "each source must be a mapping with a 'type'")
    kind = data["type"]
    if kind not in SOURCE_TYPES:
        raise _fail(path, f"{where}.type", f"{kind!r} is not one of {SOURCE_TYPES}")
    required = {"local": ("path",), "hf": ("repo_id", "filename"), "url": ("url",), "gdrive": ("id",),
                "bundle": ("member",)}[kind]
    _check_keys(path, where, data, {"type", "path", "repo_id", "filename", "revision", "url", "id", "member"})
    for r in required:
        if not isinstance(data.get(r), str) or not data[r]:
            raise _fail(path, f"{where}.{r}", f"required for a {kind} source")
    if kind == "url" and not str(data["url"]).startswith(("https://", "http://")):
        raise _fail(path, f"{where}.url", "must start with https:// or http://")
    return WeightSource(**{k: (str(v) if v is not None else None) for k, v in data.items()})


def _parse_weights(path: Path | str, where: str, data: Any) -> WeightsSpec:
    if not isinstance(data, dict):
        raise _fail(path, where, "must be a mapping")
    _check_keys(path, where, data, {"file", "container", "sha256", "size", "git_blob_sha1", "sources", "licence", "note",
                                           "shared_with"})
    if not isinstance(data.get("file"), str) or not data["file"] or "/" in data["file"] or "\\" in data["file"]:
        raise _fail(path, f"{where}.file", "required: a plain file name")
    container = data.get("container", "raw")
    if container not in CONTAINERS:
        raise _fail(path, f"{where}.container", f"{container!r} is not one of {CONTAINERS}")
    sha = data.get("sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
        raise _fail(path, f"{where}.sha256", "must be 64 lowercase hex digits or null")
    size = data.get("size")
    if size is not None and (not isinstance(size, int) or size <= 0):
        raise _fail(path, f"{where}.size", "must be a positive integer or null")
    sources = data.get("sources") or []
    if not isinstance(sources, list):
        raise _fail(path, f"{where}.sources", "must be a list")
    return WeightsSpec(
        file=data["file"], container=container, sha256=sha, size=size,
        git_blob_sha1=data.get("git_blob_sha1"),
        sources=tuple(_parse_source(path, f"{where}.sources[{i}]", s) for i, s in enumerate(sources)),
        licence=data.get("licence"), note=data.get("note"), shared_with=data.get("shared_with"),
    )


def _parse_preprocess(path: Path | str, data: Any) -> PreprocessCfg:
    if not isinstance(data, dict):
        raise _fail(path, "preprocess", "must be a mapping")
    _check_keys(path, "preprocess", data, {"mode", "resize", "interpolation", "crop", "mean", "std", "large_crop",
                                           "even_crop", "stats"})
    mode = data.get("mode", "full")
    if mode not in PREPROCESS_MODES:
        raise _fail(path, "preprocess.mode", f"{mode!r} is not one of {PREPROCESS_MODES}")
    interp = data.get("interpolation", "bilinear")
    if interp not in INTERPOLATIONS:
        raise _fail(path, "preprocess.interpolation", f"{interp!r} is not one of {INTERPOLATIONS}")
    resize = data.get("resize")
    if isinstance(resize, list):
        if len(resize) != 2 or not all(isinstance(v, int) and v > 0 for v in resize):
            raise _fail(path, "preprocess.resize", "a list must be [width, height] of positive integers")
        resize = (resize[0], resize[1])
    elif resize is not None and (not isinstance(resize, int) or resize <= 0):
        raise _fail(path, "preprocess.resize", "must be null, a positive integer (shorter side) or [w, h]")
    crop = data.get("crop")
    if crop is not None and (not isinstance(crop, int) or crop <= 0):
        raise _fail(path, "preprocess.crop", "must be null or a positive integer")
    if mode == "resize_crop" and (resize is None or crop is None):
        raise _fail(path, "preprocess", "resize_crop needs both 'resize' and 'crop'")
    large = data.get("large_crop")
    if large is not None and (not isinstance(large, int) or large <= 0):
        raise _fail(path, "preprocess.large_crop", "must be null or a positive integer")
    stats = data.get("stats")
    if stats is not None and stats not in ("imagenet", "clip"):
        raise _fail(path, "preprocess.stats", "must be 'imagenet' or 'clip'")
    mean = CLIP_MEAN if stats == "clip" else IMAGENET_MEAN
    std = CLIP_STD if stats == "clip" else IMAGENET_STD
    if "mean" in data:
        mean = _triple(path, "preprocess.mean", data["mean"])
    if "std" in data:
        std = _triple(path, "preprocess.std", data["std"])
    if any(s <= 0 for s in std):
        raise _fail(path, "preprocess.std", "must be positive")
    return PreprocessCfg(mode=mode, resize=resize, interpolation=interp, crop=crop, mean=mean, std=std,
                         large_crop=large, even_crop=bool(data.get("even_crop", False)))


def parse_spec(data: Any, path: Path | str = "<memory>", *, known_archs: set[str] | None = None) -> DetectorSpec:
    """Validate one YAML document and build its :class:`DetectorSpec`.

    Args:
        data: the parsed YAML mapping.
        path: file name used in error messages.
        known_archs: when given, ``arch`` must be one of these.

    Returns:
        The frozen spec.

    Raises:
        ConfigError: naming the file and the offending field.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must hold a YAML mapping")
    _check_keys(path, "<top>", data, {"id", "variant", "arch", "weights", "backbone", "preprocess", "threshold",
                                      "ensemble_weight", "default", "explain", "options", "card"})
    for req in ("id", "variant", "arch", "preprocess"):
        if req not in data:
            raise _fail(path, req, "required")
    det_id, variant, arch = data["id"], data["variant"], data["arch"]
    for name, value in (("id", det_id), ("variant", variant), ("arch", arch)):
        if not isinstance(value, str) or not value or ":" in value or "/" in value or " " in value:
            raise _fail(path, name, "must be a non-empty string without ':', '/' or spaces")
    if known_archs is not None and arch not in known_archs:
        raise _fail(path, "arch", f"unknown architecture {arch!r}; registered: {sorted(known_archs)}")
    thr = data.get("threshold", 0.5)
    if not isinstance(thr, (int, float)) or not 0.0 < float(thr) < 1.0:
        raise _fail(path, "threshold", "must be a number strictly between 0 and 1")
    ew = data.get("ensemble_weight", 0.0)
    if not isinstance(ew, (int, float)) or float(ew) < 0:
        raise _fail(path, "ensemble_weight", "must be a non-negative number")
    explain = data.get("explain")
    layer = None
    if explain is not None:
        if not isinstance(explain, dict) or not isinstance(explain.get("target_layer"), str):
            raise _fail(path, "explain", "must be a mapping with a 'target_layer' string")
        layer = explain["target_layer"]
    card = data.get("card") or {}
    if not isinstance(card, dict):
        raise _fail(path, "card", "must be a mapping")
    _check_keys(path, "card", card, {"title", "paper", "paper_url", "code", "licence", "training_data", "notes"})
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise _fail(path, "options", "must be a mapping")
    weights = _parse_weights(path, "weights", data["weights"]) if data.get("weights") is not None else None
    backbone = _parse_weights(path, "backbone", data["backbone"]) if data.get("backbone") is not None else None
    return DetectorSpec(
        id=det_id, variant=variant, arch=arch, weights=weights, backbone=backbone,
        preprocess=_parse_preprocess(path, data["preprocess"]), threshold=float(thr), ensemble_weight=float(ew),
        default=bool(data.get("default", False)), explain_layer=layer, options=dict(options),
        card=ModelCard(**{k: str(v) for k, v in card.items()}), config_path=str(path),
    )
