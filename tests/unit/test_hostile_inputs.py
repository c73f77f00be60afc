"""Every strange file ends as a correct RGB image or core.BadImage with a human sentence — nothing else."""
from __future__ import annotations

import pytest
from tests.helpers.corpus import all_cases
from PIL import Image

from core import BadImage, load_image

CASES = all_cases()


def test_corpus_is_large_enough():
    assert len(CASES) >= 100, len(CASES)


@pytest.mark.timeout(60)                      # a hang guard, not a speed assertion
@pytest.mark.parametrize("name, data, expect, check", CASES, ids=[c[0] for c in CASES])
def test_case(name, data, expect, check, tmp_path):
    path = tmp_path / name
    path.write_bytes(data)
    for src in (path, data):                  # the file path and the raw bytes (an upload) behave the same
        try:
            img = load_image(src)
        except BadImage as exc:
            assert expect in ("bad", "either"), f"{name} was refused: {exc}"
            why = exc.why
            assert why and why[0].islower() and why.endswith((".", ")")) and "Traceback" not in why, why
            assert len(why) < 300
            continue
        assert expect in ("ok", "either"), f"{name} decoded but should have been refused"
        assert isinstance(img, Image.Image) and img.mode == "RGB" and img.width > 0 and img.height > 0
        if check is not None:
            check(img)


def test_pixel_limit_message_is_specific():
    from tests.helpers.corpus import _png_header_only
    with pytest.raises(BadImage, match="MP limit"):
        load_image(_png_header_only(20000, 20000))
