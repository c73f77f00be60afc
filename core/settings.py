"""Every environment knob and limit of Deepfake Lens, in one place.

Each setting is a function read at call time (not an import-time constant), so a value set in the environment
after ``import core`` — by a test, a server wrapper or a notebook — takes effect at once. Nothing here imports
anything of ours; every other module asks this one.

| variable | default | meaning |
|---|---|---|
| ``DEEPFAKE_LENS_WEIGHTS`` | ``~/.cache/deepfake-lens/weights`` | installed checkpoints |
| ``DEEPFAKE_LENS_CACHE`` | ``~/.cache/deepfake-lens/scores`` | evaluation score cache |
| ``DEEPFAKE_LENS_CONFIG_DIRS`` | (none) | extra folders of detector YAMLs (os.pathsep-separated) |
| ``DEEPFAKE_LENS_MAX_PIXELS`` | 100,000,000 | largest image accepted (checked from the header) |
| ``DEEPFAKE_LENS_MAX_BYTES`` | 200 MB | largest image file accepted |
| ``DEEPFAKE_LENS_MAX_FILES`` | 100,000 | files in one evaluation input |
| ``DEEPFAKE_LENS_MAX_ARCHIVE_BYTES`` | 8 GB | total uncompressed bytes of one archive |
| ``DEEPFAKE_LENS_MAX_RATIO`` | 100 | compression ratio per archive member above 1 MB |
| ``DEEPFAKE_LENS_MAX_CHECKPOINT_BYTES`` | 4 GB | largest checkpoint imported or downloaded |
| ``DEEPFAKE_LENS_CONNECT_TIMEOUT`` / ``_READ_TIMEOUT`` | 5 s / 30 s | download timeouts |
| ``DEEPFAKE_LENS_OFFLINE`` (or ``HF_HUB_OFFLINE``) | off | refuse every download at once |
| ``DEEPFAKE_LENS_MAX_VIDEO_BYTES`` | 2 GB | largest video file accepted |
| ``DEEPFAKE_LENS_MAX_VIDEO_SECONDS`` | 3 h | longest video accepted (header duration; decoding stops there too) |
| ``DEEPFAKE_LENS_MAX_VIDEO_PIXELS`` | 8,294,400 (3840×2160) | largest video frame (header and every decoded frame) |
| ``DEEPFAKE_LENS_MAX_VIDEO_FRAMES`` | 600 | most frames analysed in one video |
| ``DEEPFAKE_LENS_VIDEO_DECODE_SECONDS`` | 600 s | wall-time bound on decoding one video (no hang) |
| ``DEEPFAKE_LENS_DATA_ROOT`` | (none) | the only server folder the app may read; unset = no server paths |
| ``DEEPFAKE_LENS_PROFILES`` | ``~/.cache/deepfake-lens/profiles`` | calibration profiles the app offers |
| ``DEEPFAKE_LENS_PREFERENCES`` | ``~/.config/deepfake-lens/preferences.json`` | remembered choices (variants) |
| ``DEEPFAKE_LENS_API_TOKEN`` | (none) | bearer token the HTTP API requires; unset = no token |
| ``DEEPFAKE_LENS_API_CORS_ORIGINS`` | (none) | comma-separated origins allowed by CORS; unset = CORS off |
| ``DEEPFAKE_LENS_API_WORKERS`` / ``_API_QUEUE`` | 1 / 16 | analyses run at once / waiting before 503 |
| ``DEEPFAKE_LENS_API_TIMEOUT`` | 120 s | per-request time limit (queue wait included) |
| ``DEEPFAKE_LENS_API_JOB_TIMEOUT`` / ``_API_JOB_TTL`` / ``_API_MAX_JOBS`` | 1800 s / 3600 s / 64 | jobs |
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "configs"
DETECTOR_CONFIG_DIR = CONFIG_DIR / "detectors"
ENSEMBLE_CONFIG = CONFIG_DIR / "ensemble.yaml"
EXAMPLES_DIR = PROJECT_ROOT / "data" / "examples"
PYPROJECT = PROJECT_ROOT / "pyproject.toml"

MB = 1024 ** 2
GB = 1024 ** 3


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(float(raw)) if raw else default
    except ValueError:
        return default


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        return default


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _path(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


# ----------------------------------------------------------------------------------------------- folders

def weights_dir() -> Path:
    """Where installed checkpoints live (``DEEPFAKE_LENS_WEIGHTS``)."""
    return _path("DEEPFAKE_LENS_WEIGHTS") or Path.home() / ".cache" / "deepfake-lens" / "weights"


def score_cache_dir() -> Path:
    """Evaluation's score cache (``DEEPFAKE_LENS_CACHE``)."""
    return _path("DEEPFAKE_LENS_CACHE") or Path.home() / ".cache" / "deepfake-lens" / "scores"


def extra_config_dirs() -> list[Path]:
    """Extra detector-YAML folders from ``DEEPFAKE_LENS_CONFIG_DIRS`` (os.pathsep-separated)."""
    return [Path(p).expanduser() for p in os.environ.get("DEEPFAKE_LENS_CONFIG_DIRS", "").split(os.pathsep) if p]


def profiles_dir() -> Path:
    """Calibration profiles the app lists in its sidebar (``DEEPFAKE_LENS_PROFILES``)."""
    return _path("DEEPFAKE_LENS_PROFILES") or Path.home() / ".cache" / "deepfake-lens" / "profiles"


