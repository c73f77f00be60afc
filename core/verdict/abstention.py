"""Reasons to doubt a verdict: pure functions over results, forensic facts and (optionally) a robustness probe.

A detector's number is only as good as its input. These functions list, in plain words, the situations in which
a single result or the ensemble should not be trusted: detectors disagree strongly, the file was recompressed,
the image is smaller than the detector's input (it was enlarged), there is no face for the face model, only a
centre crop was analysed, or the verdict flips under a mild degradation.

Each reason's ``text`` is a lower-case phrase without a final full stop, like ``EnsembleResult.reasons``, so pages
render them as ``f"Reason to doubt: {reason.text}."``.

Example:
    >>> facts = facts_from_bytes(Path("x.jpg").read_bytes())
    >>> [r.text for r in result_reasons(npr_result, facts)]
    ['the file is a JPEG of estimated quality 62 (below 80): compression removes the fine traces NPR relies on']
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image

from core.forensics import RECOMPRESSED_QUALITY, jpeg_info
from core.results import DetectionResult
from core.verdict.ensemble import EnsembleResult

QUALITY_THRESHOLD = RECOMPRESSED_QUALITY   # the one recompression threshold, defined by core.forensics
DISAGREEMENT = 0.6           # p_fake range across detectors above which they "disagree strongly" (ensemble.yaml)
MIN_COVERAGE = 0.7           # a resize+crop detector that saw less than this share of the image is reported
NEAR_THRESHOLD = 0.1         # |p_fake − threshold| below this is "close to the threshold"
SMALL_SIDE = 128             # full-resolution detectors on an image with a side below this see very few pixels


@dataclass(frozen=True)
class Reason:
    """One reason to doubt a result."""

    code: str                 # disagreement | split | recompressed | double_jpeg | upsampled_input | small_image |
                              # no_face | centre_crop | partial_view | near_threshold | fragile | ensemble
    text: str                 # lower-case phrase, no final full stop
    detector: str | None = None               # the detector it is about (None: the input or the ensemble)
    severity: Literal["caution", "strong"] = "caution"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ForensicFacts:
    """The few input facts abstention needs (from :func:`facts_from_bytes` or ``core.forensics.Metadata``)."""

    image_size: tuple[int, int] | None = None     # (W, H) of the file
    is_jpeg: bool = False
    jpeg_quality: int | None = None               # IJG-equivalent estimate
    double_compression: bool | None = None        # None: could not be judged
    exif_size: tuple[int, int] | None = None      # (W, H) the camera wrote in EXIF (PixelX/YDimension), if any

    @property
    def resized(self) -> bool | None:
        """True when EXIF names a pixel size other than the file's (resized after capture); None: unknown."""
        if self.image_size is None or self.exif_size is None:
            return None
        return self.exif_size not in (self.image_size, self.image_size[::-1])

    @property
    def recompressed(self) -> bool:
        """A JPEG whose estimated quality is below the recompression threshold."""
        return self.is_jpeg and self.jpeg_quality is not None and self.jpeg_quality < QUALITY_THRESHOLD

    @classmethod
    def from_metadata(cls, meta: Any, exif_size: tuple[int, int] | None = None) -> "ForensicFacts":
        """From a :class:`core.forensics.Metadata` (``exif_size``: see :func:`exif_pixel_size`)."""
        return cls((meta.file.width, meta.file.height), meta.jpeg.is_jpeg, meta.jpeg.quality,
                   meta.jpeg.double_compression, exif_size)

    def to_dict(self) -> dict[str, Any]:
        return {"image_size": list(self.image_size) if self.image_size else None, "is_jpeg": self.is_jpeg,
                "jpeg_quality": self.jpeg_quality, "double_compression": self.double_compression,
                "exif_size": list(self.exif_size) if self.exif_size else None, "resized": self.resized}


def exif_pixel_size(im: Image.Image) -> tuple[int, int] | None:
    """(W, H) from EXIF PixelXDimension/PixelYDimension, when both are present and positive."""
    try:
        sub = im.getexif().get_ifd(0x8769)            # the Exif sub-IFD
        w, h = int(sub.get(0xA002, 0)), int(sub.get(0xA003, 0))
    except Exception:  # noqa: BLE001 - EXIF is optional, forgeable evidence; a broken block means "unknown"
        return None
    return (w, h) if w > 0 and h > 0 else None


