"""The one detector status table of the app: Home shows the variant in use per detector, Models every variant.

Each row says whether the variant can run here and, when it cannot, where its weights come from, how large they
are and under which licence — the facts an analyst needs before fetching 1.7 GB.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pandas as pd

from core.models import weights as W
from core.models.registry import list_detectors, list_specs
from core.models.selection import size_text
from core.models.specs import DetectorSpec, WeightSource
from ui.models import availability, variant_choice


def source_name(src: WeightSource) -> str:
    """A short name for where a checkpoint comes from (the host, the Hub repository, the bundle)."""
    if src.type == "url":
        return urlsplit(src.url or "").hostname or "a URL"
    if src.type == "hf":
        return f"Hugging Face {src.repo_id}"
    if src.type == "gdrive":
        return "Google Drive"
    if src.type == "bundle":
        return "Truebees bundle"
    return "a local file"


def _weights_text(spec: DetectorSpec) -> str:
    """'weights from media.githubusercontent.com (5.2 kB); backbone from Hugging Face laion/… (~1.7 GB)' per part."""
    out = []
    for part, ws in W.parts(spec):
        where = sorted({source_name(s) for s in ws.sources if s.type != "local"}) or ["your own file"]
        out.append(f"{part} from {' or '.join(where)} ({size_text(ws)})")
    return "; ".join(out) or "none needed"


def _licence(spec: DetectorSpec) -> str:
    """The weights' licence (the YAML's ``weights.licence``), else the card's."""
    ws = spec.weights
    return (ws.licence if ws is not None and ws.licence else spec.card.licence) or "not stated"


def status_table(*, every_variant: bool = False) -> pd.DataFrame:
    """One row per detector (the variant in use) or, with ``every_variant``, per variant.

    Columns: detector, variant, in use (``every_variant`` only), status (installed | weights not installed |
    partial (… missing) | corrupt), weights (size and source of each checkpoint), licence, training data.
    """
    rows = []
    for det_id in list_detectors():
        in_use = availability(variant_choice(det_id)).spec.key
        for spec in list_specs(det_id):
            if not every_variant and spec.key != in_use:
                continue
            av = availability(spec.key)
            rows.append({"detector": det_id, "variant": spec.variant,
                         **({"in use": spec.key == in_use} if every_variant else {}),
                         "status": av.state, "weights": _weights_text(spec), "licence": _licence(spec),
                         "training data": spec.card.training_data})
    return pd.DataFrame(rows)


__all__ = ["source_name", "status_table"]
