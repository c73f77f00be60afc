"""Running detectors for the pages: results live in session state, keyed by image sha256 and ``ID:variant``."""
from __future__ import annotations

import time
from collections.abc import Sequence

import streamlit as st
from PIL import Image

from core.errors import DeepfakeLensError
from core.models.registry import get_spec
from core.results import DetectionResult
from core.verdict.ensemble import EnsembleConfig, EnsembleResult, ensemble, load_config
from ui.models import apply_threads, availability, chosen_keys, get_detector
from ui.widgets import CurrentImage


def stored(sha: str) -> dict[str, DetectionResult]:
    """Results already computed for an image in this session."""
    return st.session_state["analyse.results"].setdefault(sha, {})


def stored_errors(sha: str) -> dict[str, str]:
    return st.session_state["analyse.errors"].setdefault(sha, {})


# Seconds each detector last took to score an image in this process (process-wide timings only): the estimate of
# the time left in the next run.
_RUN_SECONDS: dict[str, float] = {}


def _left_text(todo: Sequence[str], elapsed: float, done: int) -> str:
    """"about 40 s left" from the last timings of the detectors still to run (or the mean so far), else ""."""
    if not todo:
        return ""
    mean = elapsed / done if done else None
    known = [_RUN_SECONDS.get(k, mean) for k in todo]
    if any(t is None for t in known):
        return ""
    m, s = divmod(int(round(sum(known))), 60)
    return f" · about {f'{m} min ' if m else ''}{s} s left"


def run_detectors(cur: CurrentImage, image: Image.Image, keys: Sequence[str]) -> None:
    """Run the given installed detectors on the image inside an ``st.status`` box, skipping ones already done.

    The box says which detector runs, how many are left, the elapsed time and an estimate of the time left; a model
    that must first be loaded says so (:func:`ui.models.get_detector`).
    """
    apply_threads()
    done, errors = stored(cur.sha256), stored_errors(cur.sha256)
    todo = [k for k in keys if k not in done and k not in errors]
    if not todo:
        return
    t_all = time.perf_counter()
    with st.status(f"Running {len(todo)} detector(s)…", expanded=True) as box:
        for i, key in enumerate(todo, 1):
            elapsed = time.perf_counter() - t_all
            box.update(label=f"Running {key} ({i} of {len(todo)}) · {elapsed:.0f} s so far"
                             f"{_left_text(todo[i - 1:], elapsed, i - 1)}")
            det, why = get_detector(key)
            if det is None:
                errors[key] = why
                st.text(f"✗ {why}")                 # may quote a file name: plain text
                continue
            t0 = time.perf_counter()
            try:
                done[key] = det.predict(image)
                _RUN_SECONDS[key] = time.perf_counter() - t0
                st.write(f"✓ {key}: {done[key].label} in {_RUN_SECONDS[key]:.1f} s")
            except DeepfakeLensError as exc:
                errors[key] = str(exc)
                st.text(f"✗ {key}: {exc}")
        box.update(label=f"Done: {len(todo)} detector(s) in {time.perf_counter() - t_all:.0f} s", state="complete",
                   expanded=False)


def ensemble_keys() -> tuple[list[str], dict[str, str]]:
    """(installed ``ID:variant`` keys of the chosen variants, {id: why missing} for the rest)."""
    ready, missing = [], {}
    for key in chosen_keys():
        av = availability(key)
        if av.ready:
            ready.append(key)
        else:
            missing[av.spec.id] = av.state
    return ready, missing


def ensemble_config() -> EnsembleConfig:
    """Defaults from configs/ensemble.yaml, overridden by the sidebar's edited weights and vote threshold."""
    base = load_config()
    weights = dict(base.weights)
    weights.update(st.session_state.get("ensemble.weights", {}))
    thr = float(st.session_state.get("ensemble.vote_threshold", base.vote_threshold))
    return EnsembleConfig(vote_threshold=thr, weights=weights, uncertain_band=base.uncertain_band,
                          disagreement=base.disagreement)


def current_ensemble(sha: str) -> tuple[EnsembleResult, list[DetectionResult]]:
    """The ensemble over the stored results of the chosen variants (no detector is re-run)."""
    keys, missing = ensemble_keys()
    res = stored(sha)
    results = [res[k] for k in keys if k in res]
    errs = stored_errors(sha)
    missing = dict(missing)
    for k in keys:
        if k in errs:
            missing[get_spec(k).id] = "failed on this image"
    return ensemble(results, ensemble_config(), missing=missing), results
