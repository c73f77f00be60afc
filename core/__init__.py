"""Deepfake Lens core library (no streamlit anywhere below this package).

The public API is imported lazily: ``import core`` (or ``import core.evaluation.metrics``) loads no torch; the
first use of ``core.create_detector`` imports the models package.

Example:
    >>> from core import list_detectors, create_detector, load_image
    >>> det = create_detector("NPR", weights="NPR.pth")
    >>> det.predict(load_image("photo.jpg")).p_fake
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name → module that defines it
_EXPORTS = {
    **dict.fromkeys(["BadImage", "ConfigError", "DeepfakeLensError", "DownloadError", "UnknownDetector",
                     "WeightsCorrupt", "WeightsError", "WeightsRefused", "WeightsUnavailable"], "core.errors"),
    "load_image": "core.io",
    "Explanation": "core.models.explain",
    "create_detector": "core.models.factory",
    **dict.fromkeys(["add_config_dir", "get_spec", "list_detectors", "list_specs", "register_arch"],
                    "core.models.registry"),
    **dict.fromkeys(["DetectionResult", "FaceResult"], "core.results"),
    **dict.fromkeys(["Assessment", "assess"], "core.verdict.assessment"),
    **dict.fromkeys(["Profile", "load_profile"], "core.verdict.calibration"),
    "ProfileError": "core.errors",
    "ensemble": "core.verdict.ensemble",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value            # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs only; at run time the names load on first use
    from core.errors import (BadImage, ConfigError, DeepfakeLensError, DownloadError, UnknownDetector,  # noqa: F401
                             WeightsCorrupt, WeightsError, WeightsRefused, WeightsUnavailable)
    from core.io import load_image  # noqa: F401
    from core.models.explain import Explanation  # noqa: F401
    from core.models.factory import create_detector  # noqa: F401
    from core.models.registry import add_config_dir, get_spec, list_detectors, list_specs, register_arch  # noqa: F401
    from core.results import DetectionResult, FaceResult  # noqa: F401
    from core.errors import ProfileError  # noqa: F401
    from core.verdict.assessment import Assessment, assess  # noqa: F401
    from core.verdict.calibration import Profile, load_profile  # noqa: F401
    from core.verdict.ensemble import ensemble  # noqa: F401
