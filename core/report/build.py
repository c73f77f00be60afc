"""Case report: one image's evidence as ``report.json`` and a self-contained ``report.html``.

The report holds the file's hashes and metadata, the weight-free forensic views, each detector's result with its
weights sha256 and preprocessing, the ensemble settings and verdict, the robustness probe, the reasons to doubt,
library versions and a timestamp. The HTML embeds every image as a base64 PNG and draws its charts as inline SVG,
so it opens offline in any browser and can be attached to a case file as is.

Reproducible: the same image, detectors and settings give the same report apart from ``generated_at`` (timings
are left out on purpose: they are not evidence and change on every run).

Example:
    >>> rep = build_report("photo.jpg", [create_detector("NPR")])
    >>> rep.write("case-42")
    (PosixPath('case-42/report.json'), PosixPath('case-42/report.html'))
"""
from __future__ import annotations

import datetime as _dt
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from core import forensics as F
from core import settings
from core.convert import to_jsonable
from core.errors import BadImage, UnknownDetector
from core.io import load_image
from core.models.registry import get_spec
from core.report.html import render_html
from core.results import DetectionResult
from core.verdict.abstention import ForensicFacts, ensemble_reasons, exif_pixel_size, result_reasons
from core.verdict.assessment import assess
from core.verdict.calibration import Profile
from core.verdict.ensemble import EnsembleConfig, ensemble, load_config
from core.verdict.present import UNCALIBRATED_NOTE, profile_description
from core.verdict.robustness import ProbeResult, run_probe
from core.versions import library_versions, tool_version

REPORT_VERSION = 1
NOTICE = ("Detector scores are statistical evidence, not proof. Metadata (EXIF, XMP, C2PA) is supporting evidence "
          "only: it can be stripped or forged.")


def _profile_line(profile: Profile | None) -> str:
    """The calibration profile's provenance, or the sentence saying that no number is calibrated."""
    if profile is not None:
        return profile_description(profile)
    return UNCALIBRATED_NOTE[0].upper() + UNCALIBRATED_NOTE[1:] + "."


