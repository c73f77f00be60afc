"""Weight-free forensic views and metadata, each on generated images with known properties."""
from __future__ import annotations

import datetime
import hashlib
import io
import json
import struct

import numpy as np
import pytest
from PIL import Image, ImageFilter
from PIL.PngImagePlugin import PngInfo

from core import forensics as F
from core.forensics import jpeg as FJ
from core.errors import BadImage

XMP_TMPL = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
            'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="{tool}" Iptc4xmpExt:DigitalSourceType='
            '"http://cv.iptc.org/newscodes/digitalsourcetype/{code}"/></rdf:RDF></x:xmpmeta>')


def texture(w: int, h: int, seed: int = 0) -> Image.Image:
    """A camera-like texture: blurred noise (no periodic structure) plus a little fresh noise."""
    r = np.random.default_rng(seed)
    img = Image.fromarray(np.clip(128 + 40 * r.normal(0, 1, (h, w, 3)), 0, 255).astype(np.uint8))
    a = np.asarray(img.filter(ImageFilter.GaussianBlur(1.5))).astype(float)
    a = 128 + (a - a.mean()) * 3 + r.normal(0, 2, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def smooth_photo(seed: int = 0) -> Image.Image:
    """A natural-looking photo for JPEG statistics (scikit-image's coffee, or a smooth texture without it)."""
    try:
        import skimage.data
        return Image.fromarray(skimage.data.coffee())
    except ImportError:  # pragma: no cover - scikit-image is a runtime requirement
        return texture(512, 384, seed).filter(ImageFilter.GaussianBlur(2))


# ----------------------------------------------------------------------------------------------- frequency


def _energy_at(view: F.FrequencyView, f: float) -> float:
    return float(view.radial_energy[np.argmin(np.abs(view.radial_freq - f))])


def _energy_floor(view: F.FrequencyView) -> float:
    sel = (view.radial_freq > 0.25) & (view.radial_freq < 0.48)
    return float(np.median(view.radial_energy[sel]))


@pytest.mark.parametrize("factor", [2, 3])
def test_nearest_upsampling_gives_a_spectral_peak_at_one_over_the_factor(factor):
    up = texture(96, 96).resize((96 * factor, 96 * factor), Image.NEAREST)
    v = F.frequency_view(up)
    periods = {p.period_px for p in v.peaks if p.source == "energy"}
    assert float(factor) in periods
    assert v.peaks[0].period_px == factor and v.peaks[0].strength > 2.5
    assert _energy_at(v, 1 / factor) - _energy_floor(v) > 1.0        # visible in the radial (azimuthal) curve
    assert f"period(s) {factor}" in v.summary


def test_camera_like_texture_has_no_periodic_peak():
    v = F.frequency_view(texture(256, 256, seed=1))
    assert v.peaks == ()
    assert _energy_at(v, 1 / 2) - _energy_floor(v) < 0.6
    assert _energy_at(v, 1 / 3) - _energy_floor(v) < 0.6
    assert "No periodic peak" in v.summary
    assert v.spectrum.shape == (256, 256) and v.spectrum.dtype == np.float32
    h, w = v.spectrum.shape
    assert v.spectrum[h // 2, w // 2] < np.percentile(v.spectrum, 50)    # residual: DC removed, centred layout


def test_generator_like_periodic_pattern_shows_in_the_linear_residual_spectrum():
    rng = np.random.default_rng(0)
    xx = np.mgrid[0:256, 0:256][1]
    grey = rng.normal(128, 20, (256, 256)) + 4 * np.sign(np.sin(2 * np.pi * xx / 4 + 0.5))
    v = F.frequency_view(Image.fromarray(np.clip(np.stack([grey] * 3, -1), 0, 255).astype(np.uint8)))
    assert any(p.period_px == 4 and p.source == "residual" and p.direction == "horizontal" for p in v.peaks)


def test_frequency_view_averages_tiles_covering_a_large_image_and_refuses_tiny_ones():
    v = F.frequency_view(Image.new("RGB", (1500, 1100), (90, 90, 90)), max_side=512)
    assert v.region == (0, 0, 1500, 1100) and v.spectrum.shape == (512, 512) and v.tiles == 9
    assert v.coverage.startswith("Whole image (1500×1100 px) analysed as 9 tiles of 512×512 px")
    with pytest.raises(BadImage):
        F.frequency_view(Image.new("RGB", (10, 40)))


def test_a_periodic_pattern_outside_the_centre_is_found():
    # 2× nearest up-sampling only in the top-left corner: the central tile the view used to analyse is a photo-like
    # texture, so the old centre crop saw no period-2 peak there
    rng = np.random.default_rng(3)
    grey = rng.normal(128, 25, (1536, 1536))
    corner = np.repeat(np.repeat(rng.normal(128, 25, (256, 256)), 2, axis=0), 2, axis=1)
    grey[:512, :512] = corner
    img = Image.fromarray(np.clip(np.stack([grey] * 3, -1), 0, 255).astype(np.uint8))
    v = F.frequency_view(img, max_side=512)
    assert v.tiles == 9 and any(p.period_px == 2 for p in v.peaks)


def test_tile_grid_covers_the_image_and_caps_the_number_of_tiles():
    from core.forensics.frequency import MAX_TILES, tile_grid
    tile, corners = tile_grid((3000, 2000), 1024)
    assert tile == (1024, 1024) and len(corners) == 6 and max(x for x, _ in corners) == 3000 - 1024
    assert tile_grid((800, 600), 1024) == ((800, 600), [(0, 0)])
    _, many = tile_grid((20000, 5000), 1024)
    assert len(many) <= MAX_TILES
    v = F.frequency_view(Image.new("RGB", (2000, 300), (9, 9, 9)), max_side=64)
    assert v.tiles <= MAX_TILES and v.coverage.startswith("Only ")


# ----------------------------------------------------------------------------------------------- NPR, ELA, noise

def test_npr_residual_is_zero_after_2x_nearest_upsampling_and_not_on_a_photo():
    up = F.npr_view(texture(64, 48).resize((128, 96), Image.NEAREST))
    assert up.mean_abs == 0 and up.zero_fraction == 1.0
    assert "2× nearest-neighbour up-sampling" in up.summary
    cam = F.npr_view(texture(128, 96, seed=2))
    assert cam.mean_abs > 5 and cam.zero_fraction < 0.2
    assert cam.residual.shape == (96, 128)
    shifted = F.npr_view(texture(64, 48).resize((128, 96), Image.NEAREST).crop((1, 1, 127, 95)))
    assert min(shifted.phase_mean_abs) == 0 < shifted.mean_abs      # the block structure is found off-grid


def test_npr_residual_definition():
    x = np.arange(16, dtype=float).reshape(4, 4)
    r = F.npr_residual(x)
    assert r[0, 0] == 0 and r[0, 1] == 1 and r[1, 0] == 4 and r[1, 1] == 5


def test_ela_highlights_a_region_pasted_into_a_compressed_image():
    base = Image.open(io.BytesIO(encode(texture(256, 256, 3).filter(ImageFilter.GaussianBlur(2)), "JPEG",
                                        quality=70))).convert("RGB")
    base.paste(texture(64, 64, 5), (96, 96))
    ev = F.ela_view(base, 70)
    inside = ev.error[96:160, 96:160].mean()
    outside = np.concatenate([ev.error[:90].ravel(), ev.error[170:].ravel()]).mean()
    assert inside > 2 * outside
    assert ev.quality == 70 and ev.error.shape == (256, 256) and ev.max >= ev.p99 >= 0
    with pytest.raises(ValueError):
        F.ela_view(base, 0)


def test_noise_view_measures_uneven_noise():
    rng = np.random.default_rng(0)
    a = np.full((256, 256, 3), 120.0)
    a[:, 128:] += rng.normal(0, 12, (256, 128, 3))
    a[:, :128] += rng.normal(0, 1, (256, 128, 3))
    uneven = F.noise_view(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)))
    even = F.noise_view(Image.fromarray(np.clip(120 + rng.normal(0, 6, (256, 256, 3)), 0, 255).astype(np.uint8)))
    assert uneven.inconsistency > 1.0 > 0.5 > even.inconsistency
    assert uneven.block_std.shape == (8, 8) and "uneven noise" not in even.summary


