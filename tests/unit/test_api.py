"""The HTTP API (core.api) through FastAPI's test client: the CLI's answers, limits, hostile uploads, token, jobs."""
from __future__ import annotations

import asyncio
import io
import json
import struct
import tempfile
import threading
import time
import zipfile
import zlib

import pytest
from fastapi.testclient import TestClient

from core.api import create_app
from core.api.errors import ApiError
from core.api.jobs import JobStore
from core.api.work import WorkGate
from core.cli.main import main
from core.models import install
from core.models.registry import get_spec
from tests.helpers import TINY_YAML, install_tiny_detectors, make_tiny_checkpoint, png_bytes
from tests.unit.videogen import no_face, write_video


@pytest.fixture()
def two(tiny_config, weights_home):
    """Two decided tiny detectors (TA confident fake, TB near 0.5); every real detector is not installed."""
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.3, 3.0), "TB": (0.25, 0.2)})


@pytest.fixture()
def client(monkeypatch):
    monkeypatch.delenv("DEEPFAKE_LENS_API_TOKEN", raising=False)
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        yield c


def _image(name: str = "x.png", data: bytes | None = None) -> dict:
    return {"image": (name, png_bytes((200, 150), seed=3) if data is None else data, "image/png")}


def _no_timing(doc):
    """The document without its timings (``elapsed_s`` anywhere), which change on every run."""
    if isinstance(doc, dict):
        return {k: _no_timing(v) for k, v in doc.items() if k != "elapsed_s"}
    return [_no_timing(v) for v in doc] if isinstance(doc, list) else doc


def _is_sentence(body: dict, status: int) -> str:
    assert body["status"] == status
    text = body["error"]
    assert isinstance(text, str) and text.endswith(".") and "\n" not in text and "Traceback" not in text
    return text


