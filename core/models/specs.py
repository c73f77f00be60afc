"""Declarative detector specs: the YAML files under configs/detectors/ parsed into frozen dataclasses.

A detector is data (this module) plus a registered builder (core/models/registry.py). One YAML per detector id holds
its variants: every variant is the file's top-level mapping deep-merged with the variant's own mapping (mappings
merge key by key, lists and scalars replace, a key set to null is dropped), so a variant states only what differs::

    id: NPR
    arch: npr_resnet50
    weights: {file: NPR.pth, ...}         # base for every variant
    variants:
      original: {default: true}
      truefake:
        weights: {file: best.pt, git_blob_sha1: null, sources: [{type: bundle, member: "NPR/**/best.pt"}]}

A file without ``variants:`` is one variant named by its top-level ``variant:`` key. Validation is strict and every
error names the file, the variant and the field, so a typo fails at scan time, not at the first click. Pure Python:
nothing here imports torch.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from core.errors import ConfigError

CONTAINERS = ("raw", "model", "model_state_dict", "state_dict", "checkpoint")
SOURCE_TYPES = ("local", "hf", "url", "gdrive", "bundle")
PREPROCESS_MODES = ("full", "resize_crop", "face", "center_crop", "ten_crop")  # *_crop: native resolution (RINE)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONTENTS = ("whole_image", "faces")
# Known weaknesses a model card may declare; the ensemble matches them against the image at hand.
WEAKNESSES = ("resize", "jpeg", "small", "crop", "screenshot", "faces_only")
_HEX = set("0123456789abcdef")


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
    # bundle: glob of the member inside the Truebees bundle, e.g. "NPR/**/best.pt";
    # url: path of the checkpoint inside the zip archive served at ``url`` (None = the URL is the checkpoint)
    member: str | None = None
    archive_md5: str | None = None   # url with member: md5 of the whole zip, as upstream publishes it

    def describe(self) -> str:
        """Short human description used in error messages and the Models page."""
        if self.type == "local":
            return f"local file {self.path}"
        if self.type == "hf":
            rev = f"@{self.revision}" if self.revision else ""
            return f"Hugging Face Hub {self.repo_id}{rev} / {self.filename}"
        if self.type == "url":
            return f"URL {self.url}" + (f" (member {self.member} of the zip)" if self.member else "")
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
    """How a PIL image becomes the network input (see core/models/preprocess.py)."""

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
class Coverage:
    """The machine-readable part of the model card: what the detector was trained on and where it is weak.

    The ensemble reads it to drop or down-weight a detector for a given image (always with the reason shown).
    """

    content: str = "whole_image"             # whole_image | faces (what the detector looks at)
    generators: tuple[str, ...] = ()         # generators of the training fakes
    trained_until: int | None = None         # year of the newest training generator
    weaknesses: tuple[str, ...] = ()         # subset of WEAKNESSES
    min_side: int | None = None              # smallest image side (px) on which the detector is meaningful


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
    coverage: Coverage = Coverage()
    order: int | None = None                 # display position of the id (lower first; None = after, by name)

    @property
    def key(self) -> str:
        """``ID:variant``, unique across the registry."""
        return f"{self.id}:{self.variant}"


# --------------------------------------------------------------------------------------------- parsing

_TOP_KEYS = {"id", "variant", "arch", "weights", "backbone", "preprocess", "threshold", "ensemble_weight", "default",
             "explain", "options", "card", "coverage", "order"}
_SOURCE_KEYS = {"local": {"path"}, "hf": {"repo_id", "filename", "revision"}, "url": {"url", "member", "archive_md5"},
                "gdrive": {"id"}, "bundle": {"member"}}
_SOURCE_REQUIRED = {"local": ("path",), "hf": ("repo_id", "filename"), "url": ("url",), "gdrive": ("id",),
                    "bundle": ("member",)}


def _fail(where: str, field_name: str, why: str) -> ConfigError:
    """``where`` is the file, optionally followed by ``: variant 'x'``."""
    return ConfigError(f"{where}: field '{field_name}': {why}")


def _check_keys(where: str, field_name: str, data: Mapping, allowed: set[str]) -> None:
    extra = set(data) - allowed
    if extra:
        raise _fail(where, field_name, f"unknown key(s) {sorted(map(str, extra))}; allowed: {sorted(allowed)}")


def _is_hex(value: Any, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= _HEX


def _positive_int(where: str, field_name: str, value: Any) -> int | None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise _fail(where, field_name, "must be null or a positive integer")
    return value


def _triple(where: str, field_name: str, value: Any) -> tuple[float, float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        raise _fail(where, field_name, "must be a list of three numbers")
    return (float(value[0]), float(value[1]), float(value[2]))


def _parse_source(where: str, at: str, data: Any) -> WeightSource:
    if not isinstance(data, dict) or "type" not in data:
        raise _fail(where, at, "each source must be a mapping with a 'type'")
    kind = data["type"]
    if kind not in SOURCE_TYPES:
        raise _fail(where, f"{at}.type", f"{kind!r} is not one of {SOURCE_TYPES}")
    _check_keys(where, at, data, {"type"} | _SOURCE_KEYS[kind])
    for r in _SOURCE_REQUIRED[kind]:
        if not isinstance(data.get(r), str) or not data[r]:
            raise _fail(where, f"{at}.{r}", f"required for a {kind} source")
    if kind == "url":
        if not str(data["url"]).startswith(("https://", "http://")):
            raise _fail(where, f"{at}.url", "must start with https:// or http://")
        member = data.get("member")
        if member is not None and (not isinstance(member, str) or not member or member.startswith(("/", "\\"))
                                   or ".." in member.replace("\\", "/").split("/")):
            raise _fail(where, f"{at}.member", "must be a relative path inside the zip archive, without '..'")
        md5 = data.get("archive_md5")
        if md5 is not None and (not _is_hex(md5, 32) or member is None):
            raise _fail(where, f"{at}.archive_md5", "must be 32 lowercase hex digits, with a 'member'")
    return WeightSource(**{k: (str(v) if v is not None else None) for k, v in data.items()})


def _parse_weights(where: str, at: str, data: Any) -> WeightsSpec:
    if not isinstance(data, dict):
        raise _fail(where, at, "must be a mapping")
    _check_keys(where, at, data, {"file", "container", "sha256", "size", "git_blob_sha1", "sources", "licence", "note",
                                  "shared_with"})
    if not isinstance(data.get("file"), str) or not data["file"] or "/" in data["file"] or "\\" in data["file"]:
        raise _fail(where, f"{at}.file", "required: a plain file name")
    container = data.get("container", "raw")
    if container not in CONTAINERS:
        raise _fail(where, f"{at}.container", f"{container!r} is not one of {CONTAINERS}")
    sha = data.get("sha256")
    if sha is not None and not _is_hex(sha, 64):
        raise _fail(where, f"{at}.sha256", "must be 64 lowercase hex digits or null")
    size = _positive_int(where, f"{at}.size", data.get("size"))
    sources = data.get("sources") or []
    if not isinstance(sources, list):
        raise _fail(where, f"{at}.sources", "must be a list")
    return WeightsSpec(
        file=data["file"], container=container, sha256=sha, size=size,
        git_blob_sha1=data.get("git_blob_sha1"),
        sources=tuple(_parse_source(where, f"{at}.sources[{i}]", s) for i, s in enumerate(sources)),
        licence=data.get("licence"), note=data.get("note"), shared_with=data.get("shared_with"),
    )


def _parse_resize(where: str, resize: Any) -> int | tuple[int, int] | None:
    if isinstance(resize, list):
        if len(resize) != 2 or not all(isinstance(v, int) and v > 0 for v in resize):
            raise _fail(where, "preprocess.resize", "a list must be [width, height] of positive integers")
        return (resize[0], resize[1])
    if resize is not None and (not isinstance(resize, int) or resize <= 0):
        raise _fail(where, "preprocess.resize", "must be null, a positive integer (shorter side) or [w, h]")
    return resize


def _parse_preprocess(where: str, data: Any) -> PreprocessCfg:
    if not isinstance(data, dict):
        raise _fail(where, "preprocess", "must be a mapping")
    _check_keys(where, "preprocess", data, {"mode", "resize", "interpolation", "crop", "mean", "std", "large_crop",
                                            "even_crop", "stats"})
    mode = data.get("mode", "full")
    if mode not in PREPROCESS_MODES:
        raise _fail(where, "preprocess.mode", f"{mode!r} is not one of {PREPROCESS_MODES}")
    interp = data.get("interpolation", "bilinear")
    if interp not in INTERPOLATIONS:
        raise _fail(where, "preprocess.interpolation", f"{interp!r} is not one of {INTERPOLATIONS}")
    resize = _parse_resize(where, data.get("resize"))
    crop = _positive_int(where, "preprocess.crop", data.get("crop"))
    if mode == "resize_crop" and (resize is None or crop is None):
        raise _fail(where, "preprocess", "resize_crop needs both 'resize' and 'crop'")
    if mode in ("center_crop", "ten_crop") and (crop is None or resize is not None):
        raise _fail(where, "preprocess", f"{mode} needs 'crop' and no 'resize' (it never resamples)")
    large = _positive_int(where, "preprocess.large_crop", data.get("large_crop"))
    stats = data.get("stats")
    if stats is not None and stats not in ("imagenet", "clip"):
        raise _fail(where, "preprocess.stats", "must be 'imagenet' or 'clip'")
    mean = CLIP_MEAN if stats == "clip" else IMAGENET_MEAN
    std = CLIP_STD if stats == "clip" else IMAGENET_STD
    if "mean" in data:
        mean = _triple(where, "preprocess.mean", data["mean"])
    if "std" in data:
        std = _triple(where, "preprocess.std", data["std"])
    if any(s <= 0 for s in std):
        raise _fail(where, "preprocess.std", "must be positive")
    return PreprocessCfg(mode=mode, resize=resize, interpolation=interp, crop=crop, mean=mean, std=std,
                         large_crop=large, even_crop=bool(data.get("even_crop", False)))


def _str_list(where: str, at: str, value: Any, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(where, at, "must be a list of non-empty strings")
    if allowed is not None and set(value) - set(allowed):
        raise _fail(where, at, f"{sorted(set(value) - set(allowed))} not among {allowed}")
    return tuple(value)


def _parse_coverage(where: str, data: Any) -> Coverage:
    if not isinstance(data, dict):
        raise _fail(where, "coverage", "must be a mapping")
    _check_keys(where, "coverage", data, set(Coverage.__dataclass_fields__))
    content = data.get("content", "whole_image")
    if content not in CONTENTS:
        raise _fail(where, "coverage.content", f"{content!r} is not one of {CONTENTS}")
    year = data.get("trained_until")
    if year is not None and (not isinstance(year, int) or isinstance(year, bool) or not 1990 <= year <= 2100):
        raise _fail(where, "coverage.trained_until", "must be a year (e.g. 2024) or null")
    return Coverage(content=content,
                    generators=_str_list(where, "coverage.generators", data.get("generators", [])),
                    trained_until=year,
                    weaknesses=_str_list(where, "coverage.weaknesses", data.get("weaknesses", []), WEAKNESSES),
                    min_side=_positive_int(where, "coverage.min_side", data.get("min_side")))


def _parse_card(where: str, card: Any) -> ModelCard:
    if not isinstance(card, dict):
        raise _fail(where, "card", "must be a mapping")
    _check_keys(where, "card", card, set(ModelCard.__dataclass_fields__))
    return ModelCard(**{k: str(v) for k, v in card.items()})


def _name(where: str, field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or ":" in value or "/" in value or " " in value:
        raise _fail(where, field_name, "must be a non-empty string without ':', '/' or spaces")
    return value


def parse_spec(data: Any, path: Path | str = "<memory>") -> DetectorSpec:
    """Validate one variant's mapping (a file without ``variants:``, or one merged variant) into a spec.

    Args:
        data: the parsed mapping; it must name its ``variant``.
        path: the file it came from (used in error messages and kept as ``config_path``).

    Returns:
        The frozen spec. The architecture key is not checked here (the registry knows the builders).

    Raises:
        ConfigError: naming the file, the variant and the offending field.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must hold a YAML mapping")
    where = str(path)
    for req in ("id", "variant"):
        if req not in data:
            raise _fail(where, req, "required")
    det_id, variant = _name(where, "id", data["id"]), _name(where, "variant", data["variant"])
    where = f"{path}: variant '{variant}'"
    _check_keys(where, "<top>", data, _TOP_KEYS)
    for req in ("arch", "preprocess"):
        if req not in data:
            raise _fail(where, req, "required")
    arch = _name(where, "arch", data["arch"])
    thr = data.get("threshold", 0.5)
    if not isinstance(thr, (int, float)) or not 0.0 < float(thr) < 1.0:
        raise _fail(where, "threshold", "must be a number strictly between 0 and 1")
    ew = data.get("ensemble_weight", 0.0)
    if not isinstance(ew, (int, float)) or float(ew) < 0:
        raise _fail(where, "ensemble_weight", "must be a non-negative number")
    order = data.get("order")
    if order is not None and (not isinstance(order, int) or isinstance(order, bool)):
        raise _fail(where, "order", "must be an integer or null")
    explain = data.get("explain")
    if explain is not None and (not isinstance(explain, dict) or not isinstance(explain.get("target_layer"), str)):
        raise _fail(where, "explain", "must be a mapping with a 'target_layer' string")
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise _fail(where, "options", "must be a mapping")
    weights = _parse_weights(where, "weights", data["weights"]) if data.get("weights") is not None else None
    backbone = _parse_weights(where, "backbone", data["backbone"]) if data.get("backbone") is not None else None
    return DetectorSpec(
        id=det_id, variant=variant, arch=arch, weights=weights, backbone=backbone,
        preprocess=_parse_preprocess(where, data["preprocess"]), threshold=float(thr), ensemble_weight=float(ew),
        default=bool(data.get("default", False)), explain_layer=explain["target_layer"] if explain else None,
        options=dict(options), card=_parse_card(where, data.get("card") or {}), config_path=str(path),
        coverage=_parse_coverage(where, data.get("coverage") or {}), order=order,
    )


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge for variant inheritance: mappings merge key by key, anything else replaces, None drops the key.

    Example:
        >>> merge({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"y": None, "z": 3}, "b": [2]})
        {'a': {'x': 1, 'z': 3}, 'b': [2]}
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_document(data: Any, path: Path | str = "<memory>") -> list[DetectorSpec]:
    """Every variant a YAML document declares (a single-variant document gives a list of one).

    Raises:
        ConfigError: naming the file, the variant and the field.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the file must hold a YAML mapping")
    if "variants" not in data:
        return [parse_spec(data, path)]
    variants = data["variants"]
    if not isinstance(variants, dict) or not variants:
        raise _fail(str(path), "variants", "must be a non-empty mapping of variant name → what differs")
    for key in ("variant", "default"):
        if key in data:
            raise _fail(str(path), key, "not allowed beside 'variants:' (name each variant by its key there, and "
                                        "mark the default variant inside it)")
    base = {k: v for k, v in data.items() if k != "variants"}
    specs = []
    for name, override in variants.items():
        where = f"{path}: variant {_name(str(path), 'variants', name)!r}"
        override = {} if override is None else override
        if not isinstance(override, dict):
            raise ConfigError(f"{where}: must be a mapping of what differs from the top level (or empty)")
        for key in ("id", "variant", "variants"):
            if key in override:
                raise _fail(where, key, "cannot be set inside a variant")
        specs.append(parse_spec({**merge(base, override), "variant": name}, path))
    return specs


def load_spec_file(path: str | Path) -> list[DetectorSpec]:
    """Read and validate one detector YAML (no torch, no registry): every variant it declares.

    Raises:
        ConfigError: unreadable file, invalid YAML, or a bad field (naming file, variant and field).
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot be read ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None
    return parse_document(data, p)


