"""Robustness probe: re-score one image after everyday degradations and say which verdicts survive.

Detectors fail silently on recompressed or resized images (TrueFake: NPR's fake recall falls to about 0 after
sharing on social networks; SIDBench: blur moves real images towards "fake"). The probe shows, for *this* image,
whether a detector's verdict depends on such details. Detectors are passed in (anything with ``.predict(image)``
returning a :class:`~core.results.DetectionResult`), so the probe has no model code of its own.

Example:
    >>> probe = run_probe(load_image("x.png"), [create_detector("NPR")])
    >>> probe.summary
    ('NPR flips under JPEG 75 (p_fake 0.91 → 0.12).', ...)
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image, ImageFilter

from core.convert import to_jsonable
from core.errors import DeepfakeLensError
from core.results import DetectionResult

DRIFT = 0.25         # |Δp_fake| at or above this, without a flip, is reported as a large shift


class Predictor(Protocol):
    """What the probe needs from a detector."""

    def predict(self, image: Image.Image) -> DetectionResult: ...


@dataclass(frozen=True)
class Condition:
    """One degradation applied before re-scoring."""

    key: str                 # stable id: original, jpeg95, jpeg75, jpeg50, resize0.5, blur1, social
    label: str               # shown to people, e.g. "JPEG 75"
    description: str         # exactly what is done


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)    # Pillow defaults: 4:2:0, like most sites
    out = Image.open(io.BytesIO(buf.getvalue()))
    out.load()
    return out.convert("RGB")


def _resize_long(image: Image.Image, long_side: int) -> Image.Image:
    w, h = image.size
    if max(w, h) <= long_side:
        return image                        # social networks do not enlarge small images
    s = long_side / max(w, h)
    return image.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC)


_FUNCS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "original": lambda im: im,
    "jpeg95": lambda im: _jpeg(im, 95),
    "jpeg75": lambda im: _jpeg(im, 75),
    "jpeg50": lambda im: _jpeg(im, 50),
    "resize0.5": lambda im: im.resize((max(1, round(im.width / 2)), max(1, round(im.height / 2))), Image.BICUBIC),
    "blur1": lambda im: im.filter(ImageFilter.GaussianBlur(radius=1.0)),
    "social": lambda im: _jpeg(_resize_long(im, 1080), 80),
}

CONDITIONS: tuple[Condition, ...] = (
    Condition("original", "original", "the image as given"),
    Condition("jpeg95", "JPEG 95", "re-saved as JPEG at quality 95 (Pillow/libjpeg, 4:2:0)"),
    Condition("jpeg75", "JPEG 75", "re-saved as JPEG at quality 75"),
    Condition("jpeg50", "JPEG 50", "re-saved as JPEG at quality 50"),
    Condition("resize0.5", "resize 0.5×", "resized to half width and height (bicubic, antialiased)"),
    Condition("blur1", "blur σ=1", "Gaussian blur with standard deviation 1 px (Pillow GaussianBlur radius 1)"),
    Condition("social", "social re-encode", "long side reduced to 1080 px when larger (bicubic), then JPEG 80 — "
                                            "roughly what social networks do on upload"),
)


def condition(key: str) -> Condition:
    """Look up a condition by key (raises KeyError naming the known keys)."""
    for c in CONDITIONS:
        if c.key == key:
            return c
    raise KeyError(f"unknown condition {key!r}; known: {', '.join(c.key for c in CONDITIONS)}")


def perturb(image: Image.Image, key: str) -> Image.Image:
    """Apply one condition to an RGB image (deterministic: the same input gives the same pixels).

    Example:
        >>> perturb(Image.new("RGB", (2000, 1000)), "social").size
        (1080, 540)
    """
    condition(key)
    return _FUNCS[key](image.convert("RGB"))


@dataclass(frozen=True)
class ProbeRow:
    """One detector's result under one condition."""

    detector: str            # display name: the detector id (``ID:variant`` when one id appears twice)
    condition: str           # condition key
    p_fake: float            # NaN when nothing was scored (no face, error)
    logit: float
    label: str               # real | fake | no_face | error
    threshold: float
    error: str = ""          # one sentence when the detector failed on this version of the image

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(dict(self.__dict__))


