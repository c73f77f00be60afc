"""What each endpoint computes, as plain functions over uploaded bytes: the library's own calls, never new logic.

``detect`` gives the document of ``python -m core detect IMAGE --detector ALL --json``
(:func:`core.cli.detect_all.combine` and :func:`~core.cli.detect_all.document`), with the process's shared cached
detectors instead of freshly loaded ones; ``report`` is :func:`core.report.build.build_report`; ``forensics`` is
:func:`core.forensics.analyse`; the jobs call :func:`core.verdict.robustness.run_probe` and
:func:`core.video.analyse.analyse_video`. Everything here runs on a worker thread (see :mod:`core.api.work`).
"""
from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import forensics, settings
from core.api.errors import ApiError
from core.api.jobs import JobContext
from core.api.uploads import Upload
from core.api.work import DetectorCache
from core.archive import printable
from core.cli.common import chosen_keys
from core.cli.detect_all import combine, document
from core.cli.report import why_not_installed
from core.convert import to_jsonable
from core.errors import BadImage, WeightsError
from core.io import load_image
from core.models.detectors.base import Detector
from core.models.install import custom_label
from core.models.registry import get_spec, list_detectors, list_specs
from core.models.selection import default_keys, variant_state
from core.report.build import CaseReport, build_report
from core.verdict.calibration import Profile, load_profile
from core.verdict.robustness import run_probe
from core.versions import tool_version
from core.video.analyse import analyse_video, split_detectors
from core.video.sampling import SamplingPlan


@dataclass(frozen=True)
class Options:
    """The detector options every analysis endpoint takes.

    Attributes:
        detectors: comma-separated ``ID`` / ``ID:variant`` (None: every installed detector, as the CLI).
        fast: bfloat16 for the detectors whose YAML validated it (the app's Fast mode).
        profile: the file name of a calibration profile in the server's profiles folder.
        rule: the headline's rule (graded, vote, stacked; None: configs/ensemble.yaml).
    """

    detectors: str | None = None
    fast: bool = False
    profile: str | None = None
    rule: str | None = None


def saved_profiles() -> dict[str, Path]:
    """Calibration profiles offered by this server: ``*.json`` in ``DEEPFAKE_LENS_PROFILES``, by file name."""
    try:
        return {p.name: p for p in sorted(settings.profiles_dir().glob("*.json")) if p.is_file()}
    except OSError:
        return {}


def find_profile(name: str | None) -> Profile | None:
    """The saved profile called ``name`` (a name from :func:`saved_profiles`, never a path), or None.

    Raises:
        ApiError: 422 when no saved profile has that name.
        ProfileError: the file is not a valid profile.
    """
    if not name:
        return None
    saved = saved_profiles()
    if name not in saved:
        shown = printable(name)[:80]
        raise ApiError(422, f"no calibration profile named '{shown}' on this server (available: "
                            f"{', '.join(saved) or 'none'}).")
    return load_profile(saved[name])


