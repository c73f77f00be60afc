"""The HTTP API: the library's answers for other programs (``python -m core serve``).

Endpoints (OpenAPI at ``/openapi.json``, docs at ``/docs``): ``GET /v1/health``, ``GET /v1/detectors``,
``POST /v1/detect`` (the JSON of ``detect --detector ALL --json``), ``POST /v1/forensics``, ``POST /v1/report``,
``POST /v1/jobs/robustness``, ``POST /v1/jobs/video`` and ``GET /v1/jobs/{id}``.

Modules, by job:
    app       the FastAPI application, routes, token guard, CORS
    service   what each endpoint computes (library calls only)
    uploads   streaming multipart parsing within the byte limits; the type gate (415)
    work      the bounded worker queue (503 + Retry-After, time limit) and the shared detector cache
    jobs      long work as expiring jobs
    server    uvicorn in the foreground (serve) or on a background thread (tests, bench)
    errors    JSON error sentences for every failure
"""
from core.api.app import create_app

__all__ = ["create_app"]
