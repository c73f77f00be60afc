"""The case report as one self-contained HTML page: a template (template.html) filled with escaped sections.

Every string that comes from the file or the user is escaped here (``_e``); only markup built by this module is
inserted raw.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from string import Template
from typing import Any

from PIL import Image

from core import forensics as F
from core.report.svg import svg_line_chart

IMAGE_SIDE = 768            # embedded images are shrunk to this long side (keeps the HTML a few MB at most)
_TEMPLATE = Template((Path(__file__).with_name("template.html")).read_text(encoding="utf-8"))


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


def _fig(src: str, caption: str) -> str:
    return f'<figure><img src="{src}" alt="{_e(caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _qtable(t: Sequence[int]) -> str:
    rows = [t[i * 8:(i + 1) * 8] for i in range(8)]
    return "<table class='q'>" + "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>"
                                         for r in rows) + "</table>"


def _section_summary(d: dict[str, Any]) -> str:
    out: list[str] = []
    md = d["metadata"]
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
    return "\n".join(out)


def _section_file(d: dict[str, Any], image: Image.Image) -> str:
    out: list[str] = []
    f = d["file"]
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
    return "\n".join(out)


def _section_detectors(d: dict[str, Any]) -> str:
    out: list[str] = []
    ens = d.get("ensemble")
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
    return "\n".join(out)


def _section_robustness(d: dict[str, Any]) -> str:
    out: list[str] = []
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
    return "\n".join(out)


def _section_forensic_views(d: dict[str, Any], ev: F.Evidence) -> str:
    out: list[str] = []
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
    return "\n".join(out)


def _section_metadata(d: dict[str, Any]) -> str:
    out: list[str] = []
    md = d["metadata"]
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
    return "\n".join(out)


def _section_environment(d: dict[str, Any]) -> str:
    out: list[str] = []
    out.append("<h2>Environment</h2>")
    out.append(_table(list(d["environment"].items()), ["library", "version"]))
    out.append(_table([(k, json.dumps(v)) for k, v in d["settings"].items()], ["setting", "value"]))
    out.append("<p class='muted'>The same image, detectors and settings give the same report apart from the "
               "generation time. report.json holds every number shown here.</p>")
    return "\n".join(out) + "\n"
    return "\n".join(out)


def render_html(d: dict[str, Any], ev: F.Evidence, image: Image.Image) -> str:
    """The report page for the report data ``d`` (see build.py), its forensic evidence and the image."""
    f = d["file"]
    body = [_section_summary(d), _section_file(d, image), _section_detectors(d), _section_robustness(d),
            _section_forensic_views(d, ev), _section_metadata(d), _section_environment(d)]
    return _TEMPLATE.substitute(
        title=_e(f["name"]), name=_e(f["name"]), generated=_e(d["generated_at"]), version=_e(d["tool"]["version"]),
        report_version=_e(d["report_version"]), notice=_e(d["notice"]), body="\n".join(body))


def image_png_b64(arr: Any, mode: str = "stretch") -> str:
    """A 2-D array as a ``data:`` PNG URI (handy for embedding views elsewhere)."""
    return _png_b64(F.to_image(arr, mode))  # type: ignore[arg-type]