@pytest.mark.parametrize("mode", ["signed", "magnitude", "stretch"])
def test_to_image_renders_arrays_as_8bit_grey(mode):
    arr = np.linspace(-5, 5, 60, dtype=np.float32).reshape(6, 10)
    im = F.to_image(arr, mode)
    assert im.mode == "L" and im.size == (10, 6)
    px = np.asarray(im)
    assert px.max() == 255 and px.min() <= 5
    if mode == "signed":
        assert abs(int(F.to_image(np.zeros((2, 2)), "signed").getpixel((0, 0))) - 128) <= 1


# ----------------------------------------------------------------------------------------------- JPEG

@pytest.mark.parametrize("quality", [30, 60, 75, 90, 97])
def test_jpeg_quality_is_estimated_from_the_quantisation_tables(quality):
    info = F.jpeg_info(encode(texture(64, 64), "JPEG", quality=quality))
    assert info.is_jpeg and abs(info.quality - quality) <= 5
    assert info.quality == quality and info.standard_tables           # libjpeg tables: exact
    assert len(info.qtables) == 2 and all(len(t) == 64 for t in info.qtables)
    assert info.subsampling == "4:2:0"


def test_custom_quantisation_tables_give_a_nearby_quality_and_are_marked_non_standard():
    luma = (F.ijg_table(FJ._STD_LUMA, 60) + np.arange(64) % 3).tolist()          # a camera-like custom table
    chroma = F.ijg_table(FJ._STD_CHROMA, 60).tolist()
    info = F.jpeg_info(encode(texture(64, 64), "JPEG", qtables=[luma, chroma]))
    assert abs(info.quality - 60) <= 5 and not info.standard_tables


