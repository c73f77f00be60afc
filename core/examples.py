"""Example images the app offers: listed in data/examples/examples.yaml, each labelled with what is known."""
from __future__ import annotations

import io
from dataclasses import dataclass

import yaml
from PIL import Image

from core import settings
from core.io import load_image

EXAMPLES_DIR = settings.EXAMPLES_DIR


@dataclass(frozen=True)
class Example:
    """One example image."""

    name: str            # shown to the user
    source: str          # skimage:<name> | file:<name>
    origin: str          # camera | synthetic | ai-generated (only when known)
    credit: str


def list_examples() -> list[Example]:
    """Examples whose source is available here (scikit-image photos need scikit-image installed)."""
    data = yaml.safe_load((EXAMPLES_DIR / "examples.yaml").read_text()) or []
    out = []
    for item in data:
        ex = Example(str(item["name"]), str(item["source"]), str(item["origin"]), str(item.get("credit", "")))
        if ex.source.startswith("skimage:"):
            try:
                import skimage.data  # noqa: F401
            except ImportError:
                continue
        out.append(ex)
    return out


def example_bytes(example: Example) -> bytes:
    """The example encoded as PNG bytes (what an upload of it would be)."""
    kind, _, name = example.source.partition(":")
    if kind == "file":
        path = (EXAMPLES_DIR / name).resolve()
        if EXAMPLES_DIR.resolve() not in path.parents:
            raise ValueError(f"example path escapes the examples folder: {name}")
        return path.read_bytes()
    if kind == "skimage":
        import skimage.data
        arr = getattr(skimage.data, name)()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue()
    raise ValueError(f"unknown example source {example.source!r}")


def load_example(example: Example) -> Image.Image:
    """The example as an RGB image."""
    return load_image(example_bytes(example))
