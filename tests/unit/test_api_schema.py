"""Property-based tests generated from the API's own OpenAPI schema (schemathesis): no input gives a 5xx, and every
error is a JSON sentence. Requests go through the ASGI app in-process; two tiny test detectors are installed.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from core.api import create_app
from tests.helpers import install_tiny_detectors

os.environ.setdefault("DEEPFAKE_LENS_API_MAX_JOBS", "100000")   # every generated job fits: a full store is a 503
APP = create_app(timeout=60)
os.environ.pop("DEEPFAKE_LENS_API_MAX_JOBS")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture()
def installed(tiny_config, weights_home, monkeypatch):
    monkeypatch.delenv("DEEPFAKE_LENS_API_TOKEN", raising=False)
    install_tiny_detectors(tiny_config, weights_home, {"TA": (0.3, 3.0), "TB": (0.25, -1.0)})


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case, installed):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "status"} and body["status"] == response.status_code
        assert body["error"].endswith(".") and "Traceback" not in body["error"]


def test_the_schema_documents_every_endpoint():
    paths = APP.openapi()["paths"]
    assert set(paths) == {"/v1/health", "/v1/detectors", "/v1/detect", "/v1/forensics", "/v1/report",
                          "/v1/jobs/robustness", "/v1/jobs/video", "/v1/jobs/{job_id}"}
    body = paths["/v1/detect"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["image"] and body["properties"]["image"]["format"] == "binary"
    assert {"413", "415", "422", "503"} <= set(paths["/v1/detect"]["post"]["responses"])
