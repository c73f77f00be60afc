"""FACE behaviour: every face found, the most suspicious face decides, no face is not an error, MTCNN alone works
without classifier weights, and Grad-CAM leaves the shared model untouched even under concurrent use."""
from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest
import torch
from tests.helpers import hooks_left
from PIL import Image

from core.errors import BadImage, ConfigError
from core.models.detectors import face as face_mod
from core.models.detectors.face import FaceCfg, FaceDetector, find_faces, paste_heatmaps
from core.models.explain import Explanation, get_submodule_by_path
from core.models.factory import create_detector
from core.models.registry import get_spec
from tests.helpers.golden import (
    GOLDEN,
    fill_state_dict,
    golden,
    golden_image,
    requires_golden,
)

# --------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    """FACE with deterministic classifier weights (the goldens' seed-0 fill when available), built once."""
    torch.manual_seed(0)
    det = create_detector("FACE", pretrained=False)
    if GOLDEN.is_dir():
        det.model.load_state_dict(fill_state_dict(det.model.state_dict(), seed=0), strict=True)
    det.model.eval()
    return det


@pytest.fixture(scope="module")
def group_image() -> Image.Image:
    """Both golden faces pasted side by side on one canvas (a two-person 'group photo')."""
    a, b = golden_image("faces/face_1.jpg"), golden_image("faces/face_2.jpg")
    canvas = Image.new("RGB", (a.width + b.width, max(a.height, b.height)), (128, 128, 128))
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width, 0))
    return canvas


@pytest.fixture(scope="module")
def group_explained(detector, group_image):
    """The group photo scored with per-face Grad-CAM, computed once (MTCNN + two forwards + two explanations)."""
    return detector.predict_faces(group_image, with_cam=True)


def _gradient(w: int = 320, h: int = 240) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float64)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.float64)[:, None].repeat(w, 1)
    arr = np.stack([x, y, (x + y) / 2], axis=-1).astype(np.uint8)
    return Image.fromarray(arr, "RGB")




# --------------------------------------------------------------------------------------------- spec / config

def test_spec_from_yaml():
    spec = get_spec("FACE")
    assert (spec.arch, spec.variant, spec.default) == ("face_incres", "original", True)
    assert spec.weights.file == "resnetinceptionv1_epoch_32.pth"
    assert spec.weights.container == "model_state_dict"
    src = spec.weights.sources[0]
    assert (src.type, src.repo_id, src.filename) == ("hf", "aaronespasa/deepfake-detection-resnetinceptionv1",
                                                    "resnetinceptionv1_epoch_32.pth")
    assert spec.weights.licence == "Apache-2.0"
    assert spec.preprocess.mode == "face"
    assert spec.threshold == 0.5 and spec.ensemble_weight == 0.0
    assert spec.explain_layer == "block8.branch1.-1"
    assert spec.card.code.startswith("https://github.com/aaronespasa/deepfake-detection")
    assert FaceCfg.from_options(spec.options) == FaceCfg()


@pytest.mark.parametrize("options", [{"thresholds": [0.6, 0.7]}, {"factor": 1.5}, {"face_size": 0},
                                     {"margin": -1}, {"min_face": 20}, {"margin": 160}])
def test_bad_options_rejected(options):
    with pytest.raises(ConfigError, match="options"):
        FaceCfg.from_options(options)


def test_explain_layer_resolves(detector):
    layer = get_submodule_by_path(detector.model, get_spec("FACE").explain_layer)
    assert layer is detector.model.block8.branch1[-1]


# --------------------------------------------------------------------------------------------- no face

def test_no_face_gradient(detector):
    img = _gradient()
    assert find_faces(img) == []
    r = detector.predict(img)
    assert r.label == "no_face" and not r.ok
    assert math.isnan(r.logit) and math.isnan(r.p_fake)
    assert r.details == {"message": "no face found"}
    assert r.faces == () and r.crop_box is None and r.image_size == img.size
    json.dumps(r.to_dict())                               # NaN becomes null: JSON-ready
    with pytest.raises(BadImage, match="no face"):
        detector.prepare(img)


@pytest.mark.parametrize("size,mode", [((8, 8), "RGB"), ((19, 300), "RGB"), ((64, 48), "L"), ((40, 40), "RGBA")])
def test_no_face_tiny_or_odd_images(detector, size, mode):
    img = Image.new(mode, size)
    assert detector.predict(img).label == "no_face"
    assert detector.predict_faces(img, with_cam=True).label == "no_face"


def test_predict_batch_matches_predict(detector):
    imgs = [_gradient(), _gradient(200, 100)]
    assert [r.label for r in detector.predict_batch(imgs)] == ["no_face", "no_face"]


# --------------------------------------------------------------------------------------------- faces (golden photos)

@requires_golden
def test_find_faces_without_classifier_weights():
    # Module-level MTCNN only: no detector, no checkpoint, nothing downloaded.
    faces = find_faces(golden_image("faces/face_1.jpg"))
    assert len(faces) == 1
    f = faces[0]
    assert f.label == "unscored" and math.isnan(f.logit) and math.isnan(f.p_fake)
    assert f.detection_prob > 0.99 and len(f.landmarks) == 5
    x1, y1, x2, y2 = f.box
    assert all(x1 <= px <= x2 and y1 <= py <= y2 for px, py in f.landmarks)
    assert face_mod.get_mtcnn() is face_mod.get_mtcnn()      # one cached MTCNN per process


