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

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core import forensics as F
from core import settings
from core.convert import to_jsonable
from core.errors import BadImage
from core.io import load_image
from core.results import DetectionResult
from core.verdict.abstention import ForensicFacts, ensemble_reasons, result_reasons
from core.verdict.ensemble import EnsembleConfig, ensemble, load_config
from core.verdict.robustness import ProbeResult, run_probe

REPORT_VERSION = 1
IMAGE_SIDE = 768            # embedded images are shrunk to this long side (keeps the HTML a few MB at most)
_LIBRARIES = ("numpy", "pillow", "torch", "torchvision", "open_clip_torch", "facenet-pytorch", "c2pa-python",
              "ImageHash", "scikit-image")
_PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f")


@dataclass(frozen=True)
class CaseReport:
    """A built report: the JSON-ready dict and the HTML page."""

    data: dict[str, Any]
    html: str

    def json_text(self) -> str:
        """``report.json`` content (UTF-8, indented, keys in a stable order)."""
        return json.dumps(self.data, indent=1, ensure_ascii=False, allow_nan=False) + "\n"

    def write(self, out_dir: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``report.json`` and ``report.html`` into ``out_dir`` (created if needed)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        pj, ph = out / "report.json", out / "report.html"
        pj.write_text(self.json_text(), encoding="utf-8")
        ph.write_text(self.html, encoding="utf-8")
        return pj, ph


# ----------------------------------------------------------------------------------------------- facts


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries whose behaviour the numbers depend on ("not installed" if absent)."""
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for dist in _LIBRARIES:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _tool_version() -> str:
    try:
        import tomllib
        data = tomllib.loads((settings.PYPROJECT).read_text())
        return str(data["project"]["version"])
    except Exception:  # noqa: BLE001 - the version is informative only
        return "unknown"


def _result_dict(r: DetectionResult, det: Any = None) -> dict[str, Any]:
    d = r.to_dict()
    d.pop("elapsed_s", None)                    # timings change on every run and are not evidence
    d["key"] = r.key
    d["backbone_sha256"] = getattr(det, "backbone_sha256", None) if det is not None else None
    spec = getattr(det, "spec", None)
    if spec is None:
        try:
            from core.models.registry import get_spec
            spec = get_spec(r.key)
        except Exception:  # noqa: BLE001 - a result from an unregistered detector still goes in the report
            spec = None
    if spec is not None:
        d["model_card"] = {"title": spec.card.title, "paper": spec.card.paper, "licence": spec.card.licence,
                           "training_data": spec.card.training_data, "config": Path(spec.config_path).name}
    return d


def _ensemble_dict(ens: Any, cfg: EnsembleConfig) -> dict[str, Any]:
    d = ens.to_dict()
    for v in d.get("votes", []):
        v.pop("elapsed_s", None)
    return {"settings": {"rule": "seed weighted vote (score > vote threshold votes; weight × score per side)",
                         "vote_threshold": cfg.vote_threshold, "weights": dict(sorted(cfg.weights.items())),
                         "uncertain_band": list(cfg.uncertain_band), "disagreement": cfg.disagreement},
            "result": d}


# ----------------------------------------------------------------------------------------------- build

def build_report(source: str | os.PathLike | bytes, detectors: Sequence[Any] = (), *, name: str | None = None,
                 results: Mapping[str, DetectionResult] | None = None, missing: Mapping[str, str] | None = None,
                 ensemble_config: EnsembleConfig | None = None, probe: bool | ProbeResult | None = True,
                 probe_conditions: Sequence[str] | None = None, ela_quality: int = 90, include_gps: bool = False,
                 timestamp: _dt.datetime | None = None,
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
        timestamp: the report time (default: now, UTC).
        progress: ``fn(message)`` called between steps.

    Returns:
        A :class:`CaseReport`; call ``.write(dir)`` for the two files.

    Raises:
        BadImage: the source is not a readable image.
    """
    say = progress or (lambda _m: None)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, fname = bytes(source), name or "image"
    else:
        p = Path(source)
        if not p.is_file():
            raise BadImage(str(p), "file not found.")
        data, fname = p.read_bytes(), name or p.name
    say("Reading metadata and forensic views…")
    ev = F.analyse(data, fname, ela_quality=ela_quality, include_gps=include_gps)
    image = load_image(data)
    facts = ForensicFacts.from_metadata(ev.metadata)

    say("Running detectors…")
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
    ordered = list(done.values())
    cfg = ensemble_config or (load_config() if ordered else EnsembleConfig())
    miss = dict(missing or {})
    for key, why in errors.items():
        miss[key.split(":")[0]] = f"failed on this image ({why})"
    ens = ensemble(ordered, cfg, missing=miss) if ordered else None

    probe_res: ProbeResult | None = None
    if isinstance(probe, ProbeResult):
        probe_res = probe
    elif probe and detectors:
        say("Robustness probe…")
        probe_res = run_probe(image, list(detectors), conditions=probe_conditions)

    specs = {k: d.spec for k, d in by_key.items() if getattr(d, "spec", None) is not None}
    reasons = ensemble_reasons(ens, ordered, facts, probe_res, disagreement=cfg.disagreement,
                               specs=specs) if ordered else ()
    ts = (timestamp or _dt.datetime.now(_dt.timezone.utc)).astimezone(_dt.timezone.utc).replace(microsecond=0)
    data_out = {
        "report_version": REPORT_VERSION,
        "tool": {"name": "Deepfake Lens", "version": _tool_version()},
        "generated_at": ts.isoformat().replace("+00:00", "Z"),
        "file": ev.metadata.file.to_dict(),
        "notice": ("Detector scores are statistical evidence, not proof. Metadata (EXIF, XMP, C2PA) is supporting "
                   "evidence only: it can be stripped or forged."),
        "settings": {"ela_quality": ela_quality, "include_gps": include_gps,
                     "probe_conditions": [c.key for c in probe_res.conditions] if probe_res else None,
                     "forensic_region_max_side": F.MAX_SIDE},
        "metadata": ev.metadata.to_dict(),
        "forensics": {"frequency": ev.frequency.to_dict(), "npr": ev.npr.to_dict(), "ela": ev.ela.to_dict(),
                      "noise": ev.noise.to_dict()},
        "detectors": [dict(_result_dict(r, by_key.get(r.key)),
                           reasons=[x.to_dict() for x in result_reasons(r, facts, probe_res,
                                                                        spec=specs.get(r.key))])
                      for r in ordered],
        "not_run": dict(sorted(miss.items())),
        "ensemble": _ensemble_dict(ens, cfg) if ens is not None else None,
        "robustness": probe_res.to_dict() if probe_res else None,
        "abstention": [r.to_dict() for r in reasons],
        "environment": library_versions(),
    }
    data_out = to_jsonable(data_out)
    say("Writing HTML…")
    return CaseReport(data_out, _html(data_out, ev, image))


# ----------------------------------------------------------------------------------------------- HTML

def _png_b64(img: Image.Image, side: int = IMAGE_SIDE) -> str:
    if max(img.size) > side:
        s = side / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _e(v: Any) -> str:
    return html.escape("—" if v is None else str(v))


def _fmt(v: Any, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _table(rows: Sequence[Sequence[Any]], head: Sequence[str] | None = None) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{c if isinstance(c, _Raw) else _e(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def svg_line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, x_labels: Sequence[str] = (),
                   y_range: tuple[float, float] | None = None, hline: float | None = None, x_title: str = "",
                   y_title: str = "", width: int = 720, height: int = 300, markers: bool = True) -> str:
    """A small static line chart as inline SVG (no JavaScript; deterministic output).

    Args:
        series: (name, xs, ys) per line; NaN values break the line.
        x_labels: category labels at x = 0, 1, 2, … (categorical axis); empty for a numeric axis.
        y_range: fixed (min, max); default from the data.
        hline: a dashed horizontal reference line (e.g. the 0.5 threshold).
    """
    ml, mr, mt, mb = 56, 150 if len(series) > 1 else 16, 14, 52
    pw, ph = width - ml - mr, height - mt - mb
    xs_all = [x for _, xs, _ in series for x in xs]
    ys_all = [y for _, _, ys in series for y in ys if y is not None and math.isfinite(y)]
    x0, x1 = (0.0, max(1.0, len(x_labels) - 1.0)) if x_labels else (min(xs_all or [0]), max(xs_all or [1]))
    if x1 == x0:
        x1 = x0 + 1
    if y_range:
        y0, y1 = y_range
    else:
        y0, y1 = (min(ys_all), max(ys_all)) if ys_all else (0.0, 1.0)
        pad = (y1 - y0) * 0.05 or 0.5
        y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return round(ml + (x - x0) / (x1 - x0) * pw, 1)

    def sy(y: float) -> float:
        return round(mt + (1 - (y - y0) / (y1 - y0)) * ph, 1)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" font-family="sans-serif" font-size="11">',
             f'<rect x="{ml}" y="{mt}" width="{pw}" height="{ph}" fill="#fff" stroke="#9ca3af"/>']
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{sy(yv)}" y2="{sy(yv)}" stroke="#e5e7eb"/>'
                     f'<text x="{ml - 4}" y="{sy(yv) + 4}" text-anchor="end">{yv:.2f}</text>')
    if x_labels:
        for i, lab in enumerate(x_labels):
            parts.append(f'<text x="{sx(i)}" y="{mt + ph + 16}" text-anchor="middle">{_e(lab)}</text>')
    else:
        for i in range(6):
            xv = x0 + (x1 - x0) * i / 5
            parts.append(f'<text x="{sx(xv)}" y="{mt + ph + 16}" text-anchor="middle">{xv:.2f}</text>')
    if hline is not None and y0 <= hline <= y1:
        parts.append(f'<line x1="{ml}" x2="{ml + pw}" y1="{sy(hline)}" y2="{sy(hline)}" stroke="#374151" '
                     'stroke-dasharray="5,4"/>')
    for k, (name, xs, ys) in enumerate(series):
        colour = _PALETTE[k % len(_PALETTE)]
        segs, cur = [], []
        for x, y in zip(xs, ys):
            if y is None or not math.isfinite(y):
                if cur:
                    segs.append(cur)
                cur = []
                continue
            cur.append(f"{sx(x)},{sy(min(max(y, y0), y1))}")
        if cur:
            segs.append(cur)
        for seg in segs:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(seg)}"/>')
            if markers:
                parts += [f'<circle cx="{pt.split(",")[0]}" cy="{pt.split(",")[1]}" r="3" fill="{colour}"/>'
                          for pt in seg]
        if len(series) > 1:
            ly = mt + 12 + 16 * k
            parts.append(f'<line x1="{ml + pw + 10}" x2="{ml + pw + 28}" y1="{ly - 4}" y2="{ly - 4}" '
                         f'stroke="{colour}" stroke-width="2"/><text x="{ml + pw + 32}" y="{ly}">{_e(name)}</text>')
    parts.append(f'<text x="{ml + pw / 2}" y="{height - 8}" text-anchor="middle">{_e(x_title)}</text>')
    parts.append(f'<text x="14" y="{mt + ph / 2}" text-anchor="middle" transform="rotate(-90 14 {mt + ph / 2})">'
                 f'{_e(y_title)}</text></svg>')
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#111827;
line-height:1.45;padding:0 1em}h1{margin-bottom:0}h2{border-bottom:2px solid #e5e7eb;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}td,th{border:1px solid #d1d5db;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f3f4f6}.muted{color:#6b7280;font-size:.9em}
.box{border-left:4px solid #9ca3af;background:#f9fafb;padding:.6em 1em;margin:.8em 0}.warn{border-color:#d97706;
background:#fffbeb}.fake{color:#dc2626;font-weight:bold}.real{color:#16a34a;font-weight:bold}.uncertain{color:#d97706;
font-weight:bold}figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figure img{max-width:480px;
border:1px solid #d1d5db;image-rendering:pixelated}figcaption{font-size:.85em;color:#4b5563;max-width:480px}
code{font-size:.9em;word-break:break-all}.q{font-family:monospace;font-size:.8em}
"""


def _fig(src: str, caption: str) -> str:
    return f'<figure><img src="{src}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _qtable(t: Sequence[int]) -> str:
    rows = [t[i * 8:(i + 1) * 8] for i in range(8)]
    return "<table class='q'>" + "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>"
                                         for r in rows) + "</table>"


def _html(d: dict[str, Any], ev: F.Evidence, image: Image.Image) -> str:
    f = d["file"]
    md = d["metadata"]
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           f"<title>Deepfake Lens case report — {_e(f['name'])}</title><style>{_CSS}</style></head><body>",
           "<h1>Deepfake Lens — case report</h1>",
           f"<p class='muted'>{_e(f['name'])} · generated {_e(d['generated_at'])} · Deepfake Lens "
           f"{_e(d['tool']['version'])} · report format {d['report_version']}</p>",
           f"<div class='box'>{_e(d['notice'])}</div>"]

    # -- summary
    out.append("<h2>Summary</h2>")
    ens = d.get("ensemble")
    if ens:
        v = ens["result"]["verdict"]
        out.append(f"<p>Ensemble verdict: <span class='{v.lower()}'>{_e(v)}</span></p>"
                   f"<p class='muted'>{_e(ens['result']['explanation'])}</p>")
    else:
        out.append("<p>No detector ran (no weights installed or none selected): this report holds the "
                   "weight-free evidence only.</p>")
    if d["abstention"]:
        out.append("<div class='box warn'><b>Reasons to doubt</b><ul>" +
                   "".join(f"<li>{_e(r['text'])}.</li>" for r in d["abstention"]) + "</ul></div>")
    if md["findings"]:
        out.append("<div class='box'><b>What the file says about itself</b> (supporting evidence, never the "
                   "verdict)<ul>" + "".join(f"<li>{_e(x)}</li>" for x in md["findings"]) + "</ul></div>")
    if d["robustness"]:
        out.append("<p><b>Robustness:</b> " + " ".join(_e(s) for s in d["robustness"]["summary"]) + "</p>")

    # -- file
    out.append("<h2>File</h2>")
    out.append(_fig(_png_b64(image), f"{f['name']} · {f['width']}×{f['height']}"))
    out.append(_table([
        ("Name", f["name"]), ("Size", f"{f['size_bytes']:,} bytes"), ("SHA-256", _Raw(f"<code>{f['sha256']}</code>")),
        ("Perceptual hash (pHash)", f["phash"]), ("Difference hash (dHash)", f["dhash"]),
        ("Hash library", f["hash_library"]),
        ("Type (magic bytes)", f"{f['detected_type']} ({f['mime']})"),
        ("Extension", f"{f['extension'] or '(none)'} — " + {True: "matches", False: "DOES NOT MATCH the content",
                                                            None: "nothing to compare"}[f["extension_matches"]]),
        ("Pixels", f"{f['width']}×{f['height']}, mode {f['mode']}, {f['frames']} frame(s)")]))

    # -- detectors
    out.append("<h2>Detectors</h2>")
    if d["detectors"]:
        rows = []
        for r in d["detectors"]:
            lab = r["label"]
            rows.append((r["detector_id"], r["variant"], _Raw(f"<span class='{lab}'>{_e(lab)}</span>"),
                         _fmt(r["p_fake"]), _fmt(r["logit"]), _fmt(r["threshold"], 2),
                         f"{r['image_size'][0]}×{r['image_size'][1]} → {r['input_size'][0]}×{r['input_size'][1]}"
                         + (f", crop {tuple(r['crop_box'])}" if r["crop_box"] else ""),
                         r["preprocessing"], _Raw(f"<code>{_e(r['weights_sha256'])}</code>"
                                                  + (f"<br>backbone <code>{_e(r['backbone_sha256'])}</code>"
                                                     if r.get("backbone_sha256") else ""))))
        out.append(_table(rows, ["detector", "variant", "verdict", "p_fake", "logit", "threshold",
                                 "image → input", "preprocessing", "weights sha256"]))
        for r in d["detectors"]:
            card = r.get("model_card")
            if card:
                out.append(f"<p class='muted'><b>{_e(r['detector_id'])}</b>: {_e(card['paper'])} · licence "
                           f"{_e(card['licence'])} · trained on {_e(card['training_data'])}</p>")
            if r["faces"]:
                out.append(_table([(x["index"], tuple(round(c) for c in x["box"]), _fmt(x["detection_prob"], 3),
                                    _fmt(x["p_fake"]), x["label"]) for x in r["faces"]],
                                  ["face", "box", "detection prob.", "p_fake", "verdict"]))
    else:
        out.append("<p>No detector results.</p>")
    if d["not_run"]:
        out.append("<p class='muted'>Not run: " + "; ".join(f"{_e(k)} ({_e(v)})" for k, v in d["not_run"].items())
                   + "</p>")
    if ens:
        s = ens["settings"]
        out.append("<h3>Ensemble settings</h3>" + _table(
            [("Rule", s["rule"]), ("Vote threshold", s["vote_threshold"]),
             ("Weights", ", ".join(f"{k} {v:g}" for k, v in s["weights"].items())),
             ("Uncertain band (mean-logit)", s["uncertain_band"]), ("Disagreement", s["disagreement"])]))
        res = ens["result"]
        out.append(_table([(x["detector_id"], x["label"], _fmt(x["p_fake"]), _fmt(x["score"], 3),
                            "yes" if x["voted"] else "no", _fmt(x["weight"], 2)) for x in res["votes"]],
                          ["detector", "verdict", "p_fake", "confidence", "votes", "weight"]))
        out.append(f"<p>Votes fake {_fmt(res['votes_fake'], 3)} · real {_fmt(res['votes_real'], 3)} · weighted "
                   f"confidence {_fmt(res['confidence'], 3)} · mean-logit P(fake) {_fmt(res['p_mean_logit'], 3)} · "
                   f"soft-OR P(fake) {_fmt(res['p_soft_or'], 3)}</p>")

    # -- robustness
    rb = d.get("robustness")
    out.append("<h2>Robustness probe</h2>")
    if rb:
        conds = rb["conditions"]
        dets = list(dict.fromkeys(r["detector"] for r in rb["rows"]))
        cell = {(r["detector"], r["condition"]): r for r in rb["rows"]}
        series = [(n, list(range(len(conds))), [cell.get((n, c["key"]), {}).get("p_fake") for c in conds])
                  for n in dets]
        series = [(n, xs, [float("nan") if y is None else y for y in ys]) for n, xs, ys in series]
        out.append(svg_line_chart(series, x_labels=[c["label"] for c in conds], y_range=(0.0, 1.0), hline=0.5,
                                  y_title="p_fake", x_title="condition"))
        out.append("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in rb["summary"]) + "</ul>")
        out.append(_table([[n] + [_fmt(cell.get((n, c["key"]), {}).get("p_fake"), 3) +
                                  (" ✗" if cell.get((n, c["key"]), {}).get("label") == "error" else "")
                                  for c in conds] for n in dets], ["detector"] + [c["label"] for c in conds]))
        out.append("<p class='muted'>" + "; ".join(f"{_e(c['label'])}: {_e(c['description'])}" for c in conds)
                   + "</p>")
    else:
        out.append("<p>Not run.</p>")

    # -- forensic views
    fz = d["forensics"]
    out.append("<h2>Forensic views (no learned weights)</h2>")
    fr = ev.frequency
    out.append(f"<h3>Frequency</h3><p>{_e(fr.summary)}</p>")
    out.append(_fig(_png_b64(F.to_image(fr.energy_spectrum)), "Spectrum of the residual energy (|∂x|+|∂y|): "
                    "up-sampling by k gives peaks at 1/k cycles/pixel"))
    out.append(_fig(_png_b64(F.to_image(fr.spectrum)), "Spectrum of the linear high-pass residual: generator "
                    "fingerprints show as a grid of dots"))
    xs = [float(v) for v in fr.radial_freq]
    out.append(svg_line_chart([("residual", xs, [float(v) for v in fr.radial_power]),
                               ("residual energy", xs, [float(v) for v in fr.radial_energy])],
                              x_title="frequency (cycles/pixel)", y_title="log RMS magnitude per ring", markers=False))
    if fr.peaks:
        out.append(_table([(p.period_px, p.direction, p.source, f"{p.strength:.2f}") for p in fr.peaks],
                          ["period (px)", "direction", "spectrum", "strength (log units)"]))
    n = fz["npr"]
    out.append(f"<h3>NPR residual</h3><p>{_e(ev.npr.summary)}</p>")
    out.append(_fig(_png_b64(F.to_image(ev.npr.residual, "signed")), "x − up(down(x)), grey = 0"))
    out.append(_table([("mean |r|", _fmt(n["mean_abs"], 3)), ("std", _fmt(n["std"], 3)), ("max |r|", n["max_abs"]),
                       ("exact zeros", _fmt(n["zero_fraction"], 3)),
                       ("mean |r| per 2×2 offset", ", ".join(_fmt(v, 2) for v in n["phase_mean_abs"]))]))
    out.append(f"<h3>Error level analysis (JPEG {ev.ela.quality})</h3><p>{_e(ev.ela.summary)}</p>")
    out.append(_fig(_png_b64(F.to_image(ev.ela.error, "magnitude")), "ELA: brighter = changes more on re-save"))
    out.append(f"<h3>Noise residual</h3><p>{_e(ev.noise.summary)}</p>")
    out.append(_fig(_png_b64(F.to_image(ev.noise.residual, "signed")), "luma − median 3×3, grey = 0"))
    if ev.noise.block_std.size:
        out.append(_fig(_png_b64(F.to_image(ev.noise.block_std, "magnitude").resize(
            (ev.noise.block_std.shape[1] * 8, ev.noise.block_std.shape[0] * 8), Image.NEAREST)),
            "noise level per 32×32 block (brighter = noisier)"))

    # -- metadata
    out.append("<h2>Metadata (supporting evidence only)</h2>")
    ex = md["exif"]
    out.append("<h3>EXIF</h3>")
    if ex["present"]:
        out.append(_table([("Camera", ex["camera"]), ("Software", ex["software"]), ("Lens", ex["lens"]),
                           ("Taken", ex["datetime_original"]), ("Digitised", ex["datetime_digitized"]),
                           ("Modified", ex["datetime_modified"]),
                           ("GPS", "present" + ("" if ex["gps"] else " (left out of this report)") if ex["has_gps"]
                            else "none")]))
        if ex["gps"]:
            g = ex["gps"]
            out.append(_table([("Latitude", g["latitude"]), ("Longitude", g["longitude"]),
                               ("Altitude (m)", g["altitude_m"])]))
        out.append("<details><summary>All EXIF fields</summary>" + _table(ex["fields"], ["tag", "value"]) +
                   "</details>")
    else:
        out.append("<p>No EXIF.</p>")
    pv = md["provenance"]
    out.append("<h3>XMP / IPTC / text</h3>")
    rows = [("XMP packet", "present" if pv["xmp_present"] else "none"), ("CreatorTool", pv["creator_tool"])]
    rows += [(f"DigitalSourceType ({s['where']})", f"{s['code']}: {s['label']}" + (" — FLAGGED" if s["generated"]
                                                                                     else ""))
             for s in pv["digital_source_types"]]
    rows += [(f"IPTC {k}", v) for k, v in pv["iptc"]]
    rows += [(f"text chunk '{k}'", v) for k, v in pv["text_chunks"]]
    out.append(_table(rows))
    c2 = md["c2pa"]
    out.append("<h3>C2PA (Content Credentials)</h3>")
    out.append(f"<p>{_e(c2['note'])}</p>")
    if c2["present"]:
        out.append(_table([("Validation", c2["validation_state"] if c2["validated"] else "unavailable"),
                           ("Library", c2["library"]), ("Claim generator", c2["claim_generator"]),
                           ("Signer", c2["signer"]), ("Title", c2["title"]), ("Actions", ", ".join(c2["actions"])),
                           ("DigitalSourceType", ", ".join(s["code"] for s in c2["digital_source_types"])),
                           ("Failed checks", "; ".join(c2["failures"]) or "none")]))
    jp = md["jpeg"]
    out.append("<h3>JPEG</h3>" + f"<p>{_e(jp['summary'])}</p>")
    if jp["is_jpeg"]:
        out.append("".join(f"<figure>{_qtable(t)}<figcaption>quantisation table {i} "
                           f"({'luminance' if i == 0 else 'chrominance'})</figcaption></figure>"
                           for i, t in enumerate(jp["qtables"])))

    # -- environment
    out.append("<h2>Environment</h2>")
    out.append(_table(list(d["environment"].items()), ["library", "version"]))
    out.append(_table([(k, json.dumps(v)) for k, v in d["settings"].items()], ["setting", "value"]))
    out.append("<p class='muted'>The same image, detectors and settings give the same report apart from the "
               "generation time. report.json holds every number shown here.</p></body></html>")
    return "\n".join(out) + "\n"


def image_png_b64(arr: np.ndarray, mode: str = "stretch") -> str:
    """A 2-D array as a ``data:`` PNG URI (handy for embedding views elsewhere)."""
    return _png_b64(F.to_image(arr, mode))  # type: ignore[arg-type]


__all__ = ["CaseReport", "build_report", "library_versions", "svg_line_chart", "REPORT_VERSION", "image_png_b64"]
