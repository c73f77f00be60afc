"""The FastAPI application: versioned endpoints over :class:`core.api.service.Service`.

Security: every ``/v1`` request needs ``Authorization: Bearer <DEEPFAKE_LENS_API_TOKEN>`` when that variable is set
(compared in constant time); no endpoint takes a server path (profiles are chosen by name from the server's own
folder); CORS is off unless ``DEEPFAKE_LENS_API_CORS_ORIGINS`` lists origins; an image upload stays in memory and
a video upload lives in a temporary folder removed when its job ends.
"""
from __future__ import annotations

import hmac
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from core import settings
from core.api.errors import UPLOAD_ERRORS, ApiError, ErrorBody, error_response, install_handlers
from core.api.jobs import JobStore
from core.api.service import Options, Service
from core.api.uploads import Upload, check_image_type, read_upload
from core.api.work import DetectorCache, WorkGate
from core.verdict.robustness import CONDITIONS
from core.versions import tool_version
from core.video.reader import probe as probe_video
from core.video.sampling import DEFAULT_FPS, DEFAULT_MAX_FRAMES, SamplingPlan

Rule = Literal["graded", "vote", "stacked"]


def _body(field: str, what: str) -> dict[str, Any]:
    """OpenAPI of a multipart body with one required file field (the body itself is parsed by core.api.uploads)."""
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": [field],
        "properties": {field: {"type": "string", "format": "binary", "description": what}}}}}}}


IMAGE_BODY = _body("image", "the image file (PNG, JPEG, WebP, GIF, BMP or TIFF)")
VIDEO_BODY = _body("video", "the video file")


def options(detectors: Annotated[str | None, Query(max_length=500, description="ID or ID:variant, comma-separated "
                                                   "(default: every installed detector)")] = None,
            fast: Annotated[bool, Query(description="bfloat16 where the detector's YAML validated it")] = False,
            profile: Annotated[str | None, Query(max_length=200, description="name of a calibration profile in the "
                                                 "server's profiles folder (see /v1/detectors)")] = None,
            rule: Annotated[Rule | None, Query(description="the headline's rule (default: configs/ensemble.yaml)")]
            = None) -> Options:
    """The detector options of every analysis endpoint, from the query string."""
    return Options(detectors, fast, profile, rule)


Opts = Annotated[Options, Depends(options)]
Quality = Annotated[int, Query(ge=1, le=100, description="JPEG quality of the error level analysis")]


class TokenGuard:
    """ASGI middleware: 401 on ``/v1`` without the bearer token, before any body is read."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Check the token of an HTTP request to ``/v1`` (the token is read from the settings on every request)."""
        token = settings.api_token()
        if token and scope["type"] == "http" and scope["path"].startswith("/v1"):
            given = dict(scope.get("headers") or ()).get(b"authorization", b"")
            expected = b"Bearer " + token.encode("utf-8")
            if not hmac.compare_digest(given, expected):
                resp = error_response(401, "a valid bearer token is required (Authorization: Bearer TOKEN).",
                                      {"WWW-Authenticate": "Bearer"})
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def read_image(request: Request) -> Upload:
    """The uploaded image (in memory), after the byte limit (413) and the type gate (415)."""
    upload = await read_upload(request, field="image", limit=settings.max_bytes())
    check_image_type(upload)
    return upload


def _job_accepted(job_id: str) -> JSONResponse:
    url = f"/v1/jobs/{job_id}"
    return JSONResponse({"id": job_id, "status": "queued", "url": url}, status_code=202, headers={"Location": url})


def _add_info_routes(app: FastAPI, service: Service, gate: WorkGate, jobs: JobStore) -> None:
    @app.get("/v1/health", summary="Readiness, version, installed and loaded detectors")
    async def health() -> JSONResponse:
        doc = await run_in_threadpool(service.health)      # not queued: health answers while the queue is full
        return JSONResponse({**doc, "queue": {"workers": gate.workers, "queue": gate.queue,
                                              "admitted": gate.admitted}})

    @app.get("/v1/detectors", summary="Detector variants: installed or why not, model cards; saved profiles")
    async def detectors() -> JSONResponse:
        return JSONResponse(await run_in_threadpool(service.detectors))

    @app.get("/v1/jobs/{job_id}", summary="A job's status, progress and (when done) result",
             responses={404: {"model": ErrorBody, "description": "unknown or expired job"}})
    async def job(job_id: str) -> JSONResponse:
        return JSONResponse(jobs.get(job_id))