def test_double_jpeg_compression_is_hinted():
    photo = smooth_photo()
    once = encode(photo, "JPEG", quality=90)
    twice = encode(Image.open(io.BytesIO(encode(photo, "JPEG", quality=50))), "JPEG", quality=90)
    single, double = F.jpeg_info(once), F.jpeg_info(twice)
    assert single.double_compression is False and single.quality == 90
    assert double.double_compression is True and double.quality == 90
    assert double.double_score > F.DOUBLE_JPEG_MIN > single.double_score
    assert "at least twice" in double.summary
    assert F.jpeg_info(encode(photo.crop((0, 0, 40, 40)), "JPEG", quality=90)).double_compression is None
    assert not F.jpeg_info(encode(photo)).is_jpeg


# ----------------------------------------------------------------------------------------------- file facts

def test_file_facts_hashes_and_type_versus_extension():
    img = texture(64, 48)
    png = encode(img)
    m = F.read_metadata(png, "holiday.jpg")
    f = m.file
    assert f.sha256 == hashlib.sha256(png).hexdigest() and f.size_bytes == len(png)
    assert (f.detected_type, f.mime, f.extension, f.extension_matches) == ("PNG", "image/png", ".jpg", False)
    assert any("ends in '.jpg' but the content is PNG" in x for x in m.findings)
    assert F.read_metadata(png, "x.PNG").file.extension_matches is True
    assert F.read_metadata(png, "no_extension").file.extension_matches is None
    assert len(f.phash) == 16 and len(f.dhash) == 16


@pytest.mark.parametrize("data,kind", [(b"RIFF\0\0\0\0WEBPVP8 ", "WEBP"), (b"\0\0\0\x1cftypavif", "AVIF"),
                                       (b"\0\0\0\x18ftypheic", "HEIC"), (b"GIF89a", "GIF"), (b"II*\0", "TIFF"),
                                       (b"%PDF-1.4", "PDF"), (b"<!DOCTYPE html>", "HTML"), (b"hello", "unknown")])
def test_detect_type_by_magic_bytes(data, kind):
    assert F.detect_type(data)[0] == kind


def test_perceptual_hash_survives_recompression_and_separates_different_images(monkeypatch):
    a = smooth_photo()
    again = Image.open(io.BytesIO(encode(a, "JPEG", quality=85)))
    other = texture(600, 400, seed=9)

    def dist(x: str, y: str) -> int:
        return bin(int(x, 16) ^ int(y, 16)).count("1")
    ha, hb, hc = (F.perceptual_hashes(i)[0] for i in (a, again, other))
    assert dist(ha, hb) <= 4 < 16 <= dist(ha, hc)
    # the documented fallback when imagehash is missing
    import builtins
    real_import = builtins.__import__

    def no_imagehash(name, *args, **kwargs):
        if name == "imagehash":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_imagehash)
    fa, dh, lib = F.perceptual_hashes(a)
    fb, _, _ = F.perceptual_hashes(again)
    assert lib == "built-in DCT pHash" and dh is None and len(fa) == 16 and dist(fa, fb) <= 6