@dataclass(frozen=True)
class DetectorStability:
    """How one detector's verdict behaved across the conditions."""

    detector: str
    baseline_label: str
    baseline_p: float
    flips: tuple[str, ...]           # condition keys where the verdict changed
    max_shift: float                 # largest |Δp_fake| from the original
    max_shift_condition: str
    sentence: str

    @property
    def stable(self) -> bool:
        return not self.flips and (math.isnan(self.max_shift) or self.max_shift < DRIFT)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({**self.__dict__, "stable": self.stable})


@dataclass(frozen=True)
class ProbeResult:
    """Every detector under every condition, and plain-language stability sentences."""

    conditions: tuple[Condition, ...]
    rows: tuple[ProbeRow, ...]
    stability: tuple[DetectorStability, ...]
    summary: tuple[str, ...]          # one sentence per detector, flips first

    def p_fake(self, detector: str, condition_key: str) -> float:
        """p_fake of one cell (NaN when missing)."""
        for r in self.rows:
            if r.detector == detector and r.condition == condition_key:
                return r.p_fake
        return float("nan")

    @property
    def detectors(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.detector for r in self.rows))

    def to_dict(self) -> dict[str, Any]:
        return {"conditions": [dict(c.__dict__) for c in self.conditions], "rows": [r.to_dict() for r in self.rows],
                "stability": [s.to_dict() for s in self.stability], "summary": list(self.summary)}


def _names(detectors: Sequence[Predictor]) -> list[str]:
    def ident(d: Predictor) -> tuple[str, str]:
        spec = getattr(d, "spec", None)
        if spec is not None:
            return spec.id, spec.key
        name = getattr(d, "detector_id", None) or type(d).__name__
        return str(name), str(getattr(d, "key", name))
    ids = [ident(d) for d in detectors]
    counts: dict[str, int] = {}
    for i, _ in ids:
        counts[i] = counts.get(i, 0) + 1
    names = [key if counts[i] > 1 else i for i, key in ids]
    seen: dict[str, int] = {}
    out = []
    for n in names:             # two identical detectors still get distinct names
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


def _stability(name: str, rows: Sequence[ProbeRow], conds: Sequence[Condition]) -> DetectorStability:
    labels = {c.key: c.label for c in conds}
    base = next((r for r in rows if r.condition == "original"), None)
    if base is None or base.label not in ("real", "fake"):
        why = ("no verdict on the original" if base is None else base.error or
               ("no face found in the original" if base.label == "no_face" else "no verdict on the original"))
        return DetectorStability(name, base.label if base else "error", float("nan"), (), float("nan"), "",
                                 f"{name}: {why} — nothing to compare.")
    flips, best, best_c = [], -1.0, ""
    for r in rows:
        if r.condition == "original" or r.label not in ("real", "fake"):
            continue
        if r.label != base.label:
            flips.append(r.condition)
        shift = abs(r.p_fake - base.p_fake)
        if shift > best:
            best, best_c = shift, r.condition
    failed = [labels[r.condition] for r in rows if r.label not in ("real", "fake") and r.condition != "original"]
    if flips:
        first = next(r for r in rows if r.condition == flips[0])
        names = ", ".join(labels[k] for k in flips)
        sentence = (f"{name} flips under {names} (p_fake {base.p_fake:.2f} → {first.p_fake:.2f} under "
                    f"{labels[flips[0]]}): its {base.label} verdict on this image is fragile.")
    elif best >= DRIFT:
        sentence = (f"{name} keeps its {base.label} verdict but its p_fake moves by {best:.2f} under "
                    f"{labels[best_c]}.")
    elif best >= 0:
        sentence = (f"{name} is stable: {base.label} under all {len(rows) - 1 - len(failed)} degradations "
                    f"(largest p_fake change {best:.2f}, under {labels[best_c]}).")
    else:
        sentence = f"{name}: no degraded version could be scored."
    if failed:
        sentence += f" No score under {', '.join(failed)}."
    return DetectorStability(name, base.label, base.p_fake, tuple(flips), best if best >= 0 else float("nan"),
                             best_c, sentence)


BATCH_PIXELS = 64_000_000   # all versions of an image kept at once up to this many pixels in all (~190 MB as RGB)


