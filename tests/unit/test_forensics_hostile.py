"""Forensics on hostile and large inputs: bounded XMP parsing, bounded memory, animations, whole-image views,
and the texts an analyst reads (JPEG grid before up-sampling, double compression with its scale)."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from PIL.PngImagePlugin import PngInfo

from core import forensics as F
from core.errors import BadImage
from core.forensics import common
from core.io import load_image, sniff_type
from core.verdict import abstention

ROOT = Path(__file__).resolve().parents[2]
C2PA_DIR = Path(os.environ.get("DEEPFAKE_LENS_SHARED", ROOT.parent / "shared")) / "c2pa"


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise_image(w: int, h: int, seed: int = 0, sigma: float = 1.0) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr).filter(ImageFilter.GaussianBlur(sigma))


def finishes(fn, timeout: float = 10.0):
    """Run ``fn`` in a thread; the test fails if it has not returned within ``timeout`` seconds."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["v"] = fn()
        except Exception as exc:  # noqa: BLE001 - re-raised in the test's thread below
            out["e"] = exc
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"still running after {timeout} s"
    if "e" in out:
        raise out["e"]  # type: ignore[misc]
    return out["v"]


def png_with_chunk_before_iend(png: bytes, kind: bytes, body: bytes) -> bytes:
    """Insert a chunk after the image data (Pillow writes text before it; other tools do not)."""
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    i = png.rindex(b"IEND") - 4
    return png[:i] + chunk + png[i:]


# ----------------------------------------------------------------------------------------------- XMP

@pytest.mark.parametrize("closed", [False, True])
def test_xmp_with_thousands_of_opening_tags_is_refused_quickly_in_one_sentence(closed):
    payload = "<x:xmpmeta>" * 22_000 + ("</x:xmpmeta>" if closed else "")
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", payload)
    data = encode(noise_image(32, 32), pnginfo=info)
    assert len(data) > 240_000
    m = finishes(lambda: F.read_metadata(data, "x.png"))           # the regex reader took 35 s on such a file
    assert m.provenance.xmp_present and m.provenance.xmp_error == F.XMP_UNPARSED
    assert [f for f in m.findings if "XMP" in f] == [F.XMP_UNPARSED]
    assert F.XMP_UNPARSED.startswith("XMP could not be parsed") and F.XMP_UNPARSED.count(". ") == 0
    assert m.provenance.creator_tool is None and m.provenance.digital_source_types == ()


@pytest.mark.parametrize("xmp", [
    ('<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
     '<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>'),                              # entity expansion
    '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>',
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>unclosed',                               # malformed
])
def test_hostile_or_malformed_xmp_is_one_sentence_and_nothing_else_breaks(xmp):
    data = encode(noise_image(40, 40), "JPEG", xmp=xmp.encode(), quality=90)
    m = F.read_metadata(data, "x.jpg")
    assert m.provenance.xmp_error == F.XMP_UNPARSED and "passwd" not in json.dumps(m.to_dict())
    assert m.jpeg.quality == 90 and m.file.detected_type == "JPEG"     # the rest of the metadata is intact


def test_xmp_and_generation_parameters_written_after_the_image_data_are_found():
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/"><xmp:CreatorTool>ComfyUI</xmp:CreatorTool>'
           '</rdf:Description></rdf:RDF></x:xmpmeta>')
    png = encode(noise_image(32, 32))
    png = png_with_chunk_before_iend(png, b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(
        xmp.encode()))
    png = png_with_chunk_before_iend(png, b"tEXt", b"parameters\x00a cat, Steps: 20")
    pv = F.read_metadata(png, "x.png").provenance
    assert pv.creator_tool == "ComfyUI" and pv.xmp_error is None
    assert ("parameters", "a cat, Steps: 20") in pv.text_chunks
    assert any("names a generator: 'ComfyUI'" in h for h in pv.generator_hints)
    assert ("CreatorTool", "ComfyUI") in pv.xmp_fields


