"""Models page helpers: imports from uploads or from a path inside the server's data folder.

Server paths exist only when ``DEEPFAKE_LENS_DATA_ROOT`` is set (:func:`core.settings.data_root`), and every path
is confined to that folder after resolving ``..`` and symbolic links, so the page can never read elsewhere on the
server. Uploads go through a private temporary file; their names are used for messages only, never as paths.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from core import archive, settings
from core.errors import DeepfakeLensError
from core.models import install
from core.models.specs import DetectorSpec


class PathRefused(DeepfakeLensError):
    """A server path the page may not read (no data folder configured, outside it, or not there)."""


def data_root() -> Path | None:
    """The one server folder the page may read, or None when server paths are off."""
    return settings.data_root()


def confined_path(text: str) -> Path:
    """Resolve a user-typed server path (relative ones start at the data folder) and keep it inside that folder.

    Raises:
        PathRefused: one sentence; a path outside the folder is refused before anything is checked about it.
    """
    root = data_root()
    if root is None:
        raise PathRefused("Server paths are off: set DEEPFAKE_LENS_DATA_ROOT to the folder the app may read.")
    try:
        base = root.expanduser().resolve(strict=True)
        raw = Path(text.strip()).expanduser()
        real = (raw if raw.is_absolute() else base / raw).resolve()
    except (OSError, RuntimeError, ValueError):
        raise PathRefused("That path cannot be used: give a file or folder inside the data folder.") from None
    if real != base and base not in real.parents:
        raise PathRefused(f"That path is outside the data folder this server may read ({base}).")
    if not real.exists():
        raise PathRefused(f"{archive.printable(text.strip())}: not found in the data folder.")
    return real


def _stage_upload(upload, tmp: str) -> tuple[Path, str]:  # noqa: ANN001 - a Streamlit UploadedFile
    """Write an upload to a private temp file named only by its suffix; return it and the name to show."""
    name = archive.printable(Path(str(upload.name)).name) or "upload"
    src = Path(tmp) / ("upload" + "".join(Path(name).suffixes[-1:])[:16])
    src.write_bytes(upload.getvalue())
    return src, name


def import_upload(upload, server_path: str, spec: DetectorSpec | None, part: str, *,  # noqa: ANN001
                  custom_name: str | None = None) -> tuple[list[install.ImportReport], list[str]]:
    """Import an uploaded file, or a path inside the data folder; ``spec`` None means the Truebees bundle.

    A ``custom`` variant is imported through :func:`core.models.install.import_custom` with ``custom_name``.

    Returns:
        (reports, notes) like :func:`core.models.install.import_bundle` (a single import gives one report, no notes).

    Raises:
        PathRefused, or the import's own errors (one sentence each).
    """
    with tempfile.TemporaryDirectory(prefix="dl-import-") as tmp:
        if upload is not None:
            src, shown = _stage_upload(upload, tmp)
            source = f"upload {shown}"
        else:
            src = confined_path(server_path)
            shown = source = str(src)
        if spec is None:
            return install.import_bundle(src, shown=shown)
        if spec.variant == install.CUSTOM and part == "weights":
            name = custom_name.strip() if custom_name and custom_name.strip() else None
            return [install.import_custom(src, spec.id, name=name, shown=shown)], []
        return [install.import_file(src, spec, part=part, source=source, shown=shown)], []


__all__ = ["PathRefused", "confined_path", "data_root", "import_upload"]
