"""Model status table for the Home and Models pages."""
from __future__ import annotations

import pandas as pd

from core import weights as W
from core.registry import list_specs


def status_table() -> pd.DataFrame:
    """One row per detector variant: id, variant, weights state, training data, licence."""
    rows = []
    for spec in list_specs():
        states = [W.status(spec, part).state for part in ("weights", "backbone")
                  if (spec.weights if part == "weights" else spec.backbone) is not None]
        state = "installed" if all(s == "installed" for s in states) else (
            "corrupt" if "corrupt" in states else "weights not installed")
        rows.append({"detector": spec.id, "variant": spec.variant, "status": state,
                     "training data": spec.card.training_data, "licence": spec.card.licence})
    return pd.DataFrame(rows)