def run_probe(image: Image.Image, detectors: Sequence[Predictor], *, conditions: Sequence[str] | None = None,
              progress: Callable[[int, int, str], None] | None = None, batch: bool = True) -> ProbeResult:
    """Score ``image`` with every detector under every condition.

    Args:
        image: the RGB image.
        detectors: objects with ``.predict(image) -> DetectionResult`` (loaded detectors; never mutated).
        conditions: condition keys (default: all of :data:`CONDITIONS`, ``original`` always included first).
        progress: ``fn(done, total, message)`` called before each scoring step (with ``batch``: before each
            detector, ``done`` counting the cells scored so far) and once at the end with ``done == total``.
        batch: score all versions of the image with one detector through its ``predict_batch`` (versions whose
            inputs share a shape go through the network together: the same scores, to float rounding, as one by
            one, in a fraction of the time). Used when the detector has ``predict_batch`` and the versions together
            stay under :data:`BATCH_PIXELS`; otherwise (or False) one version at a time, as before.

    Returns:
        A :class:`ProbeResult`. A detector that fails on one version (e.g. an image too small after resizing) gets
        an ``error`` row there instead of stopping the probe.

    Example:
        >>> run_probe(img, [det], conditions=["jpeg75"]).summary[0]
        'NPR flips under JPEG 75 (p_fake 0.91 → 0.12 under JPEG 75): its fake verdict on this image is fragile.'
    """
    keys = list(conditions) if conditions is not None else [c.key for c in CONDITIONS]
    if "original" not in keys:
        keys.insert(0, "original")
    conds = tuple(condition(k) for k in dict.fromkeys(keys))
    names = _names(detectors)
    image = image.convert("RGB")
    total = len(conds) * len(detectors)
    if batch and image.width * image.height * len(conds) <= BATCH_PIXELS:
        cells = _probe_batched(image, conds, names, detectors, progress)
    else:
        cells = _probe_one_by_one(image, conds, names, detectors, progress)
    rows = [cells[n, c.key] for n in names for c in conds]       # grouped by detector, conditions in order
    if progress:
        progress(total, total, "done")
    stab = tuple(_stability(n, [r for r in rows if r.detector == n], conds) for n in names)
    ordered = sorted(stab, key=lambda s: (0 if s.flips else 1 if not s.stable else 2, names.index(s.detector)))
    return ProbeResult(conds, tuple(rows), stab, tuple(s.sentence for s in ordered))


Cells = dict[tuple[str, str], ProbeRow]


def _cell(name: str, key: str, det: Predictor, version: Image.Image) -> ProbeRow:
    """One detector on one version; a detector's refusal (too small, no verdict) becomes an error row."""
    try:
        return _row(name, key, det.predict(version))
    except DeepfakeLensError as exc:
        return ProbeRow(name, key, float("nan"), float("nan"), "error", float("nan"), str(exc))


def _row(name: str, key: str, r: DetectionResult) -> ProbeRow:
    return ProbeRow(name, key, r.p_fake, r.logit, r.label, r.threshold)


def _probe_one_by_one(image: Image.Image, conds: Sequence[Condition], names: Sequence[str],
                      detectors: Sequence[Predictor], progress: Callable[[int, int, str], None] | None) -> Cells:
    """Each version in turn through every detector: one degraded copy alive at a time (large images)."""
    total, done, cells = len(conds) * len(detectors), 0, {}
    for c in conds:
        version = perturb(image, c.key)
        for name, det in zip(names, detectors):
            if progress:
                progress(done, total, f"{name} · {c.label}")
            cells[name, c.key] = _cell(name, c.key, det, version)
            done += 1
        del version
    return cells


def _probe_batched(image: Image.Image, conds: Sequence[Condition], names: Sequence[str],
                   detectors: Sequence[Predictor], progress: Callable[[int, int, str], None] | None) -> Cells:
    """Every version at once through each detector's ``predict_batch`` (falls back per version on a refusal)."""
    versions = [perturb(image, c.key) for c in conds]
    total, done, cells = len(conds) * len(detectors), 0, {}
    for name, det in zip(names, detectors):
        if progress:
            progress(done, total, f"{name} · {len(conds)} conditions")
        scored = None
        predict_batch = getattr(det, "predict_batch", None)
        if callable(predict_batch):
            try:
                scored = list(predict_batch(versions, batch_size=len(versions)))
            except DeepfakeLensError:
                scored = None            # one version is refused: score them one by one to say which
        if scored is not None and len(scored) == len(conds):
            cells.update({(name, c.key): _row(name, c.key, r) for c, r in zip(conds, scored)})
        else:
            cells.update({(name, c.key): _cell(name, c.key, det, v) for c, v in zip(conds, versions)})
        done += len(conds)
    return cells


__all__ = ["CONDITIONS", "Condition", "condition", "perturb", "ProbeRow", "DetectorStability", "ProbeResult",
           "run_probe", "DRIFT", "BATCH_PIXELS"]
