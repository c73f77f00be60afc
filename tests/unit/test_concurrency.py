"""Shared cached detectors under 8 threads give the single-thread results; app sessions stay separate."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from tests.helpers import hooks_left
from PIL import Image

from core.examples import list_examples, load_example
from core.models.factory import create_detector

ROOT = Path(__file__).resolve().parents[2]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(5)
    return [Image.fromarray(rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8)) for i in range(4)]




@pytest.mark.timeout(600)
def test_eight_threads_share_a_cnn_detector_with_gradcam():
    torch.manual_seed(0)
    det = create_detector("NPR", pretrained=False)
    imgs = _images()
    ref = [(det.predict(im).logit, det.explain(im).heatmap) for im in imgs]
    params = {k: v.clone() for k, v in det.model.state_dict().items()}

    def work(i: int):
        im = imgs[i % len(imgs)]
        return i % len(imgs), det.predict(im).logit, det.explain(im).heatmap

    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(work, range(32)))
    for idx, logit, heat in out:
        assert abs(logit - ref[idx][0]) < 1e-5
        np.testing.assert_allclose(heat, ref[idx][1], atol=1e-5)
    assert hooks_left(det.model) == []
    assert all(torch.equal(v, params[k]) for k, v in det.model.state_dict().items())
    assert all(p.grad is None for p in det.model.parameters())


@pytest.mark.timeout(600)
def test_eight_threads_share_the_face_detector_with_gradcam():
    torch.manual_seed(0)
    det = create_detector("FACE", pretrained=False)
    astronaut = next(e for e in list_examples() if e.source == "skimage:astronaut")
    img = load_example(astronaut).resize((256, 256))
    ref = det.predict_faces(img, with_cam=True)
    assert ref.faces, "the example photo must contain a face"

    def work(_: int):
        return det.predict_faces(img, with_cam=True)

    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(work, range(8)))
    for r in out:
        assert abs(r.logit - ref.logit) < 1e-5 and len(r.faces) == len(ref.faces)
        np.testing.assert_allclose(r.faces[0].heatmap, ref.faces[0].heatmap, atol=1e-5)
    assert hooks_left(det.model) == []


def test_four_app_sessions_keep_their_own_results(tiny_config, weights_home):
    import streamlit as st
    from tests.helpers import install_tiny_detectors, png_bytes
    from streamlit.testing.v1 import AppTest
    st.cache_resource.clear()
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.6, 3.0), "TB": (0.4, -3.0)})
    sessions = [AppTest.from_file(str(ROOT / "Home.py"), default_timeout=120).run() for _ in range(4)]
    datas = [png_bytes((40 + i, 30), seed=i) for i in range(4)]
    for i, at in enumerate(sessions):                       # interleave: upload everywhere first
        at.file_uploader(key="home.upload").upload(f"img{i}.png", datas[i], "image/png").run()
    for at in sessions:
        at.button(key="home.run").click().run()
        assert not at.exception
    import hashlib
    for i, at in enumerate(sessions):
        cur = at.session_state["analyse.image"]
        assert cur.name == f"img{i}.png" and cur.sha256 == hashlib.sha256(datas[i]).hexdigest()
        results = at.session_state["analyse.results"]
        assert list(results) == [cur.sha256]                # only this session's image
        assert {r.image_size for r in results[cur.sha256].values()} == {(40 + i, 30)}
