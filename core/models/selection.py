"""Which detector variants can run here: one answer for the CLI (``list``, ``report``), the app and reports.

A variant is *installed* when every checkpoint it needs (weights, and the backbone for CLIP-D / P2G) is found and
verified by :func:`core.models.weights.status`; a variant that needs no checkpoint is always installed.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.models import weights as W
from core.models.registry import list_detectors, list_specs
from core.models.specs import DetectorSpec


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


__all__ = ["VariantState", "variant_state", "installed_variant", "installed_variants"]