# ----------------------------------------------------------------------------------------------- EXIF / XMP / IPTC

def _exif() -> Image.Exif:
    ex = Image.Exif()
    ex[271], ex[272], ex[305], ex[306] = "Canon", "Canon EOS 5D Mark IV", "Adobe Photoshop 25.0", "2024:05:06 07:08:09"
    ex.get_ifd(0x8769)[0x9003] = "2024:05:01 10:11:12"
    gps = ex.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "S", (33.0, 51.0, 54.0), "E", (151.0, 12.0, 36.0)
    return ex


def test_exif_written_by_the_test_is_read_back_and_gps_is_hidden_unless_asked():
    data = encode(texture(64, 48), "JPEG", quality=92, exif=_exif())
    m = F.read_metadata(data, "photo.jpg")
    ex = m.exif
    assert ex.present and ex.make == "Canon" and ex.model == "Canon EOS 5D Mark IV"
    assert ex.camera == "Canon EOS 5D Mark IV" and ex.software == "Adobe Photoshop 25.0"
    assert ex.datetime_original == "2024:05:01 10:11:12" and ex.datetime_modified == "2024:05:06 07:08:09"
    assert ex.has_gps and ex.gps is None
    assert "33.0" not in json.dumps(m.to_dict())                      # the position does not leak by default
    assert any("EXIF names a camera (Canon EOS 5D Mark IV" in x for x in m.findings)
    assert any("hidden unless requested" in x for x in m.findings)
    gps = F.read_metadata(data, "photo.jpg", include_gps=True).exif.gps
    assert gps.latitude == pytest.approx(-33.865) and gps.longitude == pytest.approx(151.21)


def test_missing_exif_is_reported_as_not_evidence_by_itself():
    m = F.read_metadata(encode(texture(32, 32)), "x.png")
    assert not m.exif.present and any("not evidence by itself" in x for x in m.findings)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_xmp_digital_source_type_trained_algorithmic_media_is_flagged(fmt):
    xmp = XMP_TMPL.format(tool="Adobe Firefly", code="trainedAlgorithmicMedia")
    if fmt == "PNG":
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", xmp, zip=True)             # compressed: only PIL's decoder sees it
        data = encode(texture(48, 48), "PNG", pnginfo=info)
    else:
        data = encode(texture(48, 48), fmt, xmp=xmp.encode())
    m = F.read_metadata(data, f"x.{fmt.lower()}")
    pv = m.provenance
    assert pv.xmp_present and pv.creator_tool == "Adobe Firefly"
    assert [s.code for s in pv.flagged] == ["trainedAlgorithmicMedia"]
    assert m.findings[0].startswith("XMP DigitalSourceType 'trainedAlgorithmicMedia'")
    assert any("names a generator: 'Adobe Firefly'" in h for h in pv.generator_hints)


@pytest.mark.parametrize("code,flagged", [("compositeWithTrainedAlgorithmicMedia", True), ("algorithmicMedia", True),
                                          ("digitalCapture", False), ("minorHumanEdits", False)])
def test_digital_source_type_codes(code, flagged):
    (s,) = F.digital_source_types(f"http://cv.iptc.org/newscodes/digitalsourcetype/{code}")
    assert s.code == code and s.generated is flagged


def _with_iptc(jpeg: bytes, records: dict[int, bytes]) -> bytes:
    """Insert an APP13 Photoshop IRB with an IPTC-IIM block (record 2) right after SOI."""
    iim = b"".join(b"\x1c\x02" + bytes([k]) + struct.pack(">H", len(v)) + v for k, v in records.items())
    if len(iim) % 2:
        iim += b"\0"
    irb = b"8BIM\x04\x04\x00\x00" + struct.pack(">I", len(iim)) + iim
    payload = b"Photoshop 3.0\x00" + irb
    return jpeg[:2] + b"\xff\xed" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_iptc_iim_fields_are_read_and_generator_names_hinted():
    data = _with_iptc(encode(texture(48, 48), "JPEG"), {80: b"Jane Doe", 65: b"Midjourney", 120: b"A cat"})
    pv = F.read_metadata(data, "x.jpg").provenance
    fields = dict(pv.iptc)
    assert fields["By-line"] == "Jane Doe" and fields["Caption"] == "A cat"
    assert any("IPTC Originating program names a generator: 'Midjourney'" in h for h in pv.generator_hints)


