"""Cached detector loading for the app: one model per (variant, checkpoint) per process, shared by all sessions.

A detector whose weights are missing or refused is never built with random weights: the caller gets the reason.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
import torch

from core.errors import DeepfakeLensError
from core.models.detectors.base import Detector
from core.models.factory import create_detector
from core.models.registry import get_spec, list_detectors, list_specs
from core.models.selection import default_variant, variant_state
from core.models.specs import DetectorSpec
from core.preferences import save_variants


@dataclass(frozen=True)
class Availability:
    """Whether a detector variant can run here, and if not, why and how to fix it."""

    spec: DetectorSpec
    ready: bool
    state: str            # installed | weights not installed | partial (… missing) | corrupt
    message: str          # how to fix (empty when ready)
    stamp: str            # identity of the installed checkpoint(s): part of the model cache key


def availability(key: str) -> Availability:
    """Check (cheaply: a file's hash is kept while the file is unchanged) whether a variant's checkpoint(s) are
    installed, in the command line's words (``python -m core list``): a CLIP variant with only its backbone is
    *partial*."""
    vs = variant_state(get_spec(key))
    problems = [p.message if p.part == "weights" else f"Backbone: {p.message}"
                for p in vs.parts if p.state != "installed"]
    state = {"installed": "installed", "missing": "weights not installed", "corrupt": "corrupt",
             "partial": f"partial ({vs.problems()})"}[vs.state]
    stamp = "|".join(f"{p.path}:{p.sha256}" for p in vs.parts if p.state == "installed")
    return Availability(vs.spec, vs.installed, state, " ".join(problems), stamp)


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


# How long each model took to load in this process: a later load of the same files (after the cache let it go)
# says what to expect. Process-wide like the model cache itself; only timings, never anything from a session.
_LOAD_SECONDS: dict[tuple[str, str, str], float] = {}


def _weights_bytes(av: Availability) -> int:
    total = 0
    for entry in av.stamp.split("|"):
        try:
            total += Path(entry.rsplit(":", 1)[0]).stat().st_size
        except OSError:
            pass
    return total


def _loading_text(av: Availability, ident: tuple[str, str, str]) -> str:
    size = _weights_bytes(av)
    what = f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.0f} MB" if size >= 1e6 else "small"
    last = _LOAD_SECONDS.get(ident)
    hint = f"the last load took {last:.0f} s" if last is not None else "once loaded it stays in memory for every " \
                                                                       "page and session"
    return f"Loading {av.spec.key} into memory ({what} of weights; {hint})…"


def get_detector(key: str) -> tuple[Detector | None, str]:
    """The cached detector, or (None, one-sentence reason) when it cannot run.

    A model not loaded yet in this process shows a spinner saying which detector loads, its weights' size and
    the elapsed time (CLIP-D's 1.7 GB backbone takes about a minute on CPU).
    """
    av = availability(key)
    if not av.ready:
        return None, f"{av.spec.key}: {av.state}. {av.message}"
    ident = (av.spec.key, av.stamp, precision_for(av.spec))
    try:
        t0 = time.perf_counter()
        # st.spinner draws nothing for the first 0.5 s, so a model already in the cache shows no flicker
        with st.spinner(_loading_text(av, ident), show_time=True):
            det = _load(*ident)
        if time.perf_counter() - t0 > 0.5:
            _LOAD_SECONDS[ident] = time.perf_counter() - t0
        return det, ""
    except DeepfakeLensError as exc:
        return None, str(exc)


def variant_choice(det_id: str) -> str:
    """``ID:variant`` in use for a detector id: the variant picked in the sidebar in this session, else the default
    (:func:`core.models.selection.default_variant`: the remembered choice when it is installed, else the installed
    variant — the original when several are —, else the registry default)."""
    picked = st.session_state.get("settings.variants", {}).get(det_id)
    if picked and picked in variants_of(det_id):
        return f"{det_id}:{picked}"
    return default_variant(det_id).key


def remember_variant(det_id: str, variant: str) -> bool:
    """Use ``variant`` for ``det_id`` in this session and remember it for new sessions and the command line.

    Returns:
        False when the preferences file could not be written (the choice still holds for this session).
    """
    st.session_state.setdefault("settings.variants", {})[det_id] = variant
    return save_variants({det_id: variant})


def variant_label(det_id: str, variant: str) -> str:
    """``truefake · installed`` / ``original · no weights`` / ``· partial`` / ``· corrupt``: a selectbox label short
    enough for the sidebar."""
    state = availability(f"{det_id}:{variant}").state
    short = "no weights" if state == "weights not installed" else state.split(" (")[0]
    return f"{variant} · {short}"


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
