"""What an evaluation produces: rows, score sources, the run and its report (frozen dataclasses).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.evaluation.metrics import BinaryMetrics

ENSEMBLE_KEY = "ensemble"


@dataclass(frozen=True)
class SourceInfo:
    """A column of scores: one of our detectors, the ensemble, or a column of a predictions CSV."""

    key: str                               # "NPR:original", "ensemble", or the CSV column's name
    kind: str                              # detector | ensemble | external
    name: str                              # shown to the user
    threshold: float = 0.5                 # default p_fake threshold (the detector's own)
    detector_id: str = ""
    variant: str = ""
    weights_sha256: str | None = None
    backbone_sha256: str | None = None
    preprocessing: str = ""
    probabilistic: bool = True             # False: scores are not calibrated probabilities (ECE is n/a)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Row:
    """One input file in the results (a dataset item after the run)."""

    path: str
    label: int | None
    group: str
    status: str                            # ok | unlabelled | skipped | error | cancelled
    reason: str
    sha256: str = ""


@dataclass(frozen=True)
class EvalRun:
    """Everything an evaluation produced. Scores are arrays aligned with ``rows`` (NaN = no score)."""

    dataset_name: str
    dataset_kind: str
    rows: tuple[Row, ...]
    sources: tuple[SourceInfo, ...]
    logit: Mapping[str, np.ndarray]        # source key → logit per row
    p_fake: Mapping[str, np.ndarray]       # source key → P(fake) per row
    unscored: Mapping[str, Mapping[int, str]]   # source key → row index → why an ok row has no score
    verdict: np.ndarray | None = None      # ensemble verdict per row: 1 fake, 0 real, -1 uncertain, -2 none
    thumbnails: Mapping[int, bytes] = field(default_factory=dict)   # row index → small JPEG
    cancelled: bool = False
    elapsed_s: float = 0.0
    computed: int = 0                      # (image, detector) pairs run through a model
    from_cache: int = 0                    # (image, detector) pairs read from the cache
    notes: tuple[str, ...] = ()
    batch_size: int = 8

    def source(self, key: str) -> SourceInfo:
        return next(s for s in self.sources if s.key == key)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("ok", "unlabelled", "skipped", "error", "cancelled")}
        for r in self.rows:
            out[r.status] = out.get(r.status, 0) + 1
        return out


@dataclass(frozen=True)
class SourceReport:
    """Metrics of one source: overall and per group."""

    source: SourceInfo
    overall: BinaryMetrics
    groups: Mapping[str, BinaryMetrics]
    group_notes: Mapping[str, str]         # group → how it was evaluated (e.g. paired with the ungrouped reals)
    threshold: float | None                # p_fake threshold used (None for the ensemble's verdict)


@dataclass(frozen=True)
class EvalReport:
    """Metrics of every source at one threshold setting."""

    sources: Mapping[str, SourceReport]
    threshold: float | None                # the global threshold (None: each detector's own)


@dataclass(frozen=True)
class ExternalScores:
    """Score columns from a predictions CSV, keyed by the CSV's path/id cell (sanitised)."""

    sources: tuple[SourceInfo, ...]
    ids: tuple[str, ...]                   # one per CSV row
    logit: Mapping[str, np.ndarray]        # source key → per CSV row
    p_fake: Mapping[str, np.ndarray]