def _add_image_routes(app: FastAPI, service: Service, gate: WorkGate) -> None:
    @app.post("/v1/detect", summary="Every chosen detector, the graded assessment and the original vote",
              responses=UPLOAD_ERRORS, openapi_extra=IMAGE_BODY)
    async def detect(request: Request, opts: Opts) -> JSONResponse:
        upload = await read_image(request)
        return JSONResponse(await gate.run(lambda: service.detect(upload, opts)))

    @app.post("/v1/forensics", summary="Metadata, C2PA provenance, JPEG facts and forensic summaries (no weights)",
              responses=UPLOAD_ERRORS, openapi_extra=IMAGE_BODY)
    async def forensics(request: Request, include_gps: bool = False,
                        ela_quality: Quality = 90) -> JSONResponse:
        upload = await read_image(request)
        return JSONResponse(await gate.run(lambda: service.forensics(upload, include_gps=include_gps,
                                                                     ela_quality=ela_quality)))

    @app.post("/v1/report", summary="The case report as JSON (format=json) or a self-contained HTML page",
              responses=UPLOAD_ERRORS, openapi_extra=IMAGE_BODY)
    async def report(request: Request, opts: Opts,
                     fmt: Annotated[Literal["json", "html"], Query(alias="format")] = "json", probe: bool = False,
                     include_gps: bool = False, ela_quality: Quality = 90) -> Response:
        upload = await read_image(request)
        rep = await gate.run(lambda: service.report(upload, opts, probe=probe, include_gps=include_gps,
                                                    ela_quality=ela_quality))
        return HTMLResponse(rep.html) if fmt == "html" else JSONResponse(rep.data)


def _conditions(text: str | None) -> list[str] | None:
    keys = [c.strip() for c in (text or "").split(",") if c.strip()]
    known = [c.key for c in CONDITIONS]
    unknown = [c for c in keys if c not in known]
    if unknown:
        raise ApiError(422, f"unknown probe condition '{unknown[0][:40]}' (known: {', '.join(known)}).")
    return keys or None


def _add_job_routes(app: FastAPI, service: Service, gate: WorkGate, jobs: JobStore) -> None:
    @app.post("/v1/jobs/robustness", status_code=202, summary="Start a robustness probe of one image (a job)",
              responses=UPLOAD_ERRORS, openapi_extra=IMAGE_BODY)
    async def robustness(request: Request, opts: Opts,
                         conditions: Annotated[str | None, Query(max_length=200, description="comma-separated "
                                                                  "condition keys (default: all)")] = None) -> JSONResponse:
        keys = _conditions(conditions)
        upload = await read_image(request)
        await gate.run(lambda: service.select(opts.detectors, opts.fast))   # unknown ids: 422 now, not later
        return _job_accepted(jobs.submit("robustness", lambda ctx: service.robustness(ctx, upload, opts, keys)).id)

    @app.post("/v1/jobs/video", status_code=202, summary="Start a video analysis (a job)",
              responses=UPLOAD_ERRORS, openapi_extra=VIDEO_BODY)
    async def video(request: Request, opts: Opts,
                    fps: Annotated[float, Query(gt=0, le=60)] = DEFAULT_FPS, keyframes: bool = False,
                    max_frames: Annotated[int, Query(ge=1, le=100_000)] = DEFAULT_MAX_FRAMES) -> JSONResponse:
        plan = SamplingPlan(mode="keyframes" if keyframes else "fps", fps=fps, max_frames=max_frames)
        folder = tempfile.TemporaryDirectory(prefix="deepfake-lens-upload-")
        try:
            upload = await read_upload(request, field="video", limit=settings.max_video_bytes(),
                                       folder=Path(folder.name), knob="DEEPFAKE_LENS_MAX_VIDEO_BYTES")
            await gate.run(lambda: (probe_video(str(upload.path)), service.select(opts.detectors, opts.fast)))
        except BaseException:
            folder.cleanup()
            raise
        job = jobs.submit("video", lambda ctx: service.video(ctx, upload, opts, plan), cleanup=folder.cleanup)
        return _job_accepted(job.id)


def create_app(*, workers: int | None = None, queue: int | None = None, timeout: float | None = None,
               cache: DetectorCache | None = None) -> FastAPI:
    """Build the API (limits read from :mod:`core.settings` now, unless given).

    Args:
        workers: analyses run at once (``DEEPFAKE_LENS_API_WORKERS``).
        queue: requests that may wait (``DEEPFAKE_LENS_API_QUEUE``); one more gets 503 + Retry-After.
        timeout: seconds per request (``DEEPFAKE_LENS_API_TIMEOUT``).
        cache: the shared detector cache (default: a new one for this app).

    Example:
        >>> import uvicorn
        >>> uvicorn.run(create_app(), host="127.0.0.1", port=8000)
    """
    gate = WorkGate(workers or settings.api_workers(), settings.api_queue() if queue is None else queue,
                    timeout or settings.api_timeout())
    jobs = JobStore(settings.api_max_jobs(), settings.api_job_ttl(), settings.api_job_timeout())
    service = Service(cache)

    app = FastAPI(title="Deepfake Lens API", version=tool_version(),
                  description="Detectors of AI-generated images, forensic evidence and case reports. Scores are "
                              "statistical evidence, not proof.")
    install_handlers(app)
    _add_info_routes(app, service, gate, jobs)
    _add_image_routes(app, service, gate)
    _add_job_routes(app, service, gate, jobs)
    app.add_middleware(TokenGuard)
    origins = settings.api_cors_origins()
    if origins:                 # added last = outermost: a CORS preflight is answered before the token check
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    app.state.gate, app.state.jobs, app.state.service = gate, jobs, service
    return app


__all__ = ["TokenGuard", "create_app", "options", "read_image"]
