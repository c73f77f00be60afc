"""Shared test helpers (a package, so test modules never import conftest): tiny test detectors, generated images,
hook inspection. Fixtures live in tests/conftest.py.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


TINY_YAML = """\
id: TINY
variant: original
default: true
arch: tiny_cnn
weights:
  file: tiny.pt
  container: model
  sources:
    - {{type: url, url: "http://127.0.0.1:9/tiny.pt"}}
preprocess: {{mode: full, large_crop: 64}}
threshold: 0.5
ensemble_weight: {weight}
explain: {{target_layer: conv2}}
card: {{title: Tiny test detector, paper: none, licence: MIT, training_data: none}}
"""


def png_bytes(size: tuple[int, int] = (48, 40), seed: int = 0, mode: str = "RGB") -> bytes:
    """A small generated image encoded as PNG."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, format="PNG")
    return buf.getvalue()


def make_tiny_checkpoint(path: Path, seed: int = 0, container: str = "model", bias: float | None = None) -> Path:
    """Save a tiny_cnn state dict with deterministic weights (wrapped in ``{'model': ...}`` by default).

    ``bias`` makes a decided test detector: the head ignores the image and outputs that logit.
    """
    from core.models.detectors.tiny import TinyCNN
    torch.manual_seed(seed)
    sd = TinyCNN().state_dict()
    if bias is not None:
        sd["fc.weight"] = torch.zeros_like(sd["fc.weight"])
        sd["fc.bias"] = torch.full_like(sd["fc.bias"], bias)
    torch.save({container: sd} if container != "raw" else sd, path)
    return path


def install_tiny_detectors(config_dir: Path, weights_dir: Path, specs: dict[str, tuple[float, float]]) -> None:
    """Declare and install decided tiny detectors: id → (ensemble weight, logit)."""
    from core.models import install
    from core.models.registry import get_spec
    for det_id, (weight, logit) in specs.items():
        (config_dir / f"{det_id.lower()}.yaml").write_text(TINY_YAML.replace("id: TINY", f"id: {det_id}")
                                                           .format(weight=weight))
    for det_id, (_, logit) in specs.items():
        src = make_tiny_checkpoint(config_dir / f"{det_id}.pt", bias=logit)
        install.import_file(src, get_spec(det_id), weights_dir=weights_dir)


def mark_zip_member_encrypted(raw: bytes, name: bytes) -> bytes:
    """Set the 'encrypted' flag bit of one member in its local and central headers (zipfile cannot write it)."""
    data = bytearray(raw)
    for sig, flag_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        pos = data.find(sig)
        while pos >= 0:
            if data[pos + name_at:pos + name_at + len(name)] == name:
                data[pos + flag_at] |= 0x1
            pos = data.find(sig, pos + 4)
    return bytes(data)


def hooks_left(model: torch.nn.Module) -> list[str]:
    """Every hook still registered anywhere in ``model`` (Grad-CAM must leave none on a shared model)."""
    left = []
    for name, m in model.named_modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            if getattr(m, attr, None):
                left.append(f"{name or '<root>'}.{attr}")
    return left


# A tiny open_clip ViT (2 layers, width 64) registered by tests that need CLIP's structure without ViT-L's size.
TINY_OPEN_CLIP_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def register_tiny_open_clip(folder: Path, name: str) -> str:
    """Register :data:`TINY_OPEN_CLIP_CFG` with open_clip as model ``name`` (its JSON written under ``folder``)."""
    import open_clip

    cfg = Path(folder) / f"{name}.json"
    cfg.write_text(json.dumps(TINY_OPEN_CLIP_CFG))
    open_clip.add_model_config(cfg)
    return name
