"""Deepfake Lens core library (no streamlit anywhere below this package).

Example:
    >>> from core import list_detectors, create_detector, load_image
    >>> det = create_detector("NPR", weights="NPR.pth")
    >>> det.predict(load_image("photo.jpg")).p_fake
"""
from core.errors import (BadImage, ConfigError, DeepfakeLensError, DownloadError, UnknownDetector, WeightsCorrupt,
                         WeightsError, WeightsRefused, WeightsUnavailable)
from core.explain import Explanation
from core.io import load_image
from core.registry import add_config_dir, create_detector, get_spec, list_detectors, list_specs, register_arch
from core.results import DetectionResult, FaceResult

__all__ = [
    "BadImage", "ConfigError", "DeepfakeLensError", "DownloadError", "UnknownDetector", "WeightsCorrupt",
    "WeightsError", "WeightsRefused", "WeightsUnavailable", "Explanation", "load_image", "add_config_dir", "create_detector",
    "get_spec", "list_detectors", "list_specs", "register_arch", "DetectionResult", "FaceResult",
]