def test_png_generation_parameters_are_recognised():
    info = PngInfo()
    info.add_text("parameters", "a cat on a sofa\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1")
    m = F.read_metadata(encode(texture(32, 32), "PNG", pnginfo=info), "x.png")
    assert ("parameters", "a cat on a sofa\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1") in \
        m.provenance.text_chunks
    assert any("AUTOMATIC1111" in x for x in m.findings)


# ----------------------------------------------------------------------------------------------- C2PA

def _signed_jpeg() -> bytes:
    """A JPEG with a real C2PA manifest (created action, trainedAlgorithmicMedia), signed by a throwaway CA."""
    c2pa = pytest.importorskip("c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lens Test Org")])
    t0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
                 encipher_only=False, decipher_only=False)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Lens Test CA")).issuer_name(name("Lens Test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(t0)
          .not_valid_after(t0 + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage), True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("Lens Test Signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(t0)
            .not_valid_after(t0 + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, pem, None))
    manifest = {"claim_generator_info": [{"name": "lens-test", "version": "1"}], "title": "generated.jpg",
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [{
                    "action": "c2pa.created",
                    "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"}]}}]}
    out = io.BytesIO()
    c2pa.Builder(manifest).sign(signer, "image/jpeg", io.BytesIO(encode(texture(64, 64), "JPEG", quality=90)), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def signed_jpeg() -> bytes:
    return _signed_jpeg()


def test_c2pa_manifest_is_found_validated_offline_and_its_source_type_flagged(signed_jpeg):
    m = F.read_metadata(signed_jpeg, "generated.jpg")
    c = m.c2pa
    assert c.present and c.validated and c.validation_state == "Valid"
    assert c.library.startswith("c2pa-python")
    assert c.signer == "Lens Test Org / Lens Test Signer" and c.title == "generated.jpg"
    assert "c2pa.created" in c.actions and [s.code for s in c.digital_source_types] == ["trainedAlgorithmicMedia"]
    assert any(f.startswith("signingCredential.untrusted") for f in c.failures)   # no trust list offline
    assert "cryptographically valid" in c.note
    assert m.findings[0].startswith("C2PA DigitalSourceType 'trainedAlgorithmicMedia'")


def test_c2pa_tampered_file_is_invalid(signed_jpeg):
    bad = bytearray(signed_jpeg)
    bad[-200] ^= 0xFF                                               # change image data after signing
    c = F.read_c2pa(bytes(bad), "image/jpeg")
    assert c.present and c.validation_state == "Invalid" and "INVALID" in c.note
    assert any("dataHash.mismatch" in f for f in c.failures)


def test_c2pa_presence_without_the_library_says_validation_is_unavailable(signed_jpeg, monkeypatch):
    from core.forensics import provenance
    monkeypatch.setattr(provenance, "_c2pa_library", lambda: None)
    c = F.read_c2pa(signed_jpeg, "image/jpeg")
    assert c.present and not c.validated and c.validation_state is None
    assert "validation is unavailable" in c.note
    plain = F.read_c2pa(encode(texture(32, 32), "JPEG"), "image/jpeg")
    assert not plain.present and "No C2PA manifest" in plain.note


def test_no_c2pa_in_a_plain_file():
    c = F.read_metadata(encode(texture(32, 32), "JPEG"), "x.jpg").c2pa
    assert not c.present and not c.validated


# ----------------------------------------------------------------------------------------------- everything

def test_analyse_gives_every_view_and_a_json_ready_dict():
    data = encode(texture(96, 80), "JPEG", quality=75, exif=_exif())
    ev = F.analyse(data, "x.jpg", ela_quality=80)
    assert ev.ela.quality == 80 and ev.npr.residual.shape == (80, 96)
    d = ev.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["metadata"]["jpeg"]["quality"] == 75 and "radial_energy" in d["frequency"]
    assert "151.0" not in text                                       # GPS left out
    with pytest.raises(BadImage):
        F.analyse(b"not an image", "x.png")
