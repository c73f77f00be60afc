"""`python -m core detect --weights ... [--backbone ...] --json` scores an image with each of the six detectors.

Checkpoint files are written by the test in each detector's official container layout (random weights: this
checks the plumbing, not the numbers — the golden tests check the numbers). P2G uses the real CDDB prompts.
"""
from __future__ import annotations

import gc
import json
import math
from pathlib import Path

import pytest
import torch
from tests.helpers.golden import SHARED

from core.cli.main import main
from core.examples import example_bytes, list_examples
from core.models.factory import create_detector

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def face_photo(tmp_path_factory):
    ex = next(e for e in list_examples() if e.source == "skimage:astronaut")
    p = tmp_path_factory.mktemp("img") / "astronaut.png"
    p.write_bytes(example_bytes(ex))
    return p


def _save(obj, path):
    torch.save(obj, path)
    return str(path)


@pytest.mark.parametrize("det_id", ["R50_TF", "R50_nodown", "NPR", "FACE", "CLIP-D", "P2G"])
def test_detect_json_for_each_detector(det_id, face_photo, tmp_path, capsys, weights_home):
    det = create_detector(det_id, pretrained=False)
    args = ["detect", str(face_photo), "--detector", det_id, "--json"]
    if det_id in ("R50_TF", "NPR"):
        args += ["--weights", _save(det.model.state_dict(), tmp_path / "w.pth")]
    elif det_id == "R50_nodown":
        args += ["--weights", _save({"model": det.model.state_dict(), "total_steps": 1}, tmp_path / "w.pth")]
    elif det_id == "FACE":
        args += ["--weights", _save({"epoch": 32, "model_state_dict": det.model.state_dict()}, tmp_path / "w.pth")]
    elif det_id == "CLIP-D":
        args += ["--weights", _save({"model": det.model.state_dict()}, tmp_path / "head.pth"),
                 "--backbone", _save(det.model.backbone_state_dict(), tmp_path / "bb.bin")]
    elif det_id == "P2G":
        ckpt = SHARED / "weights" / "p2g_cddb_best_results.tar"
        if not ckpt.is_file():
            pytest.skip(f"the real P2G checkpoint {ckpt} is absent")
        args += ["--weights", str(ckpt), "--backbone", _save(det.model.clip.state_dict(), tmp_path / "bb.bin")]
    del det
    gc.collect()
    code = main(args)
    out = capsys.readouterr()
    assert code == 0, out.err
    res = json.loads(out.out)
    # a file given with --weights is the user's own: the result never claims the official variant
    assert res["detector_id"] == det_id and res["variant"] == "custom"
    assert res["details"]["weights"] == "custom file " + Path(args[args.index("--weights") + 1]).name
    assert math.isfinite(res["logit"]) and 0.0 <= res["p_fake"] <= 1.0
    assert res["label"] in ("real", "fake") and len(res["weights_sha256"]) == 64
    expected_input = {"R50_TF": [512, 512], "R50_nodown": [512, 512], "NPR": [512, 512], "FACE": [256, 256],
                      "CLIP-D": [224, 224], "P2G": [224, 224]}[det_id]
    assert res["input_size"] == expected_input
    if det_id == "FACE":
        assert res["faces"] and res["crop_box"] == res["faces"][res["details"]["deciding_face"]]["crop_box"]
