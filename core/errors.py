"""The error types the whole app speaks.

Every failure a user can cause (a bad file, missing or refused weights) is one of these, carries a human
sentence, and is shown by the UI/CLI as that sentence, never as a traceback.
"""
from __future__ import annotations

from collections.abc import Sequence


class DeepfakeLensError(Exception):
    """Base class: ``str(err)`` is a complete sentence meant for the user."""


class BadInput(DeepfakeLensError, ValueError):
    """An input file could not be read; ``str(err)`` is ``"<path>: <why>"``.

    Args:
        path: what the user gave us (file name or ``"<bytes>"``).
        why: a human sentence saying what is wrong.
    """

    def __init__(self, path: str, why: str) -> None:
        self.path = str(path)
        self.why = why
        super().__init__(f"{self.path}: {why}")


class BadImage(BadInput):
    """An input could not be turned into an RGB image (empty, not an image, truncated, over a limit)."""


class BadVideo(BadInput):
    """A video could not be read at all (empty, not a video, no video stream, over a limit)."""


class ConfigError(DeepfakeLensError, ValueError):
    """A detector YAML file is invalid; the message names the file and the field."""


class ProfileError(DeepfakeLensError, ValueError):
    """A calibration profile cannot be fitted, read or used; the message says why in one sentence."""


class UnknownDetector(DeepfakeLensError, KeyError):
    """No detector (or variant) with that id is registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown detector"


class WeightsError(DeepfakeLensError, RuntimeError):
    """Base class of every checkpoint problem; names the detector and the file."""

    def __init__(self, detector: str, message: str, *, path: str | None = None, how_to_fix: str = "") -> None:
        self.detector = detector
        self.path = path
        self.how_to_fix = how_to_fix
        text = f"{detector}: {message}"
        if how_to_fix:
            text += f" {how_to_fix}"
        super().__init__(text)


class WeightsUnavailable(WeightsError):
    """No checkpoint could be found or fetched.

    Attributes:
        tried: every place looked at, in order, each as ``"what: why it failed"``.
        how_to_fix: a sentence telling the user where to get the file and how to import it.
    """

    def __init__(self, detector: str, tried: Sequence[str] = (), how_to_fix: str = "", *,
                 what: str = "weights not installed") -> None:
        self.tried = list(tried)
        msg = what + (" (tried: " + "; ".join(self.tried) + ")." if self.tried else ".")
        super().__init__(detector, msg, how_to_fix=how_to_fix)


class WeightsCorrupt(WeightsError):
    """A checkpoint exists but is unusable: checksum mismatch, truncated, wrong architecture."""


class WeightsRefused(WeightsError):
    """A checkpoint asks to execute code when loaded (a malicious or non-tensor pickle) and was refused."""


class DownloadError(WeightsError):
    """A download failed (offline, HTTP error, interrupted); nothing was left in the weights folder."""


class ScoreError(DeepfakeLensError, ValueError):
    """A detector produced a non-finite score (NaN or infinite logit); no label is given for it."""
