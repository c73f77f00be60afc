"""Versions of Python, of this tool and of the libraries whose behaviour the numbers depend on.

One package list, used by the case report (report.json) and by evaluation (metrics.json), so the two agree.
"""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from core import settings

LIBRARIES = ("deepfake-lens", "numpy", "pillow", "pandas", "torch", "torchvision", "open_clip_torch", "facenet-pytorch", "scikit-learn",
             "scikit-image", "c2pa-python", "ImageHash", "safetensors", "huggingface_hub")


def library_versions() -> dict[str, str]:
    """Python's and each library's version ("not installed" when absent).

    Example:
        >>> library_versions()["python"]
        '3.11.7'
    """
    out = {"python": platform.python_version()}
    for dist in LIBRARIES:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def tool_version() -> str:
    """Deepfake Lens's own version from pyproject.toml ("unknown" if it cannot be read)."""
    try:
        import tomllib
        return str(tomllib.loads(settings.PYPROJECT.read_text())["project"]["version"])
    except (ImportError, OSError, KeyError, ValueError):
        return "unknown"


def package_version(dist: str) -> str:
    """One installed distribution's version, or "?" when it is not installed."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"
