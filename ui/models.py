"""Cached detector loading for the app: one model per (variant, checkpoint) per process, shared by all sessions.

A detector whose weights are missing or refused is never built with random weights: the caller gets the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
import torch

from core.errors import DeepfakeLensError
from core.models import weights as W
from core.models.detectors.base import Detector
from core.models.factory import create_detector
from core.models.registry import get_spec, list_detectors, list_specs
from core.models.specs import DetectorSpec


@dataclass(frozen=True)
class Availability:
    """Whether a detector variant can run here, and if not, why and how to fix it."""

    spec: DetectorSpec
    ready: bool
    state: str            # installed | weights not installed | corrupt
    message: str          # how to fix (empty when ready)
    stamp: str            # identity of the installed checkpoint(s): part of the model cache key


def availability(key: str) -> Availability:
    """Check (cheaply: hashes are cached) whether a variant's checkpoint(s) are installed."""
    spec = get_spec(key)
    stamp, problems, state = [], [], "installed"
    for part, _ in W.parts(spec):
        st_ = W.status(spec, part)
        if st_.state != "installed":
            state = "corrupt" if st_.state == "corrupt" else "weights not installed"
            problems.append(st_.message if part == "weights" else f"Backbone: {st_.message}")
        else:
            stamp.append(f"{st_.path}:{st_.sha256}")
    return Availability(spec, not problems, state, " ".join(problems), "|".join(stamp))


@st.cache_resource(max_entries=8, show_spinner=False)
def _load(key: str, stamp: str, precision: str = "fp32") -> Detector:
    # ``stamp`` changes when a checkpoint is imported/replaced, so a stale model is never served; each precision
    # is its own cached instance because a shared model must never change under another session.
    det = create_detector(key)
    det.set_precision(precision)
    return det


def precision_for(spec: DetectorSpec) -> str:
    """"bf16" when the sidebar's fast mode is on and the detector's YAML validated it (``options.fast_bf16``)."""
    return "bf16" if st.session_state.get("settings.fast") and spec.options.get("fast_bf16") else "fp32"


def get_detector(key: str) -> tuple[Detector | None, str]:
    """The cached detector, or (None, one-sentence reason) when it cannot run."""
    av = availability(key)
    if not av.ready:
        return None, f"{av.spec.key}: {av.state}. {av.message}"
    try:
        return _load(av.spec.key, av.stamp, precision_for(av.spec)), ""
    except DeepfakeLensError as exc:
        return None, str(exc)


def variant_choice(det_id: str) -> str:
    """The variant chosen in the sidebar for a detector id (default variant otherwise)."""
    chosen = st.session_state.get("settings.variants", {}).get(det_id)
    return f"{det_id}:{chosen}" if chosen else get_spec(det_id).key


def chosen_keys() -> list[str]:
    """One ``ID:variant`` per detector id, in display order."""
    return [variant_choice(d) for d in list_detectors()]


def variants_of(det_id: str) -> list[str]:
    """Variant names of a detector id, default first."""
    return [s.variant for s in list_specs(det_id)]


def apply_threads() -> None:
    """Use the thread count chosen in the sidebar (torch's intra-op pool; process-wide)."""
    n = int(st.session_state.get("settings.threads", 2))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
