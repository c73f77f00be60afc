"""Models page helpers: status table and imports from uploads or server paths (uploads go through a temp file)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from core.models import install
from core.models import weights as W
from core.models.registry import list_specs
from core.models.specs import DetectorSpec


def status_frame() -> pd.DataFrame:
    """Every checkpoint of every variant with its state, sha256 and licence."""
    rows = []
    for spec in list_specs():
        for part, ws in W.parts(spec):
            st_ = W.status(spec, part)
            rows.append({"detector": spec.id, "variant": spec.variant, "part": part, "file": ws.file,
                         "status": "installed" if st_.state == "installed" else (
                             "corrupt" if st_.state == "corrupt" else "weights not installed"),
                         "sha256": (st_.sha256 or "")[:16], "licence": ws.licence or spec.card.licence})
    return pd.DataFrame(rows)


def import_upload(upload, server_path: str, spec: DetectorSpec | None, part: str):
    """Import an uploaded file or a server path; ``spec`` None means the Truebees bundle.

    Returns:
        (reports, notes) like :func:`core.models.weights.import_bundle` (a single import gives one report, no notes).
    """
    with tempfile.TemporaryDirectory(prefix="dl-import-") as tmp:
        if upload is not None:
            # the uploaded name is only used for its suffix: never as a path
            src = Path(tmp) / ("upload" + "".join(Path(upload.name).suffixes[-1:]))
            src.write_bytes(upload.getvalue())
            source = f"upload {upload.name}"
        else:
            src = Path(server_path).expanduser()
            source = str(src)
        if spec is None:
            return install.import_bundle(src)
        return [install.import_file(src, spec, part=part, source=source)], []