def spec_files(dirs: Iterable[str | Path]) -> list[Path]:
    """The ``*.yaml`` / ``*.yml`` files of these folders (missing folders are skipped), sorted."""
    found = {f for d in map(Path, dirs) if d.is_dir() for f in list(d.glob("*.yaml")) + list(d.glob("*.yml"))}
    return sorted(found)


def scan_specs(dirs: Iterable[str | Path]) -> dict[str, DetectorSpec]:
    """Parse every detector YAML of these folders → ``{"ID:variant": spec}``.

    Checks what needs all files at once: a variant declared twice, or an id with more than one default variant.

    Raises:
        ConfigError: naming the file(s) and the field.
    """
    specs: dict[str, DetectorSpec] = {}
    for f in spec_files(dirs):
        for spec in load_spec_file(f):
            if spec.key in specs:
                raise _fail(f"{f}: variant '{spec.variant}'", "id", f"duplicate detector {spec.key!r} "
                                                                    f"(also in {specs[spec.key].config_path})")
            specs[spec.key] = spec
    by_id: dict[str, list[DetectorSpec]] = {}
    for s in specs.values():
        by_id.setdefault(s.id, []).append(s)
    for det_id, group in by_id.items():
        defaults = [s for s in group if s.default]
        if len(defaults) > 1:
            raise _fail(f"{defaults[1].config_path}: variant '{defaults[1].variant}'", "default",
                        f"{det_id} has more than one default variant ({[s.variant for s in defaults]})")
    return specs