@requires_golden
def test_group_image_finds_both_faces(detector, group_image, group_explained):
    faces = detector.find_faces(group_image)
    assert len(faces) == 2
    assert [f.index for f in faces] == [0, 1]
    assert faces[0].detection_prob >= faces[1].detection_prob
    split = 520                                              # width of face_1, the left half
    assert sorted(f.box[2] <= split for f in faces) == [False, True]   # one face in each half

    r = group_explained
    assert [f.box for f in r.faces] == [f.box for f in faces]
    assert r.ok and len(r.faces) == 2 and r.details["n_faces"] == 2
    best = max(r.faces, key=lambda f: f.p_fake)
    assert r.p_fake == best.p_fake and r.logit == best.logit and r.crop_box == best.crop_box
    assert r.details["deciding_face"] == best.index
    assert r.input_size == (256, 256) and r.resized
    assert all(f.label in ("real", "fake") for f in r.faces)


@requires_golden
def test_first_face_is_the_reference_selection(detector, group_image):
    # The reference app runs MTCNN with keep_all=False (highest probability); our face 0 must be that face,
    # with the identical 160 px crop.
    from facenet_pytorch import MTCNN
    ref = MTCNN(image_size=160, margin=0, min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709,
                post_process=False, select_largest=False, keep_all=False)
    ref_crop, ref_prob = ref(group_image, return_prob=True)
    ours = detector.prepare_faces(group_image)[0]
    assert torch.equal(ours.crop, ref_crop)
    assert ours.face.detection_prob == pytest.approx(float(ref_prob), abs=1e-6)
    # The reported crop box is exactly the region that was cropped.
    cropped = group_image.crop(ours.face.crop_box).resize((160, 160), Image.BILINEAR)
    assert torch.equal(torch.from_numpy(np.asarray(cropped, dtype=np.float32)).permute(2, 0, 1), ours.crop)


# --------------------------------------------------------------------------------------------- Grad-CAM

@requires_golden
def test_gradcam_per_face_and_pasted(detector, group_image, group_explained):
    r = group_explained
    for f in r.faces:
        assert f.heatmap is not None and f.heatmap.shape == (256, 256) and f.heatmap.dtype == np.float32
        assert np.isfinite(f.heatmap).all() and f.heatmap.min() >= 0.0 and f.heatmap.max() <= 1.0
        assert f.heatmap.max() > 0.0
    assert hooks_left(detector.model) == []
    assert all(p.grad is None and p.requires_grad for p in detector.model.parameters())   # model as found

    full = paste_heatmaps(group_image.size, r.faces)
    w, h = group_image.size
    assert full.shape == (h, w) and full.dtype == np.float32
    assert full.min() >= 0.0 and full.max() <= 1.0
    inside = np.zeros((h, w), dtype=bool)
    for f in r.faces:
        x1, y1, x2, y2 = f.crop_box
        inside[y1:y2, x1:x2] = True
        assert full[y1:y2, x1:x2].max() > 0.0
    assert not full[~inside].any()                           # nothing outside the faces


@requires_golden
def test_gradcam_thread_safe(detector):
    full = golden_image("faces/face_1.jpg")
    img = full.resize((full.width // 2, full.height // 2), Image.BILINEAR)   # smaller: quicker MTCNN, same face
    explained = detector.predict_faces(img, with_cam=True)
    assert explained.logit == detector.predict(img).logit          # explaining does not change the score
    reference = explained.faces[0].heatmap
    results: list[np.ndarray | None] = [None] * 8
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = detector.predict_faces(img, with_cam=True).faces[0].heatmap
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for heat in results:
        assert heat is not None
        np.testing.assert_array_equal(heat, reference)
    assert hooks_left(detector.model) == []


def test_paste_heatmaps_skips_faces_without_heatmap():
    from core.results import FaceResult
    f = FaceResult(index=0, box=(0.0, 0.0, 10.0, 10.0), detection_prob=0.9, landmarks=(), crop_box=(0, 0, 10, 10))
    out = paste_heatmaps((20, 30), [f])
    assert out.shape == (30, 20) and not out.any()


# --------------------------------------------------------------------------------------------- checkpoint

@requires_golden
def test_loads_checkpoint_in_reference_container(detector, tmp_path):
    # The published file wraps the state dict: {'epoch', 'model_state_dict', 'optimizer_state_dict',
    # 'validation_loss'}; the YAML's container must unwrap it with a strict load.
    path = tmp_path / "resnetinceptionv1_epoch_32.pth"
    torch.save({"epoch": 32, "model_state_dict": detector.model.state_dict(),
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.001, "params": [0, 1]}]},
                "validation_loss": 0.25}, path)
    det = create_detector("FACE", weights=path)
    assert det.weights_sha256 is not None and len(det.weights_sha256) == 64
    img = golden_image("faces/face_1.jpg")
    r = det.predict(img)
    assert r.weights_sha256 == det.weights_sha256
    # Same (seed-0 filled) weights as the goldens, loaded through the checkpoint path: same logit.
    assert abs(r.logit - golden("FACE")["images"]["faces/face_1.jpg"]["logit"]) <= 1e-5
    prep = det.prepare(img)
    assert tuple(prep.tensor.shape) == (3, 256, 256) and prep.crop_box == r.crop_box
    assert len(prep.aux["faces"]) == 1


def test_explain_gives_one_full_image_map(detector, group_image, group_explained):
    exp = detector.explain(group_image)
    assert isinstance(exp, Explanation) and exp.target_layer == "block8.branch1.-1"
    assert exp.heatmap.shape == (group_image.height, group_image.width)
    np.testing.assert_allclose(exp.heatmap, paste_heatmaps(group_image.size, group_explained.faces), atol=1e-6)
