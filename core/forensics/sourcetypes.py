"""IPTC DigitalSourceType: the declared origin of an image (camera, edit, generative AI), from XMP or C2PA."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# IPTC NewsCodes "digitalsourcetype" (https://cv.iptc.org/newscodes/digitalsourcetype/): code → (label, AI?)
DIGITAL_SOURCE_TYPES: dict[str, tuple[str, bool]] = {
    "trainedAlgorithmicMedia": ("created by a trained AI model (generative AI)", True),
    "compositeWithTrainedAlgorithmicMedia": ("composite that includes generative-AI elements", True),
    "algorithmicMedia": ("created purely by an algorithm, without sampled training data", True),
    "compositeSynthetic": ("composite that includes synthetic elements", True),
    "algorithmicallyEnhanced": ("camera image enhanced by an algorithm", False),
    "digitalCapture": ("original digital capture (camera)", False),
    "computationalCapture": ("computational capture (e.g. phone multi-frame processing)", False),
    "negativeFilm": ("scan of a negative film", False),
    "positiveFilm": ("scan of a positive film", False),
    "print": ("scan of a print", False),
    "humanEdits": ("edited by a person", False),
    "minorHumanEdits": ("minor edits by a person", False),
    "compositeCapture": ("composite of captured elements", False),
    "dataDrivenMedia": ("rendered from data (e.g. a chart)", False),
    "digitalArt": ("drawn or painted digitally by a person", False),
    "virtualRecording": ("recording of a virtual scene", False),
    "screenCapture": ("screen capture", False),
    "digitalCreation": ("digital creation (deprecated code)", False),
    "softwareImage": ("created by software (deprecated code)", False),
}
_DST_RE = re.compile(r"digitalsourcetype/([A-Za-z]{1,64})")
MAX_SOURCE_TYPES = 32       # a file declaring more distinct codes than this is listing junk; the rest is ignored


@dataclass(frozen=True)
class SourceType:
    """A DigitalSourceType value found in the file (XMP, or a C2PA action)."""

    code: str            # e.g. trainedAlgorithmicMedia
    label: str           # human meaning
    generated: bool      # True for the generative / synthetic codes (flagged)
    where: str           # XMP | C2PA

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def digital_source_types(text: str, where: str = "XMP") -> tuple[SourceType, ...]:
    """Every IPTC DigitalSourceType URI in ``text`` (each code once, in order of appearance).

    Example:
        >>> [s.code for s in digital_source_types("http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture")]
        ['digitalCapture']
    """
    seen: dict[str, None] = {}
    for m in _DST_RE.finditer(text or ""):
        seen.setdefault(m.group(1))
        if len(seen) >= MAX_SOURCE_TYPES:
            break
    out = []
    for code in seen:
        label, gen = DIGITAL_SOURCE_TYPES.get(code, (f"unrecognised code {code!r}", False))
        out.append(SourceType(code, label, gen, where))
    return tuple(out)


__all__ = ["DIGITAL_SOURCE_TYPES", "SourceType", "digital_source_types"]
