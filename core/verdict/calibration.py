"""Calibration profiles: per detector variant, a map from its raw score to a probability that means something.

No detector here is calibrated out of the box: a p_fake of 0.99 from one model and 0.6 from another can carry the
same evidence, and their logits live on different scales. A *profile*, fitted by ``python -m core calibrate`` on
the analyst's own labelled images (see :mod:`core.verdict.fitting`), holds for each detector variant a Platt or
isotonic calibrator and a decision threshold, keyed by the weights' sha256 (or by the score column of another
tool), plus an optional learned fusion (:class:`~core.verdict.stacking.Stacker`) and its provenance.

A profile applies only to the detector variant *and* the weights it was fitted on; for anything else it says
"not applied" and why. No torch, no streamlit.

Example:
    >>> profile = load_profile("newsroom.json")
    >>> app = profile.apply(results)
    >>> app.scores["NPR:original"].p_fake, app.notes
    (0.12, ('CLIP-D:original: calibration not applied: fitted on weights 1c9c9f48…, these are 0168451e….',))
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.convert import to_jsonable
from core.errors import ProfileError
from core.results import DetectionResult
from core.verdict.stacking import P_CLIP, Stacker, calibrated_logit

PROFILE_FORMAT = "deepfake-lens-calibration-profile"
PROFILE_VERSION = 1
MAX_PROFILE_BYTES = 16 * 1024 * 1024        # a profile is a few kB; anything huge is not one


@dataclass(frozen=True)
class Calibrator:
    """Raw logit → calibrated P(fake): Platt (``sigmoid(a·z + b)``) or isotonic (a monotone step curve)."""

    method: Literal["platt", "isotonic"]
    a: float = 1.0                    # Platt slope on the raw logit
    b: float = 0.0                    # Platt intercept
    x: tuple[float, ...] = ()         # isotonic: raw-logit knots (increasing)
    y: tuple[float, ...] = ()         # isotonic: P(fake) at each knot (non-decreasing)

    def predict(self, z: np.ndarray | float) -> np.ndarray:
        """Calibrated P(fake), clipped to [P_CLIP, 1 - P_CLIP] so its logit stays finite; NaN stays NaN."""
        arr = np.clip(np.asarray(z, dtype=np.float64), -1e6, 1e6)
        if self.method == "platt":
            p = 1.0 / (1.0 + np.exp(-np.clip(self.a * arr + self.b, -700, 700)))
        else:
            p = np.interp(arr, self.x, self.y)          # constant beyond the ends, like out_of_bounds="clip"
        return np.where(np.isfinite(arr), np.clip(p, P_CLIP, 1 - P_CLIP), np.nan)

    def to_dict(self) -> dict[str, Any]:
        if self.method == "platt":
            return {"method": "platt", "a": self.a, "b": self.b}
        return {"method": "isotonic", "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Calibrator":
        method = d.get("method")
        if method == "platt":
            a, b = float(d["a"]), float(d["b"])
            if not (math.isfinite(a) and math.isfinite(b)):
                raise ValueError("Platt parameters must be finite")
            return cls("platt", a, b)
        if method == "isotonic":
            x, y = tuple(float(v) for v in d["x"]), tuple(float(v) for v in d["y"])
            if not x or len(x) != len(y) or not all(map(math.isfinite, x + y)) or any(np.diff(x) < 0) \
                    or any(np.diff(y) < 0) or min(y) < 0 or max(y) > 1:
                raise ValueError("isotonic knots must be finite, increasing, and P(fake) in [0, 1]")
            return cls("isotonic", x=x, y=y)
        raise ValueError(f"unknown calibration method {method!r}")


@dataclass(frozen=True)
class DetectorCalibration:
    """One score source's calibration, its threshold and how well it did (cross-validated)."""

    key: str                          # "ID:variant" of our detector, or a CSV score column
    calibrator: Calibrator
    threshold: float                  # on the calibrated P(fake): fake when p > threshold
    threshold_rule: str               # "max balanced accuracy" | "FPR <= 5%"
    weights_sha256: str | None        # the checkpoint it was fitted on (None: a column of another tool)
    detector_id: str = ""
    variant: str = ""
    n_real: int = 0
    n_fake: int = 0
    before: Mapping[str, float | None] = field(default_factory=dict)   # auc, ece, log_loss of the raw p_fake
    after: Mapping[str, float | None] = field(default_factory=dict)    # the same, cross-validated, calibrated
    cv_log_loss: Mapping[str, float] = field(default_factory=dict)     # method → cross-validated log-loss

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"key": self.key, "calibrator": self.calibrator.to_dict(), "threshold": self.threshold,
                            "threshold_rule": self.threshold_rule, "weights_sha256": self.weights_sha256,
                            "detector_id": self.detector_id, "variant": self.variant, "n_real": self.n_real,
                            "n_fake": self.n_fake, "before": dict(self.before), "after": dict(self.after),
                            "cv_log_loss": dict(self.cv_log_loss)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DetectorCalibration":
        sha = d.get("weights_sha256")
        if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
            raise ValueError("weights_sha256 must be 64 hex digits or null")
        thr = float(d["threshold"])
        if not 0.0 <= thr <= 1.0:
            raise ValueError("threshold must be in [0, 1]")
        counts = [d.get("n_real", 0), d.get("n_fake", 0)]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts):
            raise ValueError("n_real and n_fake must be non-negative integers")
        losses = {k: v for k, v in _measures(d.get("cv_log_loss"), "cv_log_loss").items() if v is not None}
        return cls(str(d["key"]), Calibrator.from_dict(d["calibrator"]), thr, str(d.get("threshold_rule", "")),
                   sha, str(d.get("detector_id", "")), str(d.get("variant", "")), counts[0], counts[1],
                   _measures(d.get("before"), "before"), _measures(d.get("after"), "after"), losses)