@dataclass(frozen=True)
class CaseReport:
    """A built report: the JSON-ready dict and the HTML page."""

    data: dict[str, Any]
    html: str

    def json_text(self) -> str:
        """``report.json`` content (UTF-8, indented, keys in a stable order)."""
        return json.dumps(self.data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"

    def write(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``report.json`` and ``report.html`` into ``out_dir`` (created if needed).

        Each file is written whole or not at all (a ``.part`` file renamed into place), so an interrupted run
        never leaves half a report next to an older one.

        Raises:
            OSError: ``out_dir`` cannot be created or written (e.g. it names an existing file).
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        pj, ph = out / "report.json", out / "report.html"
        for path, text in ((pj, self.json_text()), (ph, self.html)):
            tmp = path.with_name(path.name + ".part")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        return pj, ph


# ----------------------------------------------------------------------------------------------- facts


def _result_dict(r: DetectionResult, det: Any = None) -> dict[str, Any]:
    d = r.to_dict()
    d.pop("elapsed_s", None)                    # timings change on every run and are not evidence
    d["key"] = r.key
    d["backbone_sha256"] = getattr(det, "backbone_sha256", None) if det is not None else None
    spec = getattr(det, "spec", None)
    if spec is None:
        try:
            spec = get_spec(r.key)
        except UnknownDetector:             # a result from an unregistered detector still goes in the report
            spec = None
    if spec is not None:
        d["model_card"] = {"title": spec.card.title, "paper": spec.card.paper, "licence": spec.card.licence,
                           "training_data": spec.card.training_data, "config": Path(spec.config_path).name}
        if r.variant == "custom":       # the user's own file: the architecture's paper, not its weights' card
            d["model_card"].update(licence="unknown (the user's own checkpoint file)",
                                   training_data="unknown (the user's own checkpoint file)")
    return d


def _ensemble_dict(ens: Any, cfg: EnsembleConfig) -> dict[str, Any]:
    d = ens.to_dict()
    for v in d.get("votes", []):
        v.pop("elapsed_s", None)
    return {"settings": {"rule": "weighted vote of the original app (score > vote threshold votes; weight × score "
                                 "per side)",
                         "vote_threshold": cfg.vote_threshold, "weights": dict(sorted(cfg.weights.items())),
                         "uncertain_band": list(cfg.uncertain_band), "disagreement": cfg.disagreement},
            "result": d}


# ----------------------------------------------------------------------------------------------- build

def _read_source(source: str | os.PathLike | bytes, name: str | None) -> tuple[bytes, str, Image.Image]:
    """The file's bytes, its display name and the decoded image; errors name the file as the caller gave it."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, fname, label = bytes(source), name or "image", name or "image"
    else:
        p = Path(source)
        label = str(source)
        if not p.is_file():
            raise BadImage(label, "file not found.")
        size = p.stat().st_size
        if size > settings.max_bytes():
            raise BadImage(label, f"the file is {size / 1e6:.0f} MB, above the {settings.max_bytes() / 1e6:.0f} MB "
                                  "limit.")
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise BadImage(label, f"could not be read ({exc.strerror or exc}).") from None
        fname = name or p.name
    named = io.BytesIO(data)
    named.name = label                      # load_image names the file in its sentence (never "<bytes>")
    return data, fname, load_image(named)


def _run_detectors(detectors: Sequence[Any], image: Image.Image, results: Mapping[str, DetectionResult] | None
                   ) -> tuple[dict[str, DetectionResult], dict[str, Any], dict[str, str]]:
    """(results by key, detector by key, error by key); a result given in ``results`` is not computed again."""
    done: dict[str, DetectionResult] = dict(results or {})
    by_key: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for det in detectors:
        key = getattr(getattr(det, "spec", None), "key", None) or getattr(det, "key", None) or type(det).__name__
        by_key[key] = det
        if key in done:
            continue
        try:
            done[key] = det.predict(image)
        except Exception as exc:  # noqa: BLE001 - one failing detector must not lose the whole report
            errors[key] = str(exc)
    return done, by_key, errors


def _timestamp(ts: _dt.datetime | None) -> str:
    ts = (ts or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc).replace(microsecond=0)
    return ts.isoformat().replace("+00:00", "Z")


def build_report(source: str | os.PathLike | bytes, detectors: Sequence[Any] = (), *, name: str | None = None,
                 results: Mapping[str, DetectionResult] | None = None, missing: Mapping[str, str] | None = None,
                 ensemble_config: EnsembleConfig | None = None, probe: bool | ProbeResult | None = True,
                 probe_conditions: Sequence[str] | None = None, ela_quality: int = 90, include_gps: bool = False,
                 timestamp: _dt.datetime | None = None, profile: Profile | None = None, rule: str | None = None,
                 progress: Callable[[str], None] | None = None) -> CaseReport:
    """Build the case report of one image.

    Args:
        source: an image path or the file's bytes (hashes and metadata describe exactly these bytes).
        detectors: loaded detectors (``.predict``; ``.spec``, ``.weights_sha256`` when available) to run on the
            image; a detector whose result is already in ``results`` is not run again.
        name: file name shown in the report (default: the path's name, or "image").
        results: results computed earlier, keyed by ``ID:variant`` (the app passes what the analyst already ran).
        missing: detector id → why it did not run (e.g. "weights not installed"); listed in the report.
        ensemble_config: the ensemble rule (default: configs/ensemble.yaml).
        probe: True runs the robustness probe with ``detectors``; a :class:`ProbeResult` is embedded as given;
            False/None leaves it out.
        probe_conditions: condition keys for the probe (default: all).
        ela_quality: JPEG quality of the error-level analysis.
        include_gps: include the EXIF GPS position (off by default: it can locate a person).
        timestamp: the report time (default: now, UTC). profile, rule: the assessment's calibration and rule.
        progress: ``fn(message)`` called between steps.

    Returns:
        A :class:`CaseReport`; call ``.write(dir)`` for the two files.

    Raises:
        BadImage: the source is not a readable image (the sentence names the file).
    """
    say = progress or (lambda _m: None)
    data, fname, image = _read_source(source, name)
    say("Reading metadata and forensic views…")
    ev = F.analyse(data, fname, ela_quality=ela_quality, include_gps=include_gps)
    facts = ForensicFacts.from_metadata(ev.metadata, exif_pixel_size(Image.open(io.BytesIO(data))))
    say("Running detectors…")
    done, by_key, errors = _run_detectors(detectors, image, results)
    ordered = list(done.values())
    cfg = ensemble_config or (load_config() if ordered else EnsembleConfig())
    miss = dict(missing or {})
    for key, why in errors.items():
        miss[key.split(":")[0]] = f"failed on this image ({why})"
    ens = ensemble(ordered, cfg, missing=miss) if ordered else None
    probe_res: ProbeResult | None = probe if isinstance(probe, ProbeResult) else None
    if probe_res is None and probe and detectors:
        say("Robustness probe…")
        probe_res = run_probe(image, list(detectors), conditions=probe_conditions)

    # keyed by each result's own key: a result from the user's file says "ID:custom", its detector "ID:variant"
    det_of = {r.key: by_key.get(k) for k, r in done.items()}
    specs = {k: d.spec for k, d in det_of.items() if getattr(d, "spec", None) is not None}
    reasons = ensemble_reasons(ens, ordered, facts, probe_res, disagreement=cfg.disagreement,
                               specs=specs) if ordered else ()
    data_out = to_jsonable({
        "report_version": REPORT_VERSION,
        "tool": {"name": "Deepfake Lens", "version": tool_version()},
        "generated_at": _timestamp(timestamp),
        "file": ev.metadata.file.to_dict(),
        "notice": NOTICE,
        "settings": {"ela_quality": ela_quality, "include_gps": include_gps,
                     "probe_conditions": [c.key for c in probe_res.conditions] if probe_res else None,
                     "forensic_region_max_side": F.MAX_SIDE},
        "metadata": ev.metadata.to_dict(),
        "forensics": {"frequency": ev.frequency.to_dict(), "npr": ev.npr.to_dict(), "ela": ev.ela.to_dict(),
                      "noise": ev.noise.to_dict()},
        "detectors": [dict(_result_dict(r, det_of.get(r.key)),
                           reasons=[x.to_dict() for x in result_reasons(r, facts, probe_res,
                                                                        spec=specs.get(r.key))])
                      for r in ordered],
        "not_run": dict(sorted(miss.items())),
        "assessment": assess(ordered, profile=profile, facts=facts, probe=probe_res, specs=specs,
                             rule=rule).to_dict(),
        "calibration_profile": _profile_line(profile),
        "ensemble": _ensemble_dict(ens, cfg) if ens is not None else None,
        "robustness": probe_res.to_dict() if probe_res else None,
        "abstention": [r.to_dict() for r in reasons],
        "environment": library_versions(),
    })
    say("Writing HTML…")
    return CaseReport(data_out, render_html(data_out, ev, image))


def write_report(report: CaseReport, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` of ``report`` into ``out_dir`` (see :meth:`CaseReport.write`)."""
    return report.write(out_dir)


__all__ = ["CaseReport", "build_report", "write_report", "REPORT_VERSION"]