def facts_from_bytes(data: bytes) -> ForensicFacts:
    """Cheap input facts of an image file: size, JPEG quality estimate and double-compression hint.

    Unreadable bytes give empty facts (the image reader reports the problem elsewhere).
    """
    try:
        im = Image.open(io.BytesIO(data))
        size = im.size
        fmt = im.format
        exif = exif_pixel_size(im)
    except Exception:  # noqa: BLE001 - facts are optional evidence; BadImage is raised by core.io elsewhere
        return ForensicFacts()
    if fmt != "JPEG":
        return ForensicFacts(size, exif_size=exif)
    j = jpeg_info(bytes(data))
    return ForensicFacts(size, True, j.quality, j.double_compression, exif)


def input_reasons(facts: ForensicFacts | None, *, detector: str | None = None,
                  quality_threshold: int = QUALITY_THRESHOLD) -> tuple[Reason, ...]:
    """Reasons that come from the file itself (recompression), optionally phrased for one detector."""
    if facts is None or not facts.is_jpeg:
        return ()
    who = detector or "detectors"
    out = []
    if facts.jpeg_quality is not None and facts.jpeg_quality < quality_threshold:
        out.append(Reason("recompressed", f"the file is a JPEG of estimated quality {facts.jpeg_quality} (below "
                                          f"{quality_threshold}): compression removes the fine traces {who} "
                                          f"rel{'ies' if detector else 'y'} on", detector,
                          "strong" if facts.jpeg_quality < 60 else "caution"))
    if facts.double_compression:
        out.append(Reason("double_jpeg", "the JPEG looks compressed at least twice (re-saved or shared), which "
                                         f"weakens the traces {who} rel{'ies' if detector else 'y'} on", detector))
    return tuple(out)


def _probe_flips(probe: Any, result: DetectionResult) -> Reason | None:
    if probe is None:
        return None
    for s in getattr(probe, "stability", ()):
        if s.detector in (result.detector_id, result.key) and s.flips:
            labels = {c.key: c.label for c in probe.conditions}
            return Reason("fragile", f"{result.detector_id}'s verdict flips under "
                                     f"{', '.join(labels.get(k, k) for k in s.flips)} (robustness probe)",
                          result.detector_id, "strong")
    return None


def is_face_result(result: DetectionResult, spec: Any = None) -> bool:
    """True for a face model's result (it scores face crops, not the whole image)."""
    mode = getattr(getattr(spec, "preprocess", None), "mode", None)
    return mode == "face" or bool(result.faces) or result.label == "no_face" or "n_faces" in result.details


def enlarged(result: DetectionResult, spec: Any) -> tuple[int, int] | None:
    """The size the detector resized to, when that enlarged the image (None otherwise)."""
    w, h = result.image_size
    pre = getattr(spec, "preprocess", None)
    resize = getattr(pre, "resize", None)
    if result.resized and isinstance(resize, int) and min(w, h) < resize:
        return (resize, resize)
    if result.resized and isinstance(resize, tuple) and (w < resize[0] or h < resize[1]):
        return resize
    iw, ih = result.input_size
    if result.resized and (w < iw or h < ih):
        return (iw, ih)
    return None


def result_reasons(result: DetectionResult, facts: ForensicFacts | None = None, probe: Any = None, *,
                   quality_threshold: int = QUALITY_THRESHOLD, include_input: bool = True,
                   spec: Any = None) -> tuple[Reason, ...]:
    """Reasons to doubt one detector's result.

    Args:
        result: the detector's result (what it saw is read from ``image_size``, ``input_size``, ``crop_box``,
            ``resized``).
        facts: input facts (JPEG quality, double compression); None skips those reasons.
        probe: a :class:`core.verdict.robustness.ProbeResult` for the same image; flips become reasons.
        quality_threshold: JPEG quality below which the input counts as strongly compressed.
        include_input: include the file-level reasons (the ensemble lists those once instead).
        spec: the detector's :class:`~core.models.specs.DetectorSpec`, when known: its resize target tells whether the
            image was enlarged even when the final crop is smaller than the image (e.g. 240 px → 256 → crop 224).

    Returns:
        Reasons, strongest first; empty when none applies.

    Example:
        >>> [r.code for r in result_reasons(res_on_tiny_image)]
        ['upsampled_input']
    """
    det = result.detector_id
    out: list[Reason] = []
    if result.label == "no_face":
        out.append(Reason("no_face", f"{det} found no face, so it says nothing about this image", det, "strong"))
    w, h = result.image_size
    face_mode = is_face_result(result, spec)
    # A face model always resizes its face crop: neither the crop nor that resize is a doubt about the image.
    big = enlarged(result, spec) if not face_mode else None
    if big is not None:
        resize = getattr(getattr(spec, "preprocess", None), "resize", None)
        where = (f"is smaller than the {resize} px {det} resizes it to" if isinstance(resize, int) else
                 f"is smaller than {det}'s {big[0]}×{big[1]} input")
        out.append(Reason("upsampled_input", f"the image ({w}×{h}) {where}, so it was enlarged first, and "
                                             "interpolation adds the kind of traces detectors look for", det,
                          "strong"))
    elif not result.resized and min(w, h) < SMALL_SIDE and not face_mode:
        out.append(Reason("small_image", f"the image is only {w}×{h} pixels: few pixels carry the traces {det} "
                                         "relies on", det))
    box = result.crop_box
    if box is not None and not face_mode:
        bw, bh = box[2] - box[0], box[3] - box[1]
        coverage = (bw * bh) / float(w * h) if w and h else 1.0
        if not result.resized and (bw, bh) != (w, h) and coverage < 0.99:
            out.append(Reason("centre_crop", f"{det} analysed only the central {bw}×{bh} pixels ({coverage:.0%} of "
                                             "the image); anything outside was not looked at", det))
        elif result.resized and coverage < MIN_COVERAGE:
            out.append(Reason("partial_view", f"{det} saw only the centre of the image after resizing "
                                              f"({coverage:.0%} of it)", det))
    if include_input:
        out += input_reasons(facts, detector=det, quality_threshold=quality_threshold)
    flip = _probe_flips(probe, result)
    if flip:
        out.append(flip)
    if result.ok and not math.isnan(result.p_fake) and abs(result.p_fake - result.threshold) < NEAR_THRESHOLD:
        out.append(Reason("near_threshold", f"{det}'s p_fake {result.p_fake:.2f} is close to its threshold "
                                            f"{result.threshold:.2f}", det))
    return tuple(sorted(out, key=lambda r: r.severity != "strong"))


