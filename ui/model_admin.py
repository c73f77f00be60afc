"""Models page helpers: imports from uploads or server paths (uploads go through a temp file)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from core.models import install
from core.models.specs import DetectorSpec


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
