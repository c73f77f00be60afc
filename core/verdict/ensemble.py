"""Ensemble of detector results: the seed's weighted vote (exactly), logit fusions and reasons to doubt.

Pure functions over :class:`~core.results.DetectionResult`; no torch, no streamlit.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from core import settings
from core.convert import safe_logit, sigmoid, to_jsonable
from core.errors import ConfigError
from core.models.registry import list_specs
from core.results import DetectionResult

Verdict = Literal["FAKE", "REAL", "UNCERTAIN"]
CONFIG = settings.ENSEMBLE_CONFIG
#: Said next to the mean-logit and soft-OR numbers wherever they are shown (JSON key ``fusions_note``).
FUSIONS_NOTE = "uncalibrated fusions of scores on different scales, not probabilities"


@dataclass(frozen=True)
class EnsembleConfig:
    """Rule parameters (defaults from configs/ensemble.yaml)."""

    vote_threshold: float = 0.6
    weights: Mapping[str, float] = field(default_factory=dict)     # detector id → weight
    uncertain_band: tuple[float, float] = (0.4, 0.6)
    disagreement: float = 0.6


def load_config(path: str | Path | None = None) -> EnsembleConfig:
    """Read configs/ensemble.yaml; each detector's weight is its YAML's ``ensemble_weight`` (default variant first).

    Raises:
        ConfigError: the file is not a YAML mapping or a value has the wrong type.
    """
    data = read_yaml(path)
    weights: dict[str, float] = {}
    for s in sorted(list_specs(), key=lambda s: not s.default):     # the default variant's weight wins
        if s.ensemble_weight > 0:
            weights.setdefault(s.id, s.ensemble_weight)
    try:
        band = data.get("uncertain_band", [0.4, 0.6])
        return EnsembleConfig(vote_threshold=float(data.get("vote_threshold", 0.6)), weights=weights,
                              uncertain_band=(float(band[0]), float(band[1])),
                              disagreement=float(data.get("disagreement", 0.6)))
    except (TypeError, ValueError, IndexError, KeyError) as exc:
        raise ConfigError(f"{path or CONFIG}: vote_threshold, uncertain_band and disagreement must be numbers "
                          f"({exc}).") from None


def read_yaml(path: str | Path | None = None) -> dict:
    """The parsed ensemble YAML (default: configs/ensemble.yaml) as a mapping; ConfigError otherwise."""
    where = Path(path or CONFIG)
    try:
        data = yaml.safe_load(where.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}: cannot read the ensemble rules ({exc}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the ensemble rules must be a YAML mapping.")
    return data


@dataclass(frozen=True)
class Vote:
    """One detector's part in the vote."""

    detector_id: str
    variant: str
    p_fake: float
    logit: float
    label: str                  # the detector's own verdict at its threshold
    score: float                # confidence of its own verdict: p_fake if fake else 1 - p_fake
    weight: float               # configured weight
    effective_weight: float     # weight renormalised over the detectors that ran
    voted: bool                 # score > vote_threshold
    elapsed_s: float


@dataclass(frozen=True)
class EnsembleResult:
    """The combined verdict and everything needed to explain it."""

    verdict: Verdict
    confidence: float           # (votes_real + votes_fake) / sum of weights that voted; NaN with no vote
    votes_fake: float
    votes_real: float
    voted_weight: float
    vote_threshold: float
    votes: tuple[Vote, ...]
    excluded: tuple[str, ...]   # sentences: detectors that did not take part and why
    p_mean_logit: float         # sigmoid(weighted mean logit)
    p_soft_or: float            # 1 - prod(1 - p_fake)
    reasons: tuple[str, ...]    # reasons to doubt the verdict (empty when none apply)
    explanation: str            # plain-language summary

    @property
    def n_voted(self) -> int:
        """Detectors confident enough to vote."""
        return sum(v.voted for v in self.votes)

    @property
    def mean_logit(self) -> float:
        """The weighted mean of the (uncalibrated) logits, i.e. ``logit(p_mean_logit)``; NaN when nothing ran."""
        return float("nan") if math.isnan(self.p_mean_logit) else float(safe_logit(self.p_mean_logit))

    @property
    def summary(self) -> str:
        """One plain line, e.g. "weighted vote of the original app: FAKE, 1 of 5 detectors voted"."""
        return (f"weighted vote of the original app: {self.verdict}, {self.n_voted} of {len(self.votes)} "
                f"detector{'s' if len(self.votes) != 1 else ''} voted")

    def to_dict(self) -> dict:
        """JSON-ready view."""
        return to_jsonable({
            "summary": self.summary, "n_voted": self.n_voted, "verdict": self.verdict, "confidence": self.confidence,
            "votes_fake": self.votes_fake,
            "votes_real": self.votes_real, "voted_weight": self.voted_weight, "vote_threshold": self.vote_threshold,
            "votes": [v.__dict__ for v in self.votes], "excluded": list(self.excluded),
            "p_mean_logit": self.p_mean_logit, "p_soft_or": self.p_soft_or, "fusions_note": FUSIONS_NOTE,
            "reasons": list(self.reasons),
            "explanation": self.explanation,
        })