class Service:
    """The endpoints' work, sharing one :class:`DetectorCache`."""

    def __init__(self, cache: DetectorCache | None = None) -> None:
        self.cache = cache or DetectorCache()

    def _precision(self, det_spec: Any, fast: bool) -> str:
        return "bf16" if fast and det_spec.options.get("fast_bf16") else "fp32"

    def select(self, names: str | None, fast: bool = False) -> tuple[list[Detector], dict[str, str]]:
        """The shared detectors to run and ``{id: why not}``, chosen as ``python -m core detect --detector ALL``.

        Without ``names``: the installed variant of every id, the others listed as not installed. With ``names``:
        those variants; one without installed weights is listed as not run (never built with random weights).

        Raises:
            UnknownDetector: a name that is not registered. UsageError: a variant named twice.
        """
        if names is not None and names.strip():
            keys, not_run = chosen_keys(names, "detectors"), {}
            for key in [k for k in keys if not variant_state(get_spec(k)).installed]:
                not_run[key.split(":", 1)[0]] = why_not_installed(key)
                keys.remove(key)
        else:
            keys = default_keys(installed_only=True)      # what `detect --detector ALL` runs (same function)
            chosen = {k.split(":", 1)[0] for k in keys}
            not_run = {d: why_not_installed(d) for d in list_detectors() if d not in chosen}
        dets: list[Detector] = []
        for key in keys:
            spec = get_spec(key)
            try:
                dets.append(self.cache.get(spec, self._precision(spec, fast)))
            except WeightsError as exc:                   # installed but unusable (changed since the check)
                not_run[spec.id] = str(exc)
        return dets, dict(sorted(not_run.items()))

    def detect(self, upload: Upload, opts: Options) -> dict[str, Any]:
        """The ``detect --detector ALL --json`` document of the uploaded image."""
        data = upload.data or b""
        image = load_image(_named(data, upload.name))
        profile = find_profile(opts.profile)
        dets, not_run = self.select(opts.detectors, opts.fast)
        return document(*combine(image, data, dets, not_run, profile, opts.rule))

    @staticmethod
    def forensics(upload: Upload, *, include_gps: bool = False, ela_quality: int = 90) -> dict[str, Any]:
        """Metadata (EXIF, XMP/IPTC, C2PA, JPEG tables, findings) and the forensic views' numbers and summaries."""
        try:
            ev = forensics.analyse(upload.data or b"", upload.name, ela_quality=ela_quality, include_gps=include_gps)
        except BadImage as exc:                          # name the client's file, not "<bytes>"
            raise BadImage(upload.name, exc.why) from None
        return to_jsonable(ev.to_dict())

    def report(self, upload: Upload, opts: Options, *, probe: bool = False, include_gps: bool = False,
               ela_quality: int = 90) -> CaseReport:
        """The case report (``python -m core report``) of the uploaded image."""
        profile = find_profile(opts.profile)
        dets, not_run = self.select(opts.detectors, opts.fast)
        return build_report(upload.data or b"", dets, name=upload.name, missing=not_run, probe=probe,
                            ela_quality=ela_quality, include_gps=include_gps, profile=profile, rule=opts.rule)

    def robustness(self, ctx: JobContext, upload: Upload, opts: Options,
                   conditions: list[str] | None = None) -> dict[str, Any]:
        """The robustness probe of the uploaded image (a job): each detector under everyday degradations."""
        image = load_image(_named(upload.data or b"", upload.name))
        dets, not_run = self.select(opts.detectors, opts.fast)
        if not dets:
            raise ApiError(409, "no detector can run here, so there is nothing to probe (see /v1/detectors).")
        probe = run_probe(image, dets, conditions=conditions, progress=ctx.progress)
        return to_jsonable({"file": upload.name, "robustness": probe.to_dict(), "not_run": not_run})

    def video(self, ctx: JobContext, upload: Upload, opts: Options, plan: SamplingPlan) -> dict[str, Any]:
        """The video analysis (``python -m core video``'s ``video.json``) of the uploaded file (a job)."""
        assert upload.path is not None
        profile = find_profile(opts.profile)
        dets, not_run = self.select(opts.detectors, opts.fast)
        face, others = split_detectors(dets)
        analysis = analyse_video(str(upload.path), plan=plan, face=face, detectors=others, with_cam=not opts.fast,
                                 progress=lambda done, planned, _t: ctx.progress(done, planned, f"frame {done}"),
                                 should_stop=ctx.should_stop, profile=profile)
        doc = analysis.to_dict()
        doc["video"]["path"] = upload.name                 # the client's name, never the server's temp path
        doc["not_run"] = not_run
        if analysis.cancelled:
            doc["notes"] = [*doc["notes"], "stopped at the job time limit (DEEPFAKE_LENS_API_JOB_TIMEOUT)."]
        return to_jsonable(doc)

    def detectors(self) -> dict[str, Any]:
        """Every detector id with its variants: installed or why not, model card, threshold, ensemble weight."""
        out = []
        for det_id in list_detectors():
            variants = []
            for spec in list_specs(det_id):
                vs = variant_state(spec)
                variants.append({
                    "key": spec.key, "variant": spec.variant, "default": spec.default, "installed": vs.installed,
                    "state": vs.state, "why_not_installed": None if vs.installed else why_not_installed(spec.key),
                    "how_to_fix": " ".join(p.message for p in vs.parts if p.state != "installed") or None,
                    "custom_label": custom_label(spec) if vs.installed else None,
                    "threshold": spec.threshold, "ensemble_weight": spec.ensemble_weight,
                    "fast_bf16": bool(spec.options.get("fast_bf16")),
                    "card": dataclasses.asdict(spec.card), "coverage": dataclasses.asdict(spec.coverage)})
            out.append({"id": det_id, "variants": variants})
        return to_jsonable({"detectors": out, "profiles": list(saved_profiles())})

    def health(self) -> dict[str, Any]:
        """Readiness: the registry scans, which detectors are installed and which are loaded in memory."""
        return {"status": "ready", "version": tool_version(),
                "installed": default_keys(installed_only=True), "loaded": self.cache.loaded()}


def _named(data: bytes, name: str) -> io.BytesIO:
    """The bytes as a named file object, so every sentence names the client's file (never ``<bytes>``)."""
    buf = io.BytesIO(data)
    buf.name = name
    return buf


__all__ = ["Options", "Service", "find_profile", "saved_profiles"]