def test_detect_equals_the_cli_json(two, client, tmp_path, capsys):
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((200, 150), seed=3))
    assert main(["detect", str(img), "--detector", "ALL", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    r = client.post("/v1/detect", files=_image())
    assert r.status_code == 200
    api = r.json()
    assert _no_timing(api) == _no_timing(cli)
    assert [x["detector_id"] for x in api["results"]] == ["TA", "TB"]
    assert api["not_run"]["NPR"] == "weights not installed"
    assert api["vote"]["verdict"] == "FAKE" and api["assessment"]["level"]


def test_fast_mode_equals_the_cli_fast_mode(tiny_config, weights_home, client, tmp_path, capsys):
    (tiny_config / "tf.yaml").write_text(TINY_YAML.replace("id: TINY", "id: TF").format(weight=0.3)
                                         + "options: {fast_bf16: true}\n")
    install.import_file(make_tiny_checkpoint(tmp_path / "tf.pt", seed=4), get_spec("TF"), weights_dir=weights_home)
    img = tmp_path / "x.png"
    img.write_bytes(png_bytes((200, 150), seed=3))
    assert main(["detect", str(img), "--detector", "ALL", "--fast", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    api = client.post("/v1/detect", params={"fast": "true"}, files=_image()).json()
    assert _no_timing(api) == _no_timing(cli)
    assert {r["detector_id"]: r["details"].get("precision") for r in api["results"]} == {"TF": "bf16"}
    plain = client.post("/v1/detect", files=_image()).json()          # the fp32 model is another cached instance
    assert plain["results"][0]["details"].get("precision") is None
    assert sorted(client.get("/v1/health").json()["loaded"]) == ["TF:original", "TF:original@bf16"]


def test_named_detectors_not_installed_are_listed_never_scored(two, client):
    r = client.post("/v1/detect", params={"detectors": "TA,NPR"}, files=_image())
    assert r.status_code == 200
    doc = r.json()
    assert [x["detector_id"] for x in doc["results"]] == ["TA"]
    assert doc["not_run"] == {"NPR": "weights not installed"}


def test_without_any_weights_no_verdict_only_what_is_missing(client, weights_home):
    doc = client.post("/v1/detect", files=_image()).json()
    assert doc["results"] == [] and doc["vote"]["verdict"] not in ("FAKE", "REAL")
    assert doc["assessment"]["direction"] is None
    assert set(doc["not_run"]) >= {"NPR", "CLIP-D", "R50_TF", "FACE"}
    forensic = client.post("/v1/forensics", files=_image())       # works with no weights at all
    assert forensic.status_code == 200 and set(forensic.json()) == {"metadata", "frequency", "npr", "ela", "noise"}
    assert "c2pa" in forensic.json()["metadata"] and "jpeg" in forensic.json()["metadata"]


def test_health_and_detectors(two, client):
    client.post("/v1/detect", files=_image())
    h = client.get("/v1/health").json()
    assert h["status"] == "ready" and h["installed"] == ["TA:original", "TB:original"]
    assert set(h["loaded"]) == {"TA:original", "TB:original"}          # the cache shared by later requests
    d = client.get("/v1/detectors").json()
    by_id = {x["id"]: x for x in d["detectors"]}
    npr = by_id["NPR"]["variants"][0]
    assert npr["installed"] is False and npr["why_not_installed"].startswith("weights not installed")
    assert npr["card"]["paper"] and npr["how_to_fix"]
    assert by_id["TA"]["variants"][0]["installed"] is True and d["profiles"] == []


def _truncated_png() -> bytes:
    return png_bytes((300, 300))[:400]


def _huge_png() -> bytes:
    """A PNG declaring 60000×60000 pixels (a decompression bomb) with a few bytes of pixel data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.png", png_bytes())
    return buf.getvalue()


HOSTILE = [
    ("empty.png", b"", 422, "empty"),
    ("cut.png", _truncated_png(), 422, "truncated"),
    ("bomb.png", _huge_png(), 422, "limit"),
    ("notes.png", b"just some text, not an image\n" * 20, 422, "not an image"),
    ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', 415, "not accepted"),
    ("drawing.png", b'<svg xmlns="http://www.w3.org/2000/svg"/>', 422, "not an image"),
    ("bundle.zip", _zip(), 415, "not accepted"),
    ("bundle.png", _zip(), 422, "not an image"),
    ("doc.png", b"%PDF-1.4\n" + b"0" * 100, 415, "PDF"),
]


@pytest.mark.parametrize("name,data,status,words", HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("path", ["/v1/detect", "/v1/forensics", "/v1/report"])
def test_hostile_uploads_get_a_4xx_sentence(two, client, path, name, data, status, words):
    r = client.post(path, files=_image(name, data))
    assert r.status_code == status, r.text
    text = _is_sentence(r.json(), status)
    assert words in text and name in text


def test_byte_limit_is_413_and_bad_requests_are_sentences(two, client, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_MAX_BYTES", "2000")
    r = client.post("/v1/detect", files=_image(data=png_bytes((200, 200))))
    assert r.status_code == 413 and "limit" in _is_sentence(r.json(), 413)
    monkeypatch.delenv("DEEPFAKE_LENS_MAX_BYTES")
    r = client.post("/v1/detect", json={"image": "x"})
    assert r.status_code == 415 and "multipart/form-data" in _is_sentence(r.json(), 415)
    r = client.post("/v1/detect", files={"picture": ("x.png", png_bytes())})
    assert r.status_code == 422 and "'image'" in _is_sentence(r.json(), 422)
    r = client.post("/v1/detect", params={"fast": "perhaps"}, files=_image())
    assert r.status_code == 422 and "'fast'" in _is_sentence(r.json(), 422)
    r = client.post("/v1/detect", params={"detectors": "NOPE"}, files=_image())
    assert r.status_code == 422 and "NOPE" in _is_sentence(r.json(), 422)
    r = client.post("/v1/detect", params={"profile": "../../etc/passwd"}, files=_image())
    assert r.status_code == 422 and "no calibration profile" in _is_sentence(r.json(), 422)
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and _is_sentence(r.json(), 404)
    r = client.delete("/v1/detect")
    assert r.status_code == 405 and _is_sentence(r.json(), 405)


def test_an_unexpected_failure_is_a_500_sentence_without_a_trace(client):
    def boom() -> None:
        raise RuntimeError("secret internal detail /srv/x.py line 3")
    client.app.add_api_route("/v1/boom", boom)
    r = client.get("/v1/boom")
    assert r.status_code == 500
    text = _is_sentence(r.json(), 500)
    assert "secret" not in text and "/srv" not in r.text


def test_bearer_token(two, monkeypatch):
    monkeypatch.setenv("DEEPFAKE_LENS_API_TOKEN", "s3cret-token")
    with TestClient(create_app(), raise_server_exceptions=False) as c:
        r = c.post("/v1/detect", files=_image())
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        _is_sentence(r.json(), 401)
        assert c.get("/v1/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/health", headers={"Authorization": "s3cret-token"}).status_code == 401
        ok = c.post("/v1/detect", files=_image(), headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200 and ok.json()["results"]
        assert c.get("/openapi.json").status_code == 200           # the schema itself holds no data


def test_cors_is_off_unless_configured(two, monkeypatch):
    pre = {"Origin": "https://newsroom.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app()) as c:
        r = c.options("/v1/detect", headers=pre)
        assert "access-control-allow-origin" not in r.headers
    monkeypatch.setenv("DEEPFAKE_LENS_API_CORS_ORIGINS", "https://newsroom.example")
    monkeypatch.setenv("DEEPFAKE_LENS_API_TOKEN", "t")
    with TestClient(create_app()) as c:
        r = c.options("/v1/detect", headers=pre)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://newsroom.example"


def test_report_json_and_html_agree_with_detect(two, client):
    a = client.post("/v1/detect", files=_image()).json()["assessment"]
    r = client.post("/v1/report", files=_image())
    assert r.status_code == 200
    rep = r.json()
    assert {k: rep["assessment"][k] for k in ("level", "direction", "reasons")} == \
        {k: a[k] for k in ("level", "direction", "reasons")}
    assert rep["file"]["name"] == "x.png" and rep["robustness"] is None
    page = client.post("/v1/report", params={"format": "html"}, files=_image())
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "x.png" in page.text and "<html" in page.text.lower()


def _wait(client: TestClient, url: str, limit: float = 60.0) -> dict:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        doc = client.get(url).json()
        if doc["status"] in ("done", "failed"):
            return doc
        time.sleep(0.05)
    raise AssertionError(f"job {url} did not finish")


def test_robustness_job(two, client):
    r = client.post("/v1/jobs/robustness", params={"conditions": "jpeg75,blur1"}, files=_image())
    assert r.status_code == 202 and r.headers["location"] == r.json()["url"]
    doc = _wait(client, r.json()["url"])
    assert doc["status"] == "done" and doc["progress"] == 1.0 and doc["error"] is None
    rob = doc["result"]["robustness"]
    assert [c["key"] for c in rob["conditions"]] == ["original", "jpeg75", "blur1"]
    assert doc["expires_at"] and doc["kind"] == "robustness"
    bad = client.post("/v1/jobs/robustness", params={"conditions": "melt"}, files=_image())
    assert bad.status_code == 422 and "melt" in _is_sentence(bad.json(), 422)
    missing = client.get("/v1/jobs/0123456789abcdef")
    assert missing.status_code == 404 and _is_sentence(missing.json(), 404)


def test_video_job_removes_its_upload(two, client, tmp_path, monkeypatch):
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    video = write_video(tmp_path / "clip.mp4", no_face(), n=12, fps=6)
    r = client.post("/v1/jobs/video", params={"fps": 2}, files={"video": ("clip.mp4", video.read_bytes())})
    assert r.status_code == 202, r.text
    doc = _wait(client, r.json()["url"], 120)
    assert doc["status"] == "done", doc
    res = doc["result"]
    assert res["video"]["path"] == "clip.mp4" and len(res["frames"]) >= 2
    assert res["detectors"] == ["TA:original", "TB:original"] and "FACE" in res["not_run"]
    assert list(spool.iterdir()) == []                          # the upload's temporary folder is gone
    bad = client.post("/v1/jobs/video", files={"video": ("clip.mp4", b"not a video at all")})
    assert bad.status_code == 422 and _is_sentence(bad.json(), 422)
    assert list(spool.iterdir()) == []


def test_the_gate_refuses_with_retry_after_and_keeps_its_bound_past_the_time_limit():
    release = threading.Event()

    async def scenario() -> None:
        gate = WorkGate(workers=1, queue=1, timeout=0.3)
        first = asyncio.ensure_future(gate.run(lambda: release.wait(10)))
        second = asyncio.ensure_future(gate.run(lambda: 42))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as full:
            await gate.run(lambda: 0)
        assert full.value.status == 503 and int(full.value.headers["Retry-After"]) >= 1
        with pytest.raises(ApiError) as slow:
            await first
        assert slow.value.status == 504 and "limit" in slow.value.message
        with pytest.raises(ApiError) as waited:
            await second                           # the limit counts the time spent waiting in the queue
        assert waited.value.status == 504
        assert gate.admitted == 2                  # the slow thread (and the one queued behind it) keep their slots
        release.set()
        await asyncio.sleep(0.1)
        assert gate.admitted == 0 and await gate.run(lambda: 42) == 42
        gate.close()

    asyncio.run(scenario())


def test_job_store_bounds_count_and_time():
    store = JobStore(max_jobs=2, ttl=0.2, timeout=5)
    done = threading.Event()
    a = store.submit("t", lambda ctx: {"n": 1})
    time.sleep(0.1)
    assert store.get(a.id)["result"] == {"n": 1}
    b = store.submit("t", lambda ctx: done.wait(5) and {"n": 2})
    c = store.submit("t", lambda ctx: {"n": 3})                 # full: the finished job a makes room
    with pytest.raises(ApiError) as e:
        store.get(a.id)
    assert e.value.status == 404
    with pytest.raises(ApiError) as full:
        store.submit("t", lambda ctx: None)                      # b running, c queued: nothing to evict
    assert full.value.status == 503 and "Retry-After" in full.value.headers
    done.set()
    time.sleep(0.1)
    assert store.get(b.id)["result"] == {"n": 2} and store.get(c.id)["status"] == "done"
    time.sleep(0.3)
    with pytest.raises(ApiError):
        store.get(b.id)                                          # expired after its ttl
    store.close()


def test_a_job_past_its_time_limit_fails_with_a_sentence():
    store = JobStore(max_jobs=4, ttl=60, timeout=0.05)

    def slow(ctx) -> None:
        for i in range(100):
            time.sleep(0.01)
            ctx.progress(i, 100)

    job = store.submit("t", slow)
    time.sleep(0.5)
    doc = store.get(job.id)
    assert doc["status"] == "failed" and doc["result"] is None
    assert "limit" in doc["error"] and "DEEPFAKE_LENS_API_JOB_TIMEOUT" in doc["error"]
    store.close()
