"""The case report as one self-contained HTML page, rendered from ``template.html`` (Jinja2).

The template is autoescaped: every string from the file or the user (file name, EXIF, XMP, C2PA, detector
messages) is escaped when it is written. Only markup this package builds itself is marked safe: the inline SVG
charts (whose labels :mod:`core.report.svg` escapes) and ``<code>`` cells made by :func:`_code`. Images are
embedded as base64 PNG ``data:`` URIs, so the page fetches nothing.
"""
from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from PIL import Image

from core import forensics as F
from core.report.svg import svg_line_chart

IMAGE_SIDE = 768            # embedded images are shrunk to this long side (keeps the HTML a few MB at most)


def _png_b64(img: Image.Image, side: int = IMAGE_SIDE) -> str:
    if max(img.size) > side:
        s = side / max(img.size)
        img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# ----------------------------------------------------------------------------------------------- filters

def fmt(v: Any, nd: int = 4) -> str:
    """A number with ``nd`` decimals ("—" for None or non-finite); other values as text."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _fmt_list(values: Iterable[Any], nd: int = 2) -> str:
    return ", ".join(fmt(v, nd) for v in values)


def _box(values: Iterable[float]) -> str:
    return "(" + ", ".join(str(round(v)) for v in values) + ")"


def _thousands(n: int) -> str:
    return f"{n:,}"


def _weights(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in weights.items())


def _face_rows(faces: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [(x["index"], _box(x["box"]), fmt(x["detection_prob"], 3), fmt(x["p_fake"]), x["label"]) for x in faces]


def _vote_rows(votes: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    return [(x["detector_id"], x["label"], fmt(x["p_fake"]), fmt(x["score"], 3), "yes" if x["voted"] else "no",
             fmt(x["weight"], 2)) for x in votes]


def _peak_rows(peaks: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [(p.period_px, p.direction, p.source, f"{p.strength:.2f}") for p in peaks]


def _json_row(item: tuple[str, Any]) -> tuple[str, str]:
    return item[0], json.dumps(item[1])


def _code(text: Any) -> Markup:
    """``<code>text</code>`` with the text escaped (a table cell the template must not escape again)."""
    return Markup("<code>{}</code>").format("—" if text is None else text)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True,
                             finalize=lambda v: "—" if v is None else v)   # a missing value reads as a dash
    env.filters.update(fmt=fmt, fmt_list=_fmt_list, box=_box, thousands=_thousands, weights=_weights,
                       face_rows=_face_rows, vote_rows=_vote_rows, peak_rows=_peak_rows, json_row=_json_row)
    env.globals["code"] = _code
    return env


_ENV = _environment()


# ----------------------------------------------------------------------------------------------- view data

def _images(ev: F.Evidence, image: Image.Image) -> dict[str, str | None]:
    """The embedded pictures as ``data:`` URIs (None where a view is empty)."""
    blocks = ev.noise.block_std
    return {
        "image": _png_b64(image),
        "energy_spectrum": _png_b64(F.to_image(ev.frequency.energy_spectrum)),
        "spectrum": _png_b64(F.to_image(ev.frequency.spectrum)),
        "npr": _png_b64(F.to_image(ev.npr.residual, ev.npr.map_mode)),     # magnitude once shrunk
        "ela": _png_b64(F.to_image(ev.ela.error, "magnitude")),
        "noise": _png_b64(F.to_image(ev.noise.residual, ev.noise.map_mode)),
        "noise_blocks": _png_b64(F.to_image(blocks, "magnitude").resize((blocks.shape[1] * 8, blocks.shape[0] * 8),
                                                                         Image.NEAREST)) if blocks.size else None,
    }


def _robustness(rb: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The probe as a detector × condition table of p_fake (``✗`` marks a condition the detector failed on)."""
    if not rb:
        return None
    conds = rb["conditions"]
    cell = {(r["detector"], r["condition"]): r for r in rb["rows"]}
    names = list(dict.fromkeys(r["detector"] for r in rb["rows"]))
    rows = [[n] + [fmt(cell.get((n, c["key"]), {}).get("p_fake"), 3)
                   + (" ✗" if cell.get((n, c["key"]), {}).get("label") == "error" else "") for c in conds]
            for n in names]
    series = [(n, list(range(len(conds))), [_nan_if_none(cell.get((n, c["key"]), {}).get("p_fake")) for c in conds])
              for n in names]
    return {"conditions": conds, "labels": [c["label"] for c in conds], "rows": rows, "series": series}


def _nan_if_none(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _charts(ev: F.Evidence, robustness: Mapping[str, Any] | None) -> dict[str, Markup | None]:
    fr = ev.frequency
    xs = [float(v) for v in fr.radial_freq]
    radial = svg_line_chart([("residual", xs, [float(v) for v in fr.radial_power]),
                             ("residual energy", xs, [float(v) for v in fr.radial_energy])],
                            x_title="frequency (cycles/pixel)", y_title="log RMS magnitude per ring", markers=False)
    probe = None
    if robustness:
        probe = svg_line_chart(robustness["series"], x_labels=robustness["labels"], y_range=(0.0, 1.0), hline=0.5,
                               y_title="p_fake", x_title="condition")
    # svg_line_chart escapes every label it writes, so its output is markup this package vouches for
    return {"radial": Markup(radial), "robustness": Markup(probe) if probe else None}


def render_html(d: Mapping[str, Any], ev: F.Evidence, image: Image.Image) -> str:
    """The report page for the report data ``d`` (see build.py), its forensic evidence and the image."""
    rob = _robustness(d.get("robustness"))
    return _ENV.get_template("template.html").render(d=d, ev=ev, img=_images(ev, image), size=image.size,
                                                     robustness=rob, charts=_charts(ev, rob))


def image_png_b64(arr: Any, mode: str = "stretch") -> str:
    """A 2-D array as a ``data:`` PNG URI (handy for embedding views elsewhere)."""
    return _png_b64(F.to_image(arr, mode))  # type: ignore[arg-type]


__all__ = ["render_html", "image_png_b64", "fmt", "IMAGE_SIDE"]
