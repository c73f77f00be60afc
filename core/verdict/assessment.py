"""The headline: a graded assessment of one image that abstains when the evidence does not support an answer.

A level (``strong``, ``moderate``, ``weak`` evidence, or ``inconclusive``), a direction (``fake`` = AI-generated or
manipulated, ``real`` = camera-made) and the reasons, in plain words. The rules are data (the ``assessment``
section of configs/ensemble.yaml, documented there and in the README):

* each detector with a vote weight gives a voice, unless this image is outside what it covers — enlarged to its
  input size, below its model card's ``min_side`` — and a detector whose card lists a weakness that matches the
  image (JPEG compression on a recompressed file, …) counts only ``weakness_factor`` of a voice; the face-swap model
  (FACE) never votes, and doubts about detectors that did not run do not count;
* a voice *votes* when its confidence in its own verdict exceeds ``vote_threshold``; too few scored detectors or
  too few voters → inconclusive; the share of votes on the winning side sets the level;
* doubts cap the level: a tiny or small image, strong disagreement, a verdict that flips under the robustness
  probe, heavy recompression; with a calibration profile, a fused P(fake) in the uncertain band abstains.

A probability (``p_fake``) is reported only when calibrated scores exist (a profile applied). Pure functions; no
torch, no streamlit.

Example:
    >>> a = assess(results, facts=facts_from_bytes(data))
    >>> a.headline, a.reasons[0]
    ('Inconclusive: only 1 of 5 detectors was confident enough to vote (2 needed)', ...)
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.convert import sigmoid, to_jsonable
from core.errors import DeepfakeLensError
from core.models.registry import get_spec
from core.results import DetectionResult
from core.verdict.abstention import MIN_COVERAGE, QUALITY_THRESHOLD, ForensicFacts, enlarged, is_face_result
from core.verdict.calibration import Profile, ProfileApplication
from core.verdict.rules import LEVELS, Rules, load_rules

Level = Literal["strong", "moderate", "weak", "inconclusive"]
SAYS = {"fake": "AI-generated", "real": "camera-made"}


@dataclass(frozen=True)
class Voice:
    """One detector's part in the assessment."""

    key: str                   # ID:variant
    detector_id: str
    p_fake: float              # calibrated P(fake) when the profile applied, else the detector's own p_fake
    label: str                 # its verdict at its (calibrated) threshold
    confidence: float          # p_fake if label is fake else 1 - p_fake
    weight: float              # what its vote counts (1 or weakness_factor; the original weight under rule "vote")
    voted: bool                # confidence > vote_threshold and weight > 0
    calibrated: bool