def ensemble_reasons(ens: EnsembleResult | None, results: Sequence[DetectionResult],
                     facts: ForensicFacts | None = None, probe: Any = None, *, disagreement: float = DISAGREEMENT,
                     quality_threshold: int = QUALITY_THRESHOLD,
                     specs: Mapping[str, Any] | None = None) -> tuple[Reason, ...]:
    """Reasons to doubt the ensemble verdict: the ensemble's own reasons, disagreement, the input, each detector.

    Use this list *instead of* ``ens.reasons`` (it contains them, converted to :class:`Reason`).

    Args:
        ens: the ensemble result (None: only the detectors' results are judged).
        results: the results that went into it (FACE's 'no face' included).
        facts: input facts; probe: a robustness probe of the same image.
        disagreement: p_fake range above which detectors disagree strongly.
        specs: ``ID:variant`` → DetectorSpec, passed on to :func:`result_reasons`.

    Example:
        >>> [r.code for r in ensemble_reasons(ens, results, facts)]
        ['ensemble', 'recompressed', 'centre_crop']
    """
    out: list[Reason] = []
    ens_texts = tuple(ens.reasons) if ens is not None else ()
    out += [Reason("ensemble", t, None, "strong" if "no detector" in t else "caution") for t in ens_texts]
    # Only detectors with a vote count in the disagreement and the split (FACE has no vote).
    weighted = {(v.detector_id, v.variant) for v in ens.votes} if ens is not None else None
    usable = [r for r in results if r.ok and not math.isnan(r.p_fake)
              and not is_face_result(r, (specs or {}).get(r.key))
              and (weighted is None or (r.detector_id, r.variant) in weighted)]
    if len(usable) >= 2:
        hi = max(usable, key=lambda r: r.p_fake)
        lo = min(usable, key=lambda r: r.p_fake)
        if hi.p_fake - lo.p_fake > disagreement:
            if not any("disagree strongly" in t for t in ens_texts):
                out.append(Reason("disagreement", f"detectors disagree strongly ({hi.detector_id} p_fake "
                                                  f"{hi.p_fake:.2f} vs {lo.detector_id} {lo.p_fake:.2f})",
                                  None, "strong"))
        else:
            n_fake = sum(r.label == "fake" for r in usable)
            if 0 < n_fake < len(usable):
                out.append(Reason("split", f"the detectors' verdicts are split ({n_fake} fake, "
                                           f"{len(usable) - n_fake} real)"))
    out += input_reasons(facts, quality_threshold=quality_threshold)
    for r in results:
        out += result_reasons(r, facts, probe, quality_threshold=quality_threshold, include_input=False,
                              spec=(specs or {}).get(r.key))
    seen: set[str] = set()
    unique = []
    for r in out:
        if r.text not in seen:
            seen.add(r.text)
            unique.append(r)
    return tuple(unique)


__all__ = ["Reason", "ForensicFacts", "facts_from_bytes", "exif_pixel_size", "is_face_result", "enlarged", "input_reasons", "result_reasons", "ensemble_reasons",
           "QUALITY_THRESHOLD", "DISAGREEMENT"]
