"""Weights: where checkpoints live (store), how they are found (resolve) and fetched (download).

Installing (import, bundle) sits above the factory in :mod:`core.models.install`.
"""
from core.models.checkpoint import load_checkpoint
from core.models.weights.download import download, download_url
from core.models.weights.resolve import resolve_weights
from core.models.weights.store import (WeightsStatus, check_known, delete, git_blob_sha1, how_to_fix, installed_path,
                                       part_spec, parts, sha256_file, status, weights_dir)

__all__ = ["weights_dir", "parts", "installed_path", "resolve_weights", "sha256_file", "git_blob_sha1", "load_checkpoint",
           "download_url", "download", "status", "delete", "how_to_fix", "WeightsStatus", "check_known", "part_spec"]