@dataclass(frozen=True)
class Assessment:
    """The graded assessment of one image."""

    level: Level
    direction: Literal["fake", "real"] | None   # None when inconclusive
    p_fake: float | None                         # calibrated fused P(fake); None without a calibration profile
    reasons: tuple[str, ...]                     # what decided the level, basis first, then the doubts that acted
    headline: str                                # "Moderate evidence of AI generation", "Inconclusive: …"
    rule: str                                    # graded | vote | stacked (the rule actually used)
    excluded: tuple[str, ...] = ()               # "NPR does not vote: …" (one line per detector left out)
    calibration: tuple[str, ...] = ()            # what the profile did ("not applied: …", fusion used)
    voices: tuple[Voice, ...] = ()
    fused_by: str = ""                           # how p_fake was obtained ("" when p_fake is None)

    @property
    def voters(self) -> tuple[str, ...]:
        return tuple(v.detector_id for v in self.voices if v.voted)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: the contract keys ``level``, ``direction``, ``p_fake``, ``reasons`` first."""
        return to_jsonable({
            "level": self.level, "direction": self.direction, "p_fake": self.p_fake, "reasons": list(self.reasons),
            "headline": self.headline, "rule": self.rule, "excluded": list(self.excluded),
            "calibration": list(self.calibration), "fused_by": self.fused_by, "voters": list(self.voters),
            "voices": [dict(v.__dict__) for v in self.voices]})


def headline(level: Level, direction: str | None, first_reason: str = "") -> str:
    """The headline sentence of a level and direction."""
    if level == "inconclusive" or direction is None:
        return "Inconclusive" + (f": {first_reason}" if first_reason else "")
    what = "of AI generation" if direction == "fake" else "that the image is camera-made"
    return f"{level.capitalize()} evidence {what}"


# --------------------------------------------------------------------------------------------- voices

def _spec(result: DetectionResult, specs: Mapping[str, Any] | None) -> Any:
    if specs is not None and result.key in specs:
        return specs[result.key]
    try:
        return get_spec(result.key)
    except DeepfakeLensError:
        return None                       # a result of an unregistered detector: judged without a model card


def _out_of_coverage(r: DetectionResult, spec: Any) -> str:
    """Why this image is outside what the detector covers ("" when it is inside)."""
    w, h = r.image_size
    big = enlarged(r, spec)
    if big is not None:
        return (f"the image ({w}×{h}) is smaller than its {big[0]}×{big[1]} input, so it was enlarged first, and "
                "enlarging adds the kind of traces detectors look for")
    min_side = getattr(getattr(spec, "coverage", None), "min_side", None)
    if min_side and min(w, h) < min_side:
        return f"the image ({w}×{h}) is below the {min_side} px its model card says it needs"
    return ""


def _weakness(r: DetectionResult, spec: Any, facts: ForensicFacts | None, rules: Rules) -> str:
    """The model-card weakness this image hits ("" when none)."""
    weak = set(getattr(getattr(spec, "coverage", None), "weaknesses", ()) or ())
    if "jpeg" in weak and facts is not None and (facts.recompressed or facts.double_compression):
        what = (f"a JPEG of estimated quality {facts.jpeg_quality}" if facts.recompressed
                else "a JPEG compressed at least twice")
        return f"the file is {what} and its model card lists JPEG compression as a weakness"
    if "resize" in weak and facts is not None and facts.resized:
        return (f"EXIF says the camera wrote {facts.exif_size[0]}×{facts.exif_size[1]} pixels but the file has "
                f"{r.image_size[0]}×{r.image_size[1]} (resized), and its model card lists resizing as a weakness")
    if "small" in weak and min(r.image_size) < rules.small_side:
        return f"the image is small ({r.image_size[0]}×{r.image_size[1]}) and its model card lists small images"
    box = r.crop_box
    seen = (box[2] - box[0]) * (box[3] - box[1]) / max(1, r.image_size[0] * r.image_size[1]) if box else 1.0
    if "crop" in weak and seen < MIN_COVERAGE:
        return (f"it analysed only a {box[2] - box[0]}×{box[3] - box[1]} crop ({seen:.0%} of the image) and its "
                "model card lists partial views as a weakness")
    return ""


def _voices(results: Sequence[DetectionResult], rules: Rules, app: ProfileApplication | None,
            facts: ForensicFacts | None, specs: Mapping[str, Any] | None,
            vote_rule: bool) -> tuple[list[Voice], list[str], list[str]]:
    """(voices, excluded lines, down-weighting reasons)."""
    voices, excluded, weaker = [], [], []
    for r in results:
        spec = _spec(r, specs)
        weight = float(rules.weights.get(r.detector_id, getattr(spec, "ensemble_weight", 0.0) or 0.0))
        faces_only = getattr(getattr(spec, "coverage", None), "content", "") == "faces"
        if weight <= 0 or faces_only or is_face_result(r, spec):
            continue                      # no vote (FACE): shown separately, its doubts do not count here
        if not r.has_score:
            excluded.append(f"{r.detector_id} gave no verdict on this image")
            continue
        why = _out_of_coverage(r, spec)
        if why:
            excluded.append(f"{r.detector_id} does not vote: {why}")
            continue
        factor, weak = 1.0, _weakness(r, spec, facts, rules)
        if weak:
            factor = rules.weakness_factor
            if factor <= 0:
                excluded.append(f"{r.detector_id} does not vote: {weak}")
                continue
            weaker.append(f"{r.detector_id} counts {factor:g} of a vote: {weak}")
        cs = app.scores.get(r.key) if app is not None else None
        p, label = (cs.p_fake, cs.label) if cs else (r.p_fake, r.label)
        conf = p if label == "fake" else 1.0 - p
        w = factor * (weight * conf if vote_rule else 1.0)
        voices.append(Voice(r.key, r.detector_id, p, label, conf, w, conf > rules.vote_threshold and w > 0,
                            cs is not None))
    return voices, excluded, weaker


# --------------------------------------------------------------------------------------------- levels

class _Caps:
    """The running cap on the level and the reasons that set it (every doubt is listed, the lowest cap wins)."""

    def __init__(self) -> None:
        self.level: Level = "strong"
        self.reasons: list[str] = []
        self.abstain = ""                 # the first reason that made the result inconclusive

    def limit(self, level: str, why: str) -> None:
        if LEVELS.index(level) < LEVELS.index(self.level):
            self.level = level  # type: ignore[assignment]
        if level == "inconclusive" and not self.abstain:
            self.abstain = why
        self.reasons.append(why)


def _vote_level(voices: Sequence[Voice], rules: Rules, caps: _Caps) -> tuple[str | None, str]:
    """Direction from the votes and the basis sentence; caps the level by the number of voters and agreement."""
    voters = [v for v in voices if v.voted]
    few = not voices or len(voices) < rules.min_scored or len(voters) < rules.min_voters
    if not voices:
        caps.limit("inconclusive", "no detector with a vote scored this image")
    elif len(voices) < rules.min_scored:
        caps.limit("inconclusive", f"only {len(voices)} detector{'s' if len(voices) != 1 else ''} with a vote "
                                   f"scored this image ({rules.min_scored} needed)")
    elif len(voters) < rules.min_voters:
        caps.limit("inconclusive", f"only {len(voters)} of {len(voices)} detectors "
                                   f"{'was' if len(voters) == 1 else 'were'} confident enough to vote "
                                   f"({rules.min_voters} needed)")
    fake = sum(v.weight for v in voters if v.label == "fake")
    real = sum(v.weight for v in voters if v.label == "real")
    n_fake = sum(v.label == "fake" for v in voters)
    if not voters or fake == real:
        if voters:
            caps.limit("inconclusive", f"the voting detectors are split evenly ({n_fake} fake, "
                                       f"{len(voters) - n_fake} real)")
        return None, ""
    direction = "fake" if fake > real else "real"
    agreement = max(fake, real) / (fake + real)
    side = [v.detector_id for v in voters if v.label == direction]
    basis = (f"{len(side)} of {len(voters)} voting detector{'s' if len(voters) != 1 else ''} "
             f"say{'s' if len(voters) == 1 else ''} {SAYS[direction]} ({', '.join(side)})")
    level = next((name for name, lv in rules.levels.items()
                  if len(voters) >= lv.min_voters and agreement >= lv.min_agreement - 1e-9), "inconclusive")
    if level != "strong" and not (few and n_fake in (0, len(voters))):
        # (too few voters already said why; a unanimous handful needs no second sentence)
        weakest = rules.levels[next(reversed(rules.levels))]
        why = (f"the voting detectors are split ({n_fake} fake, {len(voters) - n_fake} real): {agreement:.0%} of "
               f"the votes agree" if n_fake not in (0, len(voters)) else
               f"only {len(voters)} detector{'s' if len(voters) != 1 else ''} voted")
        if level == "inconclusive" and agreement < weakest.min_agreement:
            why += f", {weakest.min_agreement:.0%} needed"
        caps.limit(level, why)
    return direction, basis


def _p_level(p: float, rules: Rules) -> str:
    conf = max(p, 1.0 - p)
    return next((name for name, lv in rules.levels.items() if conf >= lv.min_p - 1e-12), "inconclusive")


def _fused(voices: Sequence[Voice], app: ProfileApplication | None, use_stacker: bool) -> tuple[float | None, str]:
    """The calibrated fused P(fake) and how it was made (None without calibrated voices)."""
    if app is None:
        return None, ""
    if use_stacker and app.stacked_p is not None:
        return app.stacked_p, f"learned fusion of {len(app.stacked_inputs)} calibrated detector(s)"
    cal = [v for v in voices if v.calibrated]
    if not cal:
        return None, ""
    z = sum(math.log(v.p_fake / (1.0 - v.p_fake)) for v in cal) / len(cal)
    return float(sigmoid(z)), f"mean of {len(cal)} calibrated logit(s)"


def _size_doubt(size: tuple[int, int] | None, rules: Rules, caps: _Caps) -> None:
    """A tiny image abstains (checked first, so the headline names it); a small one is capped."""
    if size is not None and min(size) < rules.tiny_side:
        caps.limit("inconclusive", f"the image is only {size[0]}×{size[1]} pixels (shorter side below "
                                   f"{rules.tiny_side}): too small to judge")
    elif size is not None and min(size) < rules.small_side:
        caps.limit(rules.caps["small_image"], f"the image is small ({size[0]}×{size[1]}): few pixels carry the "
                                              "traces detectors rely on")


def _doubts(voices: Sequence[Voice], facts: ForensicFacts | None, probe: Any, rules: Rules, caps: _Caps) -> None:
    """The doubts that cap the level: disagreement, probe flips, recompression."""
    if len(voices) >= 2:
        hi, lo = max(voices, key=lambda v: v.p_fake), min(voices, key=lambda v: v.p_fake)
        if hi.p_fake - lo.p_fake > rules.disagreement:
            caps.limit(rules.caps["disagreement"], f"detectors disagree strongly ({hi.detector_id} p_fake "
                                                   f"{hi.p_fake:.2f} vs {lo.detector_id} {lo.p_fake:.2f})")
    for s in getattr(probe, "stability", ()) or ():
        v = next((v for v in voices if v.voted and s.detector in (v.detector_id, v.key)), None)
        if v is not None and s.flips:
            labels = {c.key: c.label for c in probe.conditions}
            caps.limit(rules.caps["probe_flip"], f"{v.detector_id}'s verdict flips under "
                                                 f"{', '.join(labels.get(k, k) for k in s.flips)} (robustness probe)")
    if facts is not None and facts.recompressed:
        caps.limit(rules.caps["recompressed"], f"the file is a JPEG of estimated quality {facts.jpeg_quality} "
                                               f"(below {QUALITY_THRESHOLD}): compression removes fine traces")
    if facts is not None and facts.double_compression:
        caps.limit(rules.caps["double_jpeg"], "the JPEG looks compressed at least twice (re-saved or shared)")


# --------------------------------------------------------------------------------------------- assess

def assess(results: Sequence[DetectionResult], *, rules: Rules | None = None, profile: Profile | None = None,
           facts: ForensicFacts | None = None, probe: Any = None, specs: Mapping[str, Any] | None = None,
           rule: str | None = None) -> Assessment:
    """The graded assessment of one image.

    Args:
        results: every detector's result on the image (FACE included: it is left out of the vote).
        rules: the rules (default: :func:`load_rules` of configs/ensemble.yaml).
        profile: a calibration profile; applied to the results it was fitted on (others: "not applied").
        facts: input facts (size, JPEG quality, double compression, EXIF size) for the doubts and coverage.
        probe: a :class:`~core.verdict.robustness.ProbeResult` of the same image, when it was run.
        specs: ``ID:variant`` → DetectorSpec (default: looked up in the registry).
        rule: override ``rules.rule``: graded | vote | stacked.

    Returns:
        An :class:`Assessment`; ``direction`` is None exactly when the level is inconclusive.

    Example:
        >>> assess([clip_fake, npr_fake, r50_fake]).headline
        'Strong evidence of AI generation'
    """
    rules = rules or load_rules()
    chosen = rule or rules.rule
    app = profile.apply(results) if profile is not None else None
    calib = list(app.notes) if app is not None else []
    if chosen == "stacked" and (profile is None or profile.stacker is None or app is None or app.stacked_p is None):
        calib.append("the learned fusion was asked for but no applied profile has one: the graded rule is used")
        chosen = "graded"
    voices, excluded, weaker = _voices(results, rules, app, facts, specs, chosen == "vote")
    caps = _Caps()
    size = facts.image_size if facts is not None and facts.image_size else \
        (results[0].image_size if results else None)
    _size_doubt(size, rules, caps)
    direction, basis = _vote_level(voices, rules, caps)
    p, fused_by = _fused(voices, app, use_stacker=chosen in ("stacked", "graded"))
    if p is not None:
        p_dir = "fake" if p > 0.5 else "real"
        lo, hi = rules.uncertain_band
        if lo <= p <= hi:
            caps.limit("inconclusive", f"the calibrated P(fake) {p:.2f} ({fused_by}) is inside the uncertain band "
                                       f"[{lo:.2f}, {hi:.2f}]")
        elif chosen == "stacked":
            direction, basis = p_dir, f"the learned fusion gives a calibrated P(fake) of {p:.2f}"
        elif direction is not None and p_dir != direction:
            caps.limit("inconclusive", f"the calibrated P(fake) {p:.2f} ({fused_by}) points the other way from "
                                       "the votes")
        p_level = _p_level(p, rules)
        if LEVELS.index(p_level) < LEVELS.index(caps.level):
            caps.limit(p_level, f"the calibrated P(fake) is {p:.2f} ({fused_by})")
    _doubts(voices, facts, probe, rules, caps)
    level = caps.level
    if level == "inconclusive":
        direction = None
    # an abstention leads with why; a level leads with the votes that carry it
    reasons = (caps.reasons + weaker + ([f"the votes lean: {basis}"] if basis else [])) if level == "inconclusive" \
        else ([basis] if basis else []) + weaker + caps.reasons
    first = caps.abstain if level == "inconclusive" else ""
    return Assessment(level, direction, p, tuple(reasons), headline(level, direction, first), chosen,
                      tuple(excluded), tuple(calib), tuple(voices), fused_by)


__all__ = ["Assessment", "Voice", "assess", "headline", "Level", "LEVELS", "Rules", "load_rules"]
