"""Model status table for the Home page: one row per detector (the variant chosen in the sidebar)."""
from __future__ import annotations

import pandas as pd

from core.models.registry import list_detectors, list_specs
from ui.models import availability, variant_choice


def status_table() -> pd.DataFrame:
    """Detector, variant in use, its status, the other variants' status, licence and training data."""
    rows = []
    for det_id in list_detectors():
        key = variant_choice(det_id)
        av = availability(key)
        others = [f"{s.variant}: {availability(s.key).state}" for s in list_specs(det_id) if s.key != av.spec.key]
        rows.append({"detector": det_id, "variant": av.spec.variant, "status": av.state,
                     "other variants": "; ".join(others) or "—", "licence": av.spec.card.licence,
                     "training data": av.spec.card.training_data})
    return pd.DataFrame(rows)
