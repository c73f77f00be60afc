"""Every failure of the HTTP API as JSON with one human sentence: ``{"error": "...", "status": 422}``.

No handler ever sends a stack trace: an unexpected exception is logged on the server and answered with a plain
500 sentence. The user's mistakes map to 4xx: a file over the byte limit 413, a type this service does not read 415,
an unreadable image, a bad option or an unknown detector 422; a full queue 503 with ``Retry-After``.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import DeepfakeLensError, WeightsError

log = logging.getLogger("deepfake_lens.api")

_REASONS = {400: "the request is malformed", 401: "a valid bearer token is required",
            403: "this is not allowed", 404: "no such endpoint", 405: "this method is not allowed on this endpoint",
            413: "the upload is too large", 415: "this media type is not accepted",
            422: "the request could not be understood", 503: "the server is busy"}


class ErrorBody(BaseModel):
    """The JSON body of every error response."""

    error: str
    status: int


class ApiError(Exception):
    """An HTTP error with one sentence for the client.

    Args:
        status: the HTTP status code.
        message: one complete human sentence.
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def sentence(text: str) -> str:
    """``text`` on one line, ending with a full stop."""
    one = " ".join(str(text).split()) or "unknown error"
    return one if one.endswith((".", "!", "?")) else one + "."


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON error response (see :class:`ErrorBody`)."""
    return JSONResponse({"error": sentence(message), "status": status}, status_code=status, headers=dict(headers or {}))


def _validation_sentence(exc: RequestValidationError) -> str:
    """The first validation problem as a sentence: where it is and what is wrong."""
    errors = exc.errors()
    if not errors:
        return "the request could not be understood."
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body",)]
    where = f"{loc[0]} parameter '{'.'.join(loc[1:])}'" if len(loc) > 1 else (loc[0] if loc else "request")
    more = f" ({len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid value')}{more}"


def status_of(exc: DeepfakeLensError) -> int:
    """The HTTP status of a library error: a weights problem is the server's state (409), the rest the input (422)."""
    return 409 if isinstance(exc, WeightsError) else 422


def install_handlers(app: FastAPI) -> None:
    """Answer every error, expected or not, as a JSON sentence."""

    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.headers)

    async def library_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DeepfakeLensError)
        return error_response(status_of(exc), str(exc))

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else _REASONS.get(exc.status_code, "error")
        if exc.status_code in _REASONS and detail in ("Not Found", "Method Not Allowed"):
            detail = _REASONS[exc.status_code]
        return error_response(exc.status_code, detail, getattr(exc, "headers", None))

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, _validation_sentence(exc))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "the server failed on this request; the server log has the details.")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(DeepfakeLensError, library_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


#: OpenAPI ``responses`` entries of the errors every upload endpoint can give.
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": _REASONS[code]} for code in (401, 413, 415, 422, 503)}

__all__ = ["UPLOAD_ERRORS", "ApiError", "ErrorBody", "error_response", "install_handlers", "sentence", "status_of"]