def ensemble(results: Sequence[DetectionResult], config: EnsembleConfig | None = None, *,
             missing: Mapping[str, str] | None = None) -> EnsembleResult:
    """Combine detector results with the seed's weighted vote.

    Args:
        results: one result per detector (results without a verdict, e.g. 'no face', are excluded).
        config: rule parameters; default :func:`load_config`.
        missing: detector id → why it did not run (e.g. "weights not installed"), reported in ``excluded``.

    Returns:
        The :class:`EnsembleResult`. Ties, including "nobody voted", are UNCERTAIN.

    Example:
        >>> ensemble([r_clip, r_npr]).verdict
        'FAKE'
    """
    cfg = config or load_config()
    excluded = [f"{det}: {why} — excluded from the vote." for det, why in (missing or {}).items()]
    usable: list[DetectionResult] = []
    for r in results:
        w = float(cfg.weights.get(r.detector_id, 0.0))
        if not r.has_score:                       # no verdict, or a NaN/inf score: never votes
            excluded.append(f"{r.detector_id}: no verdict ({r.label if not r.ok else 'non-finite score'}) — excluded "
                            "from the vote.")
        elif w <= 0:
            excluded.append(f"{r.detector_id}: weight 0 — shown, not voting.")
        else:
            usable.append(r)
    total_w = sum(float(cfg.weights[r.detector_id]) for r in usable)
    votes: list[Vote] = []
    v_fake = v_real = voted_w = 0.0
    for r in usable:
        w = float(cfg.weights[r.detector_id])
        score = r.p_fake if r.label == "fake" else 1.0 - r.p_fake
        voted = score > cfg.vote_threshold
        if voted:
            voted_w += w
            if r.label == "fake":
                v_fake += w * score
            else:
                v_real += w * score
        votes.append(Vote(r.detector_id, r.variant, r.p_fake, r.logit, r.label, score, w,
                          w / total_w if total_w else 0.0, voted, r.elapsed_s))
    if v_fake > v_real:
        verdict: Verdict = "FAKE"
    elif v_real > v_fake:
        verdict = "REAL"
    else:
        verdict = "UNCERTAIN"
    confidence = (v_real + v_fake) / voted_w if voted_w else float("nan")

    if usable:
        mean_logit = sum(float(cfg.weights[r.detector_id]) * max(-50.0, min(50.0, r.logit)) for r in usable) / total_w
        p_mean = sigmoid(mean_logit)
        p_or = 1.0 - math.prod(1.0 - r.p_fake for r in usable)
    else:
        p_mean = p_or = float("nan")

    reasons: list[str] = []
    if not usable:
        reasons.append("no detector with a vote weight gave a verdict")
    elif voted_w == 0:
        reasons.append(f"no detector was confident enough to vote (all below {cfg.vote_threshold:.2f})")
    elif verdict == "UNCERTAIN":
        reasons.append("the fake and real votes are tied")
    if len(usable) == 1:
        reasons.append(f"only one detector ({usable[0].detector_id}) took part")
    if len(usable) >= 2:
        ps = [r.p_fake for r in usable]
        if max(ps) - min(ps) > cfg.disagreement:
            hi = max(usable, key=lambda r: r.p_fake)
            lo = min(usable, key=lambda r: r.p_fake)
            reasons.append(f"detectors disagree strongly ({hi.detector_id} p_fake {hi.p_fake:.2f} vs "
                           f"{lo.detector_id} {lo.p_fake:.2f})")
    # The mean-logit and soft-OR numbers mix uncalibrated scores on different scales: they are shown as fusions,
    # never used here as probabilities (the graded assessment uses calibrated scores only).
    text = _explanation(verdict, v_fake, v_real, votes, confidence, cfg, missing or {}, results, usable)
    return EnsembleResult(verdict, confidence, v_fake, v_real, voted_w, cfg.vote_threshold, tuple(votes),
                          tuple(excluded), p_mean, p_or, tuple(reasons), text)


def _explanation(verdict: Verdict, v_fake: float, v_real: float, votes: Sequence[Vote], confidence: float,
                 cfg: EnsembleConfig, missing: Mapping[str, str], results: Sequence[DetectionResult],
                 usable: Sequence[DetectionResult]) -> str:
    """The vote in one paragraph; counts only what actually took part (FACE ran but has no vote)."""
    n_voted = sum(v.voted for v in votes)
    if verdict == "UNCERTAIN":
        why = ("no detector with a vote weight gave a verdict" if not votes else
               f"no detector was confident enough to vote (all at or below {cfg.vote_threshold:.2f})" if not n_voted
               else "the fake and real votes are tied")
        text = f"No verdict from the weighted vote: {why}."
    else:
        side, other = (v_fake, v_real) if verdict == "FAKE" else (v_real, v_fake)
        text = (f"{verdict}: weighted votes {side:.3f} vs {other:.3f} from {n_voted} of {len(votes)} detectors "
                f"(a detector votes only above {cfg.vote_threshold:.2f} confidence in its own verdict); weighted "
                f"confidence {confidence:.2f} (a share of the votes, not a probability).")
    if missing:
        text += (f" {len(missing)} detector{'s' if len(missing) != 1 else ''} did not run ({', '.join(missing)}); "
                 f"the weights are renormalised over the {len(usable)} with a vote weight that gave a verdict.")
    silent = sorted({r.detector_id for r in results} - {r.detector_id for r in usable})
    if silent:
        text += f" {', '.join(silent)} ran without a vote (no vote weight or no verdict on this image)."
    return text
