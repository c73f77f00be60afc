"""Grad-CAM for the pages: computed once per image, detector weights and precision (and shared by every session),
then re-blended in a fragment, so moving the opacity or swipe slider never recomputes it.

Results live in one process-wide, size-bounded store (:func:`shared`), keyed by what decides them: the detector
variant, the identity of its installed weights (path and sha256, so a re-imported checkpoint is never served a stale
result), the precision and the image bytes' sha256. Stored maps are read-only: every session reads the same object.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
import streamlit as st
from PIL import Image

from core.models.explain import CAVEAT, Explanation
from ui.figures import cam_figure, heat_overlay, side_by_side, swipe_image
from ui.models import availability, get_detector, precision_for

T = TypeVar("T")
MAX_ENTRIES = 32
DISPLAY_SIDE = 1280          # maps and pictures are blended at most this large: enough for a screen, quick to redo
MIN_SIDE = 512
VIEWS = ("Overlay", "Side by side", "Swipe")


class SharedResults:
    """A thread-safe least-recently-used store of computed results (at most ``max_entries``)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._computing: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable) -> Any | None:
        """The stored value (now the most recently used), or None."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        """Store a value, dropping the least recently used beyond ``max_entries``."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The stored value, or compute and store it; sessions asking for the same key at once wait for one
        computation instead of each running the model."""
        hit = self.get(key)
        if hit is not None:
            return hit
        with self._lock:
            gate = self._computing.setdefault(key, threading.Lock())
        try:
            with gate:
                hit = self.get(key)            # computed by another session while this one waited
                if hit is None:
                    hit = compute()
                    self.put(key, hit)
                return hit
        finally:
            with self._lock:
                self._computing.pop(key, None)

    def keys(self) -> list[Hashable]:
        """The stored keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


@st.cache_resource(show_spinner=False)
def shared() -> SharedResults:
    """The process-wide store (one per server, shared by all sessions)."""
    return SharedResults()


def result_key(kind: str, det_key: str, sha: str, *extra: Hashable) -> tuple | None:
    """The store key of a result of ``det_key`` on the image ``sha`` (None when the detector cannot run).

    Args:
        kind: what is stored ("faces", "explain", …).
        det_key: ``ID:variant``.
        sha: the image bytes' sha256.
        extra: any further setting the result depends on.
    """
    av = availability(det_key)
    if not av.ready:
        return None
    return kind, av.spec.key, av.stamp, precision_for(av.spec), sha, *extra


def cached(key: tuple, compute: Callable[[], T]) -> T:
    """The stored result under ``key``, computing and storing it on a miss."""
    return shared().get_or_compute(key, compute)


def read_only(a: np.ndarray) -> np.ndarray:
    """A float32 copy of ``a`` that cannot be written to (stored results are read by every session)."""
    a = np.array(a, dtype=np.float32)
    a.setflags(write=False)
    return a