def preferences_file() -> Path:
    """The user's remembered choices, e.g. detector variants (``DEEPFAKE_LENS_PREFERENCES``; ``XDG_CONFIG_HOME``
    is honoured for the default)."""
    base = _path("XDG_CONFIG_HOME") or Path.home() / ".config"
    return _path("DEEPFAKE_LENS_PREFERENCES") or base / "deepfake-lens" / "preferences.json"


def data_root() -> Path | None:
    """The one server folder the app may read (``DEEPFAKE_LENS_DATA_ROOT``); None = no server paths at all."""
    return _path("DEEPFAKE_LENS_DATA_ROOT")


# ----------------------------------------------------------------------------------------------- limits

def max_pixels() -> int:
    """Largest image (width × height) accepted, checked from the header before decoding."""
    return _int("DEEPFAKE_LENS_MAX_PIXELS", 100_000_000)


def max_bytes() -> int:
    """Largest image file accepted, in bytes."""
    return _int("DEEPFAKE_LENS_MAX_BYTES", 200 * MB)


def max_files() -> int:
    """Most files in one evaluation input (folder, archive or CSV)."""
    return _int("DEEPFAKE_LENS_MAX_FILES", 100_000)


def max_archive_bytes() -> int:
    """Most uncompressed bytes in one archive."""
    return _int("DEEPFAKE_LENS_MAX_ARCHIVE_BYTES", 8 * GB)


def max_ratio() -> float:
    """Highest compression ratio of an archive member above 1 MB (zip-bomb guard)."""
    return _float("DEEPFAKE_LENS_MAX_RATIO", 100.0)


def max_checkpoint_bytes() -> int:
    """Largest checkpoint imported, downloaded or read from a bundle."""
    return _int("DEEPFAKE_LENS_MAX_CHECKPOINT_BYTES", 4 * GB)


def max_video_bytes() -> int:
    """Largest video file accepted, in bytes."""
    return _int("DEEPFAKE_LENS_MAX_VIDEO_BYTES", 2 * GB)


def max_video_seconds() -> float:
    """Longest video accepted (its header's duration); decoding also stops at this time."""
    return _float("DEEPFAKE_LENS_MAX_VIDEO_SECONDS", 3 * 3600.0)


def max_video_pixels() -> int:
    """Largest video frame (width × height), checked on the header and on every decoded frame."""
    return _int("DEEPFAKE_LENS_MAX_VIDEO_PIXELS", 3840 * 2160)


def max_video_frames() -> int:
    """Most frames analysed in one video (a larger ``--max-frames`` is lowered to this)."""
    return _int("DEEPFAKE_LENS_MAX_VIDEO_FRAMES", 600)


def video_decode_seconds() -> float:
    """Wall-time bound on reading one video's frames, so a hostile file can never hang a run."""
    return _float("DEEPFAKE_LENS_VIDEO_DECODE_SECONDS", 600.0)


# ----------------------------------------------------------------------------------------------- network

def connect_timeout() -> float:
    """Seconds to wait for a download server to answer."""
    return _float("DEEPFAKE_LENS_CONNECT_TIMEOUT", 5.0)


def read_timeout() -> float:
    """Seconds a download may stall before it fails."""
    return _float("DEEPFAKE_LENS_READ_TIMEOUT", 30.0)


def offline() -> bool:
    """True when downloads must be refused at once (``HF_HUB_OFFLINE`` or ``DEEPFAKE_LENS_OFFLINE``)."""
    return _flag("HF_HUB_OFFLINE") or _flag("DEEPFAKE_LENS_OFFLINE")


def hf_endpoint() -> str | None:
    """A Hugging Face Hub mirror (``HF_ENDPOINT``), read per call."""
    return os.environ.get("HF_ENDPOINT") or None


# ----------------------------------------------------------------------------------------------- HTTP API

def api_token() -> str | None:
    """The bearer token every API request must carry (``DEEPFAKE_LENS_API_TOKEN``); None = no token asked."""
    return os.environ.get("DEEPFAKE_LENS_API_TOKEN", "").strip() or None


def api_cors_origins() -> list[str]:
    """Origins allowed by CORS (``DEEPFAKE_LENS_API_CORS_ORIGINS``, comma-separated); empty = CORS off."""
    return [o.strip() for o in os.environ.get("DEEPFAKE_LENS_API_CORS_ORIGINS", "").split(",") if o.strip()]


def api_workers() -> int:
    """Analyses the API runs at once (threads sharing the cached models)."""
    return max(1, _int("DEEPFAKE_LENS_API_WORKERS", 1))


def api_queue() -> int:
    """Requests that may wait for a worker; one more is refused with 503 and Retry-After."""
    return max(0, _int("DEEPFAKE_LENS_API_QUEUE", 16))


def api_timeout() -> float:
    """Seconds one API request may take, waiting in the queue included."""
    return _float("DEEPFAKE_LENS_API_TIMEOUT", 120.0)


def api_job_timeout() -> float:
    """Seconds one API job (video, robustness probe) may run before it is stopped."""
    return _float("DEEPFAKE_LENS_API_JOB_TIMEOUT", 1800.0)


def api_job_ttl() -> float:
    """Seconds a finished job's result is kept."""
    return _float("DEEPFAKE_LENS_API_JOB_TTL", 3600.0)


def api_max_jobs() -> int:
    """Most jobs kept at once (queued, running and finished)."""
    return max(1, _int("DEEPFAKE_LENS_API_MAX_JOBS", 64))
