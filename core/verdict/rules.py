"""The assessment's rules as data: the ``assessment`` section of configs/ensemble.yaml, validated.

Every key is documented in configs/ensemble.yaml and the README; a typo or a wrong type fails with one sentence
naming the key. No torch, no streamlit.

Example:
    >>> load_rules().levels["moderate"].min_agreement
    0.75
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.verdict.ensemble import CONFIG, load_config, read_yaml

LEVELS = ("inconclusive", "weak", "moderate", "strong")       # weakest first
RULES = ("graded", "vote", "stacked")
CAPS = ("disagreement", "probe_flip", "recompressed", "double_jpeg", "small_image")


@dataclass(frozen=True)
class LevelRule:
    """What a level needs."""

    min_voters: int
    min_agreement: float          # share of the (weighted) votes on the winning side
    min_p: float                  # max(p, 1 - p) of a calibrated fused P(fake), when there is one


@dataclass(frozen=True)
class Rules:
    """The graded assessment's rules (defaults = the shipped configs/ensemble.yaml)."""

    rule: str = "graded"
    vote_threshold: float = 0.6
    uncertain_band: tuple[float, float] = (0.4, 0.6)
    disagreement: float = 0.6
    min_scored: int = 2
    min_voters: int = 2
    tiny_side: int = 64
    small_side: int = 128
    levels: Mapping[str, LevelRule] = field(default_factory=lambda: {
        "strong": LevelRule(3, 1.0, 0.95), "moderate": LevelRule(2, 0.75, 0.85), "weak": LevelRule(2, 0.65, 0.65)})
    caps: Mapping[str, str] = field(default_factory=lambda: {
        "disagreement": "weak", "probe_flip": "weak", "recompressed": "moderate", "double_jpeg": "moderate",
        "small_image": "moderate"})
    weakness_factor: float = 0.5
    weights: Mapping[str, float] = field(default_factory=dict)   # detector id → vote weight (YAML ensemble_weight)


def _num(where: str, value: Any, lo: float, hi: float, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ConfigError(f"{where}: must be {'an integer' if kind is int else 'a number'} (got {value!r}).")
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: must be between {lo} and {hi} (got {value}).")
    return kind(value)


def _levels(where: str, data: Any) -> dict[str, LevelRule]:
    if not isinstance(data, dict) or set(data) != {"strong", "moderate", "weak"}:
        raise ConfigError(f"{where}: must map exactly strong, moderate and weak to their needs.")
    out = {}
    for name in ("strong", "moderate", "weak"):          # strongest first: the first level met wins
        lv = data[name]
        if not isinstance(lv, dict) or set(lv) != {"min_voters", "min_agreement", "min_p"}:
            raise ConfigError(f"{where}.{name}: needs exactly min_voters, min_agreement and min_p.")
        out[name] = LevelRule(_num(f"{where}.{name}.min_voters", lv["min_voters"], 1, 1000, int),
                              _num(f"{where}.{name}.min_agreement", lv["min_agreement"], 0.5, 1.0),
                              _num(f"{where}.{name}.min_p", lv["min_p"], 0.5, 1.0))
    return out


def load_rules(path: str | Path | None = None, *, weights: Mapping[str, float] | None = None) -> Rules:
    """Read and validate the rules (default file: configs/ensemble.yaml).

    Args:
        path: the ensemble YAML.
        weights: detector id → vote weight (default: each detector YAML's ``ensemble_weight``).

    Raises:
        ConfigError: one sentence naming the file and the key.
    """
    where = str(path or CONFIG)
    data = read_yaml(path)
    cfg = load_config(path)
    a = data.get("assessment") or {}
    if not isinstance(a, dict):
        raise ConfigError(f"{where}: 'assessment' must be a mapping.")
    known = {"rule", "min_scored", "min_voters", "tiny_side", "small_side", "levels", "caps", "weakness_factor"}
    if set(a) - known:
        raise ConfigError(f"{where}: unknown key(s) in assessment: {sorted(set(a) - known)}; allowed: {sorted(known)}.")
    base = Rules()
    rule = a.get("rule", base.rule)
    if rule not in RULES:
        raise ConfigError(f"{where}: assessment.rule must be one of {RULES} (got {rule!r}).")
    caps = dict(base.caps)
    for k, v in (a.get("caps") or {}).items():
        if k not in CAPS or v not in LEVELS:
            raise ConfigError(f"{where}: assessment.caps.{k}: the key must be one of {CAPS} and the value one of "
                              f"{LEVELS}.")
        caps[k] = v
    return Rules(
        rule=rule, vote_threshold=cfg.vote_threshold, uncertain_band=cfg.uncertain_band, disagreement=cfg.disagreement,
        min_scored=_num(f"{where}: assessment.min_scored", a.get("min_scored", base.min_scored), 1, 1000, int),
        min_voters=_num(f"{where}: assessment.min_voters", a.get("min_voters", base.min_voters), 1, 1000, int),
        tiny_side=_num(f"{where}: assessment.tiny_side", a.get("tiny_side", base.tiny_side), 0, 1e6, int),
        small_side=_num(f"{where}: assessment.small_side", a.get("small_side", base.small_side), 0, 1e6, int),
        levels=_levels(f"{where}: assessment.levels", a["levels"]) if "levels" in a else base.levels,
        caps=caps,
        weakness_factor=_num(f"{where}: assessment.weakness_factor", a.get("weakness_factor", base.weakness_factor),
                             0.0, 1.0),
        weights=dict(cfg.weights if weights is None else weights))


__all__ = ["Rules", "LevelRule", "load_rules", "LEVELS", "RULES", "CAPS"]
