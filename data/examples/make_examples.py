"""Render the project's own example images (deterministic; run once, outputs are committed).

Neither image is a photograph nor AI-generated: they are procedural renderings, useful to see how detectors and
forensic views react to clean synthetic content and to nearest-neighbour up-sampling.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def procedural_shapes(w: int = 384, h: int = 288, seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.stack([0.5 + 0.4 * np.sin(6 * x + 2 * y), 0.3 + 0.5 * y, 0.6 - 0.4 * x], -1)
    for _ in range(6):
        cx, cy, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
        m = (x - cx) ** 2 + ((y - cy) * h / w) ** 2 < r ** 2
        img[m] = rng.uniform(0, 1, 3)
    img += rng.normal(0, 0.02, img.shape)
    return Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))


def upsampled_texture(w: int = 384, h: int = 288, seed: int = 11) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = (rng.uniform(0, 1, (h // 2, w // 2, 3)) * 0.5 + 0.25)
    small = np.cumsum(small, axis=1) / np.arange(1, w // 2 + 1)[None, :, None]
    img = Image.fromarray((np.clip(small, 0, 1) * 255).astype(np.uint8))
    return img.resize((w, h), Image.NEAREST)


if __name__ == "__main__":
    procedural_shapes().save(HERE / "procedural_shapes.png", optimize=True)
    upsampled_texture().save(HERE / "upsampled_texture.png", optimize=True)