def _measures(value: Any, name: str) -> dict[str, float | None]:
    """A stored ``{measure: number or null}`` mapping, checked (a profile is untrusted input)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a mapping")
    out: dict[str, float | None] = {}
    for k, v in value.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise ValueError(f"{name}.{k} must be a finite number or null")
        out[str(k)] = None if v is None else float(v)
    return out


@dataclass(frozen=True)
class CalibratedScore:
    """A detector's result after its profile calibration."""

    key: str
    raw_p_fake: float
    p_fake: float                     # calibrated P(fake)
    logit: float                      # logit of the calibrated P(fake) (finite)
    threshold: float                  # the profile's threshold
    label: Literal["real", "fake"]


@dataclass(frozen=True)
class ProfileApplication:
    """What a profile did to one image's results."""

    scores: Mapping[str, CalibratedScore]        # result key → calibrated score (only where it applied)
    notes: tuple[str, ...]                        # "KEY: calibration not applied: why." for the others
    stacked_p: float | None = None                # the learned fusion's P(fake) (None: no fusion or no input)
    stacked_inputs: tuple[str, ...] = ()          # the fusion's inputs present for this image


@dataclass(frozen=True)
class Profile:
    """A calibration profile (see the module docstring)."""

    detectors: Mapping[str, DetectorCalibration]
    stacker: Stacker | None
    provenance: Mapping[str, Any]                 # dataset fingerprint, counts, date, method, folds, tool version
    vote: Mapping[str, Any] | None = None         # the original weighted vote's metrics on the same data
    notes: tuple[str, ...] = ()
    source: str = ""                              # where it was read from (not stored)

    @property
    def name(self) -> str:
        """Short name for display: the file name, else the dataset's name."""
        return Path(self.source).name if self.source else str(self.provenance.get("name") or "uploaded profile")

    def entry(self, result: DetectionResult) -> tuple[DetectorCalibration | None, str]:
        """The calibration that applies to this result, or (None, why not).

        Matched by ``ID:variant``, or else by detector id and weights sha256: a result from the user's own file
        reports the variant "custom" while the evaluation that fitted the profile keyed it by the variant it ran as.
        """
        cal = self.detectors.get(result.key)
        if cal is None and result.weights_sha256:
            cal = next((c for c in self.detectors.values() if c.detector_id == result.detector_id
                        and c.weights_sha256 == result.weights_sha256), None)
        if cal is None:
            return None, f"the profile has no calibration for {result.key}"
        if cal.weights_sha256 is None:
            return None, (f"the profile calibrated a score column named {result.key} without recording its weights "
                          f"(fit it again with --weights {result.detector_id}=PATH)")
        if result.weights_sha256 != cal.weights_sha256:
            mine = (result.weights_sha256 or "unknown")[:12]
            return None, f"fitted on weights {cal.weights_sha256[:12]}…, this result came from weights {mine}…"
        return cal, ""

    def apply(self, results: Sequence[DetectionResult]) -> ProfileApplication:
        """Calibrate every result the profile applies to, and run the learned fusion over them.

        Results without a verdict (no face, error) are skipped silently: there is nothing to calibrate.
        """
        scores: dict[str, CalibratedScore] = {}
        z: dict[str, float] = {}              # the fusion's inputs are named by the profile's keys
        notes: list[str] = []
        for r in results:
            if not r.ok or not math.isfinite(r.logit):
                continue
            cal, why = self.entry(r)
            if cal is None:
                notes.append(f"{r.key}: calibration not applied: {why}.")
                continue
            p = float(cal.calibrator.predict(r.logit))
            scores[r.key] = CalibratedScore(r.key, r.p_fake, p, float(calibrated_logit(p)), cal.threshold,
                                            "fake" if p > cal.threshold else "real")
            z[cal.key] = scores[r.key].logit
        stacked, used = None, ()
        if self.stacker is not None:
            used = self.stacker.used(z)
            if used:
                stacked = self.stacker.predict(z)
        return ProfileApplication(scores, tuple(notes), stacked, used)

    def calibrate_column(self, key: str, logit: np.ndarray, weights_sha256: str | None = None,
                         *, by_column: bool = False) -> tuple[np.ndarray | None, str]:
        """Calibrated P(fake) for a whole score column (evaluation), or (None, why not).

        Args:
            key: the column's source key.
            logit: raw logits (NaN = unscored).
            weights_sha256: the weights the column came from (our detectors).
            by_column: match by name only (a column read from a predictions CSV carries no weights).
        """
        cal = self.detectors.get(key)
        if cal is None:
            return None, f"the profile has no calibration for {key}"
        if not by_column and cal.weights_sha256 is None:
            return None, f"the profile calibrated a score column named {key} without recording its weights"
        if not by_column and weights_sha256 != cal.weights_sha256:
            return None, f"fitted on weights {cal.weights_sha256[:12]}…, not on {str(weights_sha256)[:12]}…"
        return cal.calibrator.predict(logit), ""

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"format": PROFILE_FORMAT, "version": PROFILE_VERSION,
                            "provenance": dict(self.provenance),
                            "detectors": {k: c.to_dict() for k, c in self.detectors.items()},
                            "stacker": self.stacker.to_dict() if self.stacker else None,
                            "vote": dict(self.vote) if self.vote else None, "notes": list(self.notes)})

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON (atomically: a reader never sees half a file)."""
        out = Path(path).expanduser()
        tmp = out.with_name(out.name + ".part")
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False), encoding="utf-8")
            tmp.replace(out)
        except OSError as exc:
            raise ProfileError(f"{out}: cannot write the profile ({exc.strerror or exc}).") from None
        return out


def profile_from_dict(d: Any, source: str = "") -> Profile:
    """Validate a parsed profile document.

    Raises:
        ProfileError: not a profile of this tool, or a field is malformed (one sentence naming it).
    """
    where = source or "the profile"
    if not isinstance(d, dict) or d.get("format") != PROFILE_FORMAT:
        raise ProfileError(f"{where}: not a Deepfake Lens calibration profile (made by `python -m core calibrate`).")
    if d.get("version") != PROFILE_VERSION:
        raise ProfileError(f"{where}: profile version {d.get('version')!r} is not supported (expected "
                           f"{PROFILE_VERSION}); fit it again with this version.")
    dets = d.get("detectors")
    if not isinstance(dets, dict):
        raise ProfileError(f"{where}: 'detectors' must be a mapping.")
    parsed: dict[str, DetectorCalibration] = {}
    for key, entry in dets.items():
        try:
            parsed[str(key)] = DetectorCalibration.from_dict(entry)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"{where}: the calibration of {key} is malformed ({exc}).") from None
    try:
        stacker = Stacker.from_dict(d["stacker"]) if d.get("stacker") else None
    except ProfileError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    prov = d.get("provenance") if isinstance(d.get("provenance"), dict) else {}
    vote = d.get("vote")
    if vote is not None:
        try:
            nums = _measures({k: vote[k] for k in ("auc", "n")}, "vote")
            if nums["auc"] is None or nums["n"] is None:
                raise ValueError("vote.auc and vote.n must be numbers")
            vote = {**vote, "auc": nums["auc"], "n": int(nums["n"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"{where}: the original vote's metrics are malformed ({exc}).") from None
    notes = tuple(str(n) for n in d.get("notes") or () if isinstance(n, str))
    return Profile(parsed, stacker, prov, vote, notes, source)


def load_profile(source: str | Path | bytes) -> Profile:
    """Read a profile from a path or from the bytes of an uploaded file.

    Raises:
        ProfileError: unreadable, too large, not JSON or not a valid profile.
    """
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "the uploaded profile"
    else:
        path = Path(source).expanduser()
        name = str(path)
        try:
            if path.stat().st_size > MAX_PROFILE_BYTES:
                raise ProfileError(f"{path}: too large to be a calibration profile.")
            data = path.read_bytes()
        except OSError as exc:
            raise ProfileError(f"{path}: cannot read the profile ({exc.strerror or exc}).") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(f"{name}: too large to be a calibration profile.")
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{name}: not valid JSON ({exc}).") from None
    return profile_from_dict(doc, name if not isinstance(source, (bytes, bytearray)) else "")


__all__ = ["Calibrator", "DetectorCalibration", "CalibratedScore", "ProfileApplication", "Profile",
           "profile_from_dict", "load_profile", "PROFILE_FORMAT", "PROFILE_VERSION"]
