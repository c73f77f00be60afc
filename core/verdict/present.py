"""Plain-language text of a verdict, shared by the CLI, the case report and the app's pages.

Every surface shows the same words in the same order: the graded assessment's headline (with a calibrated P(fake)
only when a calibration profile gave one), its reasons, the detectors left out and what the profile did, then —
beneath it — the original app's weighted vote, labelled as such. Pure functions returning strings; no torch, no
streamlit (pages add their own colours from :data:`DIRECTION_COLOUR`).

Example:
    >>> print("\\n".join(assessment_lines(a)))
    Inconclusive: only 1 of 5 detectors was confident enough to vote (2 needed)
      - 1 of 1 voting detector says AI-generated (CLIP-D)
      - only 1 of 5 detectors was confident enough to vote (2 needed)
      · no probability: the detectors' scores are uncalibrated (fit a profile with `python -m core calibrate`)
"""
from __future__ import annotations

import math
from typing import Any

from core.results import DetectionResult
from core.verdict.assessment import Assessment
from core.verdict.calibration import Profile
from core.verdict.ensemble import FUSIONS_NOTE, EnsembleResult
from core.verdict.rules import Rules, load_rules

#: A colour name per direction (None: inconclusive), as Streamlit's ``:red[...]`` markup and the report use.
DIRECTION_COLOUR = {"fake": "red", "real": "green", None: "orange"}
#: Said next to the headline whenever no calibration profile gave a probability.
UNCALIBRATED_NOTE = ("no probability: the detectors' scores are uncalibrated (a calibration profile fitted on "
                     "your labelled images with `python -m core calibrate` gives one)")


def level_meanings(rules: Rules | None = None) -> dict[str, str]:
    """What each level needs under these rules (default: configs/ensemble.yaml), for legends and help texts.

    Example:
        >>> level_meanings()["weak"]
        'at least 2 voting detectors, at least 65% of the votes agreeing, calibrated P(fake) at least 0.65 ...'
    """
    rules = rules or load_rules()
    out = {}
    for name, lv in rules.levels.items():
        agree = "all votes agreeing" if lv.min_agreement >= 1.0 else \
            f"at least {lv.min_agreement:.0%} of the votes agreeing"
        out[name] = (f"at least {lv.min_voters} voting detectors, {agree}, calibrated P(fake) at least {lv.min_p:.2f} (or at most {1 - lv.min_p:.2f}) when "
                     "a profile gives one, and no doubt that caps the level lower")
    capped = ", ".join(f"{k.replace('_', ' ')} → {v}" for k, v in rules.caps.items())
    out["inconclusive"] = (f"fewer than {rules.min_scored} detectors scored or fewer than {rules.min_voters} voted, "
                           f"the votes are split, the image's shorter side is below {rules.tiny_side} px, or a "
                           f"calibrated P(fake) lies in [{rules.uncertain_band[0]:.2f}, "
                           f"{rules.uncertain_band[1]:.2f}]: no answer is given. Caps: {capped}")
    return out


def headline_text(a: Assessment) -> str:
    """The headline with its calibrated P(fake) when there is one.

    Example:
        >>> headline_text(a)
        'Moderate evidence of AI generation (calibrated P(fake) 0.91, learned fusion of 2 calibrated detector(s))'
    """
    if a.p_fake is None:
        return a.headline
    return f"{a.headline} (calibrated P(fake) {a.p_fake:.2f}, {a.fused_by})"


def assessment_lines(a: Assessment) -> list[str]:
    """The headline, then ``  - reason`` lines, then ``  · note`` lines (detectors left out, the profile's notes,
    and the uncalibrated note when there is no probability)."""
    lines = [headline_text(a)]
    lines += [f"  - {r}" for r in a.reasons]
    notes = list(a.excluded) + list(a.calibration) + ([] if a.p_fake is not None else [UNCALIBRATED_NOTE])
    lines += [f"  · {n}" for n in notes]
    return lines


def vote_line(ens: EnsembleResult) -> str:
    """The original app's vote as one line, e.g. "Weighted vote of the original app: FAKE, 1 of 5 detectors
    voted"."""
    s = ens.summary
    return s[0].upper() + s[1:]


def fusions_text(ens: EnsembleResult) -> str:
    """The vote's logit fusions, always labelled uncalibrated ("" when no detector with a vote ran)."""
    if math.isnan(ens.p_mean_logit):
        return ""
    return (f"mean logit {ens.mean_logit:+.2f} (sigmoid {ens.p_mean_logit:.3f}), soft-OR {ens.p_soft_or:.3f}: "
            f"{FUSIONS_NOTE}")


def calibrated_score(result: DetectionResult, profile: Profile | None) -> dict[str, Any]:
    """A profile's calibration of one detector's result, for display.

    Returns:
        ``{}`` without a profile; else ``{"applied": bool, "text": str}`` plus, when applied, ``p_fake``,
        ``threshold`` and ``label`` (the verdict at the profile's threshold).
    """
    if profile is None:
        return {}
    app = profile.apply([result])
    cs = app.scores.get(result.key)
    if cs is None:
        why = app.notes[0] if app.notes else f"{result.key}: no verdict to calibrate."
        return {"applied": False, "text": why}
    return {"applied": True, "p_fake": cs.p_fake, "threshold": cs.threshold, "label": cs.label,
            "text": f"calibrated ({profile.name}): P(fake) {cs.p_fake:.4f}, {cs.label.upper()} at the profile's "
                    f"threshold {cs.threshold:.3f}"}


def profile_description(profile: Profile) -> str:
    """One sentence of a profile's provenance: data, date, what it calibrates, the fusion's cross-validated AUC."""
    prov = profile.provenance
    n, n_real, n_fake = prov.get("n"), prov.get("n_real"), prov.get("n_fake")
    data = f"{n} labelled images ({n_real} real, {n_fake} fake)" if n is not None else "labelled images"
    where = f" of {prov['name']}" if prov.get("name") else ""
    when = f" on {str(prov['created'])[:10]}" if prov.get("created") else ""
    text = (f"Calibration profile {profile.name}: fitted{when} on {data}{where}; calibrates "
            f"{', '.join(profile.detectors) or 'nothing'}")
    st = profile.stacker
    if st is not None and st.cv_auc is not None:
        text += f"; learned fusion over {len(st.inputs)} inputs, cross-validated AUC {st.cv_auc:.3f}"
    if profile.vote and profile.vote.get("auc") is not None:
        text += f" (the original app's vote: AUC {profile.vote['auc']:.3f})"
    return text + "."


__all__ = ["level_meanings", "DIRECTION_COLOUR", "UNCALIBRATED_NOTE", "FUSIONS_NOTE", "headline_text",
           "assessment_lines", "vote_line", "fusions_text", "calibrated_score", "profile_description"]
