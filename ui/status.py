"""The one detector status table of the app: Home shows the variant in use per detector, Models every variant."""
from __future__ import annotations

import pandas as pd

from core.models import weights as W
from core.models.registry import list_detectors, list_specs
from ui.models import availability, variant_choice


def _checkpoints(spec) -> str:  # noqa: ANN001 - DetectorSpec
    """'weights installed (sha256 1c9c9f48…); backbone weights not installed' for each part."""
    out = []
    for part, ws in W.parts(spec):
        st_ = W.status(spec, part)
        out.append(f"{part} {ws.file}: {st_.state}" + (f" (sha256 {st_.sha256[:12]}…)" if st_.sha256 else ""))
    return "; ".join(out) or "none needed"


def status_table(*, every_variant: bool = False) -> pd.DataFrame:
    """One row per detector (the variant chosen in the sidebar) or, with ``every_variant``, per variant.

    Columns: detector, variant, in use (``every_variant`` only), status (installed | weights not installed | corrupt), checkpoints,
    licence, training data.
    """
    rows = []
    for det_id in list_detectors():
        in_use = availability(variant_choice(det_id)).spec.key
        for spec in list_specs(det_id):
            if not every_variant and spec.key != in_use:
                continue
            av = availability(spec.key)
            rows.append({"detector": det_id, "variant": spec.variant,
                         **({"in use": spec.key == in_use} if every_variant else {}), "status": av.state, "checkpoints": _checkpoints(spec), "licence": spec.card.licence,
                         "training data": spec.card.training_data})
    return pd.DataFrame(rows)