def display_size(size: tuple[int, int], side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """(W, H) scaled down so the longer side is at most ``side`` (never up)."""
    w, h = size
    f = min(1.0, side / max(w, h, 1))
    return max(1, round(w * f)), max(1, round(h * f))


def shrink_map(heat: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """A [0, 1] map reduced to at most ``side`` on its longer side (bilinear), read-only."""
    h, w = heat.shape
    size = display_size((w, h), side)
    if size == (w, h):
        return read_only(heat)
    img = Image.fromarray(np.asarray(heat, dtype=np.float32), mode="F").resize(size, Image.BILINEAR)
    return read_only(np.clip(np.asarray(img), 0.0, 1.0))


def explanation(det_key: str, sha: str, image: Image.Image) -> Explanation | None:
    """Grad-CAM of a detector on an image, computed once per image, weights and precision (across sessions).

    The stored map is reduced to :data:`DISPLAY_SIDE` (a 24-megapixel map would take 96 MB per entry).
    Returns None when the detector cannot run (its weights are not installed).
    """
    key = result_key("explain", det_key, sha)
    det, _ = get_detector(det_key)
    if key is None or det is None:
        return None

    def compute() -> Explanation:
        with st.spinner(f"Computing Grad-CAM for {det_key} (once per image; the opacity slider only re-blends)…"):
            exp = det.explain(image)
        return replace(exp, heatmap=shrink_map(exp.heatmap))
    return cached(key, compute)


def display_picture(image: Image.Image) -> Image.Image:
    """The picture at a size worth blending: at most :data:`DISPLAY_SIDE`, and small crops (a 160-px face) enlarged
    smoothly to :data:`MIN_SIDE` so the browser does not show them as blocks."""
    picture = image.convert("RGB")
    longest = max(picture.size)
    if longest > DISPLAY_SIDE:
        return picture.resize(display_size(picture.size), Image.BILINEAR)
    if longest < MIN_SIDE:
        f = MIN_SIDE / longest
        return picture.resize((round(picture.width * f), round(picture.height * f)), Image.LANCZOS)
    return picture


@dataclass(frozen=True)
class CamItem:
    """One picture and its Grad-CAM map for :func:`compare` (``label`` is our own text: a face number)."""

    label: str
    image: Image.Image
    heat: np.ndarray


def _controls(items: Sequence[CamItem], key: str, default_view: str) -> tuple[CamItem, str, float, float]:
    if len(items) > 1:
        c1, c2, c3 = st.columns([2, 3, 3])
        idx = c1.selectbox("Show", range(len(items)), format_func=lambda i: items[i].label, key=f"{key}.item")
    else:
        (c2, c3), idx = st.columns(2), 0
    view = c2.radio("View", VIEWS, VIEWS.index(default_view), horizontal=True, key=f"{key}.view",
                    help="Overlay: the map over the picture. Side by side: the picture next to it. Swipe: drag "
                         "the divider to compare the same pixels with and without the map.")
    opacity = c3.slider("Grad-CAM opacity", 0.0, 1.0, 0.5, 0.05, key=f"{key}.opacity")
    split = st.slider("Swipe: picture ← | → Grad-CAM", 0.0, 1.0, 0.5, 0.01, key=f"{key}.swipe") \
        if view == "Swipe" else 0.5
    return items[idx], view, opacity, split


@st.fragment
def compare(items: Sequence[CamItem], key: str, default_view: str = "Overlay") -> None:
    """Grad-CAM maps with a view switch (overlay, side by side, swipe), an opacity slider and a colour bar.

    A fragment: moving a slider reruns only this function, on the stored maps (nothing is recomputed).
    """
    if not items:
        return
    item, view, opacity, split = _controls(items, key, default_view)
    picture = display_picture(item.image)
    overlay = heat_overlay(picture, item.heat, opacity)
    if view == "Side by side":
        shown, title = side_by_side(picture, overlay), "picture | Grad-CAM"
    elif view == "Swipe":
        shown, title = swipe_image(picture, overlay, split), "picture ← | → Grad-CAM"
    else:
        shown, title = overlay, None
    st.plotly_chart(cam_figure(shown, title), key=f"{key}.fig", config={"displayModeBar": False})
    if float(np.max(item.heat, initial=0.0)) == 0.0:
        st.info("The map is empty: nothing in this picture pushed the model towards 'fake'.")
    st.caption("Colours: the Grad-CAM value (0 = no pull towards 'fake', 1 = the strongest in this picture); cold "
               "regions stay untinted. " + CAVEAT)


def show_explanation(det_key: str, sha: str, image: Image.Image, key: str) -> None:
    """Grad-CAM of ``det_key`` on ``image`` (computed once) in the :func:`compare` view, full width."""
    exp = explanation(det_key, sha, image)
    if exp is None:
        st.info(f"{det_key}: weights not installed, so no Grad-CAM.")
        return
    st.caption(f"Grad-CAM at layer {exp.target_layer} (model input {exp.input_size[0]}×{exp.input_size[1]}).")
    compare([CamItem("image", image, exp.heatmap)], key)


__all__ = ["display_picture", "SharedResults", "shared", "result_key", "cached", "read_only", "explanation", "CamItem", "compare",
           "show_explanation", "display_size", "shrink_map", "VIEWS"]