def test_a_compressed_text_bomb_is_not_inflated_beyond_the_limit():
    from core.forensics.xmp import TEXT_MAX_BYTES, png_extras
    bomb = zlib.compress(b"A" * (64 * 1024 ** 2), 9)                  # 64 MB of text in ~64 KB
    png = png_with_chunk_before_iend(encode(noise_image(16, 16)), b"zTXt", b"comment\x00\x00" + bomb)
    texts = dict(finishes(lambda: png_extras(png)).texts)
    assert texts["comment"].startswith("<compressed text that could not be read")
    fits = png_with_chunk_before_iend(encode(noise_image(16, 16)), b"zTXt",
                                      b"comment\x00\x00" + zlib.compress(b"B" * (TEXT_MAX_BYTES // 2)))
    assert dict(png_extras(fits).texts)["comment"] == "B" * (TEXT_MAX_BYTES // 2)


# ----------------------------------------------------------------------------------------------- memory

_PEAK = """
import io, resource, struct, sys
from PIL import Image
from core.forensics import jpeg_info
buf = io.BytesIO()
Image.new("RGB", (64, 64), (120, 130, 140)).save(buf, "JPEG", quality=50, progressive=True)
data = bytearray(buf.getvalue())
sof = data.find(b"\\xff\\xc2")
data[sof + 5:sof + 9] = struct.pack(">HH", 9000, 9000)     # the scans are for 64x64; the header says 9000x9000
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
info = jpeg_info(bytes(data))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(data), (after - before) // 1024, info.summary)
"""


def _peak(env_extra: dict[str, str]) -> tuple[int, int, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **env_extra)
    out = subprocess.run([sys.executable, "-c", _PEAK], capture_output=True, text=True, env=env, timeout=120,
                         check=True).stdout.split(" ", 2)
    return int(out[0]), int(out[1]), out[2]


def test_a_tiny_jpeg_declaring_9000x9000_does_not_allocate_gigabytes():
    size, grew_mb, summary = _peak({})
    assert size < 2000
    assert grew_mb < 400, f"{grew_mb} MB"           # the 3-channel float64 decode took ~2.4 GB
    assert "Double compression" in summary


def test_above_the_pixel_limit_the_double_compression_score_decodes_nothing():
    _, grew_mb, summary = _peak({"DEEPFAKE_LENS_MAX_PIXELS": "10000000"})
    assert grew_mb < 40 and "above the pixel limit" in summary


def test_views_refuse_images_above_the_pixel_limit(monkeypatch):
    img = noise_image(400, 300)
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_PIXELS", "100000")
    for view in (F.npr_view, F.noise_view, F.ela_view, F.frequency_view):
        with pytest.raises(BadImage, match="above the 0 MP limit|limit this tool analyses"):
            view(img)


# ----------------------------------------------------------------------------------------------- animations

def test_a_many_frame_gif_is_not_walked_frame_by_frame():
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (24, 32), dtype=np.uint8), "L").convert("P") for _ in range(1500)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=20)
    m = finishes(lambda: F.read_metadata(data, "many.gif"))
    assert m.file.animated and m.file.frames is None
    assert any("only its first frame is analysed" in x for x in m.findings)


def test_apng_frame_count_comes_from_its_header():
    frames = [noise_image(24, 24, seed=i) for i in range(5)]
    m = F.read_metadata(encode(frames[0], "PNG", save_all=True, append_images=frames[1:]), "a.png")
    assert m.file.animated and m.file.frames == 5
    still = F.read_metadata(encode(frames[0]), "s.png").file
    assert (still.frames, still.animated) == (1, False)


# ----------------------------------------------------------------------------------------------- whole image

def _large_with_corner_anomalies() -> Image.Image:
    """2100×1500 smooth texture: a noisy patch in the top-left corner and a 2× nearest-upsampled bottom-right."""
    a = np.asarray(noise_image(2100, 1500, seed=1, sigma=2)).astype(np.float64)
    rng = np.random.default_rng(2)
    a[30:230, 30:330] += rng.normal(0, 25, (200, 300, 3))
    small = a[1200:1500:2, 1800:2100:2]
    a[1200:1500, 1800:2100] = small.repeat(2, 0).repeat(2, 1)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def test_views_cover_the_whole_image_and_state_the_display_scale():
    img = _large_with_corner_anomalies()
    npr, noise, ela = F.npr_view(img), F.noise_view(img), F.ela_view(img, 90)
    for v in (npr, noise, ela):
        assert v.scale == 3 and v.region == (0, 0, 2100, 1500)
        assert v.coverage.startswith("Whole image (2100×1500 px) analysed at full resolution; the map is shown at "
                                     "1/3 scale")
        assert (v.error if isinstance(v, F.ELAView) else v.residual).shape == (500, 700)
    # the corners (outside the central 1024×1024 the views used to analyse) show their anomalies
    assert npr.residual[420:490, 620:690].mean() < 0.5 * npr.residual[100:400, 300:500].mean()
    assert noise.block_std.shape == (1500 // 32, 2100 // 32)
    assert noise.block_std[2:6, 2:9].mean() > 3 * np.median(noise.block_std)
    assert ela.error[15:70, 15:105].mean() > 1.5 * ela.error[200:300, 300:400].mean()
    assert F.npr_view(noise_image(300, 200)).coverage == "Whole image (300×200 px) analysed at full resolution."


def test_strip_by_strip_views_equal_one_pass_over_the_image(monkeypatch):
    img = noise_image(317, 203, seed=3)
    whole = (F.ela_view(img, 80), F.noise_view(img), F.npr_view(img))
    monkeypatch.setattr(common, "STRIP_PIXELS", 3000)                # strips of a few rows
    strips = (F.ela_view(img, 80), F.noise_view(img), F.npr_view(img))
    assert np.array_equal(whole[0].error, strips[0].error) and whole[0].p99 == strips[0].p99
    assert np.array_equal(whole[1].residual, strips[1].residual)
    assert np.array_equal(whole[1].block_std, strips[1].block_std)
    assert np.array_equal(whole[2].residual, strips[2].residual)
    assert whole[2].phase_mean_abs == strips[2].phase_mean_abs and whole[2].std == pytest.approx(strips[2].std)
    # and the error map is exactly |image − JPEG(image)| of a one-shot re-save
    again = Image.open(io.BytesIO(encode(img, "JPEG", quality=80, subsampling=0))).convert("RGB")
    ref = np.abs(np.asarray(img, np.int16) - np.asarray(again, np.int16)).max(axis=2)
    assert np.array_equal(whole[0].error, ref.astype(np.float32))


def test_map_image_renders_each_view_in_its_own_mode():
    img = _large_with_corner_anomalies().crop((0, 0, 1100, 600))
    v = F.npr_view(img)
    assert v.scale == 2 and v.map_mode == "magnitude" and F.map_image(v).size == (550, 300)
    assert F.npr_view(noise_image(64, 64)).map_mode == "signed" and F.ela_view(img).map_mode == "magnitude"


# ----------------------------------------------------------------------------------------------- texts

def _photo() -> Image.Image:
    import skimage.data
    return Image.fromarray(skimage.data.camera()).convert("RGB")


def test_frequency_text_of_a_plain_jpeg_leads_with_the_8x8_grid():
    data = encode(_photo(), "JPEG", quality=50)
    ev = F.analyse(data, "photo.jpg")
    fv = ev.frequency
    assert fv.peaks and all(p.jpeg_grid for p in fv.peaks)
    assert fv.summary.startswith("Periodic peaks at period(s)") and "8×8 block grid of JPEG" in fv.summary
    assert "generator" not in fv.summary and "up-sampling by that factor" not in fv.summary
    assert all(p["jpeg_grid"] for p in fv.to_dict()["peaks"])


def test_frequency_text_separates_grid_peaks_from_upsampling_peaks():
    up = noise_image(150, 100, sigma=0.5).resize((450, 300), Image.NEAREST)
    v = F.frequency_view(load_image(encode(up, "JPEG", quality=60)), jpeg=True)
    periods = {p.period_px for p in v.peaks if not p.jpeg_grid}
    assert 3.0 in periods
    assert "not explained by the JPEG grid" in v.summary and "up-sampling by that factor" in v.summary
    plain = F.frequency_view(up)                                       # a PNG: no grid explanation offered
    assert plain.summary.startswith("Periodic peaks at period(s) 3") and not any(p.jpeg_grid for p in plain.peaks)


def test_double_compression_sentence_states_its_scale():
    photo = _photo()
    once = F.jpeg_info(encode(photo, "JPEG", quality=90))
    twice = F.jpeg_info(encode(Image.open(io.BytesIO(encode(photo, "JPEG", quality=50))), "JPEG", quality=90))
    for info in (once, twice):
        assert f"on a 0–2 scale, where above {F.DOUBLE_JPEG_MIN:g} suggests it" in info.summary
        assert info.to_dict()["double_score_scale"] == {"min": 0.0, "max": 2.0, "double_above": F.DOUBLE_JPEG_MIN}
    assert "No double-compression trace" in once.summary and "Double compression likely" in twice.summary
    assert "could not be judged" in F.jpeg_info(encode(photo.crop((0, 0, 40, 40)), "JPEG")).summary


def test_one_recompression_threshold_for_page_report_and_abstention():
    assert abstention.QUALITY_THRESHOLD == F.RECOMPRESSED_QUALITY == 80
    assert F.is_recompressed(79) and not F.is_recompressed(80) and not F.is_recompressed(None)
    m = F.read_metadata(encode(noise_image(64, 64), "JPEG", quality=60), "x.jpg")
    assert m.jpeg.recompressed and m.jpeg.to_dict()["recompressed"] is True
    assert not any("quality" in f.lower() for f in m.findings)        # said once, as a reason to doubt
    (r,) = abstention.input_reasons(abstention.ForensicFacts.from_metadata(m))
    assert r.code == "recompressed" and "quality 60 (below 80)" in r.text


def test_sniff_type_is_the_one_magic_byte_reader():
    assert sniff_type(encode(noise_image(8, 8), "JPEG")) == "JPEG" == F.detect_type(encode(noise_image(8, 8),
                                                                                            "JPEG"))[0]
    assert sniff_type(b"hello") is None and F.detect_type(b"hello") == ("unknown", None)


# ----------------------------------------------------------------------------------------------- C2PA

@pytest.mark.skipif(not C2PA_DIR.is_dir(), reason=f"shared C2PA fixtures not found at {C2PA_DIR}")
@pytest.mark.parametrize("name,state,failure", [
    ("C.jpg", "Valid", None), ("CA.jpg", "Valid", None), ("E-sig-CA.jpg", "Invalid", "claimSignature.mismatch"),
    ("XCA.jpg", "Invalid", "assertion.dataHash.mismatch"),
    ("adobe-20220124-E-clm-CAICAI.jpg", "Invalid", "assertion.hashedURI.mismatch"), ("no_manifest.jpg", None, None)])
def test_real_c2pa_files_keep_their_validation_state(name, state, failure):
    pytest.importorskip("c2pa")
    c = F.read_metadata((C2PA_DIR / name).read_bytes(), name).c2pa
    assert c.present is (state is not None) and c.validation_state == state
    if failure:
        assert any(f.startswith(failure) for f in c.failures)
    if name == "C.jpg":
        assert [s.code for s in c.digital_source_types] == ["algorithmicMedia"]
