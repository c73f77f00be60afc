"""Golden parity of P2G with its backbone given as OpenAI's own TorchScript archive (the layout of ``ViT-B-16.pt``).

The golden backbone (``fill_state_dict(seed=0)`` over the manifest's 302 OpenAI key names, plus the three non-weight
entries OpenAI's archive carries) is written with ``torch.jit.save`` of a module holding exactly those tensors. The
production path reads it without running any of its code, its tensors equal ``torch.jit.load``'s bit for bit, and
``create_detector("P2G", backbone_weights=<archive>)`` gives the golden P2G result on every golden image.
"""
from __future__ import annotations

import warnings

import pytest
import torch

from core.models.checkpoint import load_verified
from core.models.factory import create_detector
from tests.golden.test_golden_p2g import CKPT, IMAGES
from tests.golden.test_golden_p2g import test_image_parity as image_parity
from tests.helpers.golden import fill_state_dict, golden, manifest, requires_golden
from tests.unit.test_checkpoint_integrity import save_torchscript

pytestmark = [requires_golden, pytest.mark.slow]

# Entries of OpenAI's archive that are not weights (clip.build_model deletes them; so do we).
OPENAI_EXTRAS = {"input_resolution": 224, "context_length": 77, "vocab_size": 49408}


@pytest.fixture(scope="module")
def gold() -> dict:
    return golden("P2G")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The golden backbone as a TorchScript archive with OpenAI's key names, and the state dict it holds."""
    template = {k: torch.empty(shape) for k, shape in manifest("P2G")["backbone"]["keys"].items()}
    filled = fill_state_dict(template, seed=0)
    filled.update({k: torch.tensor(v) for k, v in OPENAI_EXTRAS.items()})
    path = save_torchscript(filled, tmp_path_factory.mktemp("openai") / "ViT-B-16.pt")
    return path, filled


@pytest.fixture(scope="module")
def det(archive):
    if not CKPT.is_file():
        pytest.skip(f"the real Prompt2Guard CDDB checkpoint {CKPT} is absent")
    return create_detector("P2G", weights=CKPT, backbone_weights=archive[0])


def test_archive_is_read_bit_identical_to_torch_jit_load(archive):
    path, filled = archive
    loaded = load_verified(path, "P2G")
    assert loaded.kind == "torchscript"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference = torch.jit.load(str(path)).state_dict()     # our own archive: safe to run torch's loader
    assert set(loaded.obj) == set(reference) == set(filled)
    assert len(reference) == len(manifest("P2G")["backbone"]["keys"]) + len(OPENAI_EXTRAS)
    for k, v in reference.items():
        assert loaded.obj[k].dtype == v.dtype and torch.equal(loaded.obj[k], v), k


def test_detector_uses_the_archive_weights(det, archive):
    _, filled = archive
    ours = det.model.clip.state_dict()
    assert set(ours) == set(filled) - set(OPENAI_EXTRAS)
    for k, v in ours.items():
        assert torch.equal(v, filled[k].float()), k
    assert det.backbone_sha256 == load_verified(archive[0], "P2G").sha256


@pytest.mark.parametrize("name", IMAGES)
def test_image_parity_with_torchscript_backbone(det, gold, name):
    image_parity(det, gold, gold["strict_tolerance"], name)
