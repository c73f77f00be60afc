"""Which detector variants can run here, and which one each command and new app session starts on: one answer for
the CLI (``list``, ``report``, ``evaluate``), the app and reports.

A variant is *installed* when every checkpoint it needs (weights, and the backbone for CLIP-D / P2G) is found and
verified by :func:`core.models.weights.status`; a variant that needs no checkpoint is always installed. The variant
used for a bare detector id is :func:`default_variant`: the user's remembered choice (:mod:`core.preferences`) when
it is installed, else the preferred installed one, else the remembered or registry default.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from core import preferences
from core.errors import UnknownDetector
from core.models import weights as W
from core.models.registry import get_spec, list_detectors, list_specs
from core.models.specs import DetectorSpec, WeightSource, WeightsSpec


@dataclass(frozen=True)
class VariantState:
    """Installation state of one detector variant, summarised over its checkpoints.

    Attributes:
        spec: the variant.
        state: ``installed`` (every part), ``corrupt`` (a part failed its check), ``missing`` (no part found) or
            ``partial`` (some parts installed, e.g. the CLIP backbone without the head).
        parts: the status of each checkpoint, in :func:`core.models.weights.parts` order.
    """

    spec: DetectorSpec
    state: str
    parts: tuple[W.WeightsStatus, ...]

    @property
    def installed(self) -> bool:
        """True when the variant can be built from installed checkpoints."""
        return self.state == "installed"

    def problems(self) -> str:
        """``part state`` for each checkpoint that is not installed, comma-separated (empty when installed)."""
        return ", ".join(f"{p.part} {p.state}" for p in self.parts if p.state != "installed")


def variant_state(spec: DetectorSpec, *, verify: bool = False) -> VariantState:
    """Summarise the checkpoints of one variant (``verify`` re-hashes every file)."""
    parts = tuple(W.status(spec, part, verify=verify) for part, _ in W.parts(spec))
    states = [p.state for p in parts]
    if all(s == "installed" for s in states):
        state = "installed"                       # includes a variant with no checkpoint at all
    elif "corrupt" in states:
        state = "corrupt"
    elif all(s == "missing" for s in states):
        state = "missing"
    else:
        state = "partial"
    return VariantState(spec, state, parts)


def _preference(spec: DetectorSpec, rank: int) -> tuple[int, int, int]:
    # The registry lists the default variant first; "original" (the paper's own weights) comes next, then the rest;
    # the user's own "custom" file last, so a published checkpoint is always preferred when one is installed.
    return (0 if rank == 0 else 1, 0 if spec.variant == "original" else 2 if spec.variant == "custom" else 1, rank)


def installed_variant(detector_id: str) -> DetectorSpec | None:
    """The variant of ``detector_id`` to use by default: the preferred installed one, or None if none is installed.

    Preference: the registry's default variant (the original weights unless a YAML says otherwise), then
    ``original``, then the others in registry order, ``custom`` (the user's own file) last.
    """
    specs = list_specs(detector_id)
    ranked = sorted(range(len(specs)), key=lambda i: _preference(specs[i], i))
    for i in ranked:
        if variant_state(specs[i]).installed:
            return specs[i]
    return None


def installed_variants() -> list[DetectorSpec]:
    """One installed variant per detector id that has one, in display order (see :func:`installed_variant`).

    Example:
        >>> [s.key for s in installed_variants()]
        ['NPR:original', 'FACE:original']
    """
    found = (installed_variant(det_id) for det_id in list_detectors())
    return [spec for spec in found if spec is not None]


def default_variant(detector_id: str, remembered: Mapping[str, str] | None = None) -> DetectorSpec:
    """The variant a bare detector id means here (a new app session, ``--detectors ID``, a default report).

    Order: the remembered variant when it is installed; else the preferred installed variant
    (:func:`installed_variant`: the original when both are); else the remembered variant; else the registry's
    default. A remembered name that is no longer registered is ignored.

    Args:
        detector_id: a registered detector id.
        remembered: ``{id: variant}`` (default: :func:`core.preferences.load_variants`).

    Example:
        >>> default_variant("R50_TF").key          # only the Truebees weights are installed
        'R50_TF:truefake'
    """
    chosen = (preferences.load_variants() if remembered is None else remembered).get(detector_id)
    wanted = None
    if chosen:
        try:
            wanted = get_spec(detector_id, chosen)
        except UnknownDetector:
            wanted = None                          # a variant removed from the YAMLs since it was remembered
    if wanted is not None and variant_state(wanted).installed:
        return wanted
    return installed_variant(detector_id) or wanted or get_spec(detector_id)


def default_keys(*, installed_only: bool = False) -> list[str]:
    """``ID:variant`` of :func:`default_variant` for every detector id, in display order (only installed ones
    with ``installed_only``)."""
    remembered = preferences.load_variants()
    specs = [default_variant(d, remembered) for d in list_detectors()]
    return [s.key for s in specs if not installed_only or variant_state(s).installed]


def resolve_key(name: str) -> str:
    """``ID:variant`` for a name given by the user: ``ID:variant`` as given, a bare ``ID`` its
    :func:`default_variant`.

    Raises:
        UnknownDetector: the id or variant is not registered.
    """
    spec = get_spec(name)
    return spec.key if ":" in name else default_variant(spec.id).key


# --------------------------------------------------------------------------------------------- downloads

_APPROX = re.compile(r"(?:~|about |approx\.? )\s?\d[\d.,]*\s?[KMGT]B", re.IGNORECASE)


def size_text(ws: WeightsSpec) -> str:
    """The checkpoint's download size: the exact size the YAML pins, else the approximate size its note states
    (e.g. "~1.7 GB" for the CLIP-D backbone), else "size not published"."""
    if ws.size is not None:
        return f"{ws.size / 1e9:.2f} GB" if ws.size >= 1e9 else f"{ws.size / 1e6:.1f} MB" if ws.size >= 1e5 \
            else f"{ws.size / 1e3:.1f} kB"
    found = _APPROX.search(ws.note or "")
    return found.group(0) if found else "size not published"


def downloadable(ws: WeightsSpec) -> bool:
    """True when a checkpoint has a source this tool can fetch itself (URL, Hugging Face Hub, Google Drive)."""
    return any(s.type in ("url", "hf", "gdrive") for s in ws.sources)


@dataclass(frozen=True)
class DownloadItem:
    """One checkpoint that :func:`download_plan` would fetch."""

    spec: DetectorSpec
    part: str                 # weights | backbone
    file: str
    size: str                 # :func:`size_text`
    licence: str
    source: str               # the first downloadable source, described
    origin: WeightSource      # that source itself


def download_plan() -> list[DownloadItem]:
    """The checkpoints missing for every detector id that has no installed variant yet, in display order.

    For each such id the variant is its :func:`default_variant`; when that one cannot be downloaded (a bundle-only
    variant) the first downloadable variant is used. A backbone shared by several variants is listed once.
    """
    remembered = preferences.load_variants()
    items: list[DownloadItem] = []
    seen: set[tuple[str, str]] = set()
    for det_id in list_detectors():
        first = default_variant(det_id, remembered)
        candidates = [first] + [s for s in list_specs(det_id) if s.key != first.key]
        spec = next((s for s in candidates if W.parts(s) and all(downloadable(ws) for _, ws in W.parts(s))), None)
        if spec is None or variant_state(first).installed:
            continue
        for part, ws in W.parts(spec):
            where = str(W.installed_path(spec, part))      # a shared backbone has one path for every variant
            if where in seen or W.status(spec, part).state == "installed":
                continue
            seen.add(where)
            src = next(s for s in ws.sources if s.type in ("url", "hf", "gdrive"))
            items.append(DownloadItem(spec, part, ws.file, size_text(ws),
                                      ws.licence or spec.card.licence or "not stated", src.describe(), src))
    return items


__all__ = ["VariantState", "variant_state", "installed_variant", "installed_variants", "default_variant",
           "default_keys", "resolve_key", "size_text", "downloadable", "DownloadItem", "download_plan"]
