"""The one place HTTP errors are defined and rendered.

Every error body is ``{"error": {"type": ..., "message": ..., ...}}``; no stack traces.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.engine import (
    DeadlineExceededError,
    DrainingError,
    EngineError,
    GenerationFailedError,
    InvalidRequestError,
    QueueFullError,
    RequestCancelledError,
)

log = logging.getLogger("service.api")


class ApiError(Exception):
    """An error response: status, stable type string, human message, extra fields."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers or {}
        self.extra = extra


class ClientDisconnectedError(ApiError):
    """The client went away before the answer was ready (logged and counted as 499)."""

    def __init__(self) -> None:
        super().__init__(499, "cancelled", "client disconnected")


def not_found_model(name: str, available: list[str]) -> ApiError:
    """404 for an unknown model name."""
    return ApiError(404, "model_not_found", f"no model named {name!r}", available=available)


def too_large(message: str, **extra: Any) -> ApiError:
    """413 for a request over one of the configured limits."""
    return ApiError(413, "too_large", message, **extra)


def from_engine(error: EngineError) -> ApiError:
    """Map an engine error to its HTTP status."""
    if isinstance(error, QueueFullError):
        return ApiError(
            429,
            "queue_full",
            str(error),
            headers={"Retry-After": str(error.retry_after_s)},
            retry_after_s=error.retry_after_s,
        )
    if isinstance(error, DeadlineExceededError):
        return ApiError(504, "timeout", str(error))
    if isinstance(error, DrainingError):
        return ApiError(503, "draining", str(error))
    if isinstance(error, RequestCancelledError):
        return ApiError(499, "cancelled", str(error))
    if isinstance(error, InvalidRequestError):
        return ApiError(422, "invalid_request", str(error))
    if isinstance(error, GenerationFailedError):
        return ApiError(500, "generation_failed", str(error))
    return ApiError(500, "internal_error", "internal error")


def error_body(error: ApiError, request_id: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    body: dict[str, Any] = {"type": error.type, "message": error.message, **error.extra}
    if request_id:
        body["request_id"] = request_id
    return {"error": body}


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(error: ApiError, request: Request) -> JSONResponse:
    """Render ``error`` and count a too_large rejection."""
    if error.status == 413:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.reject(getattr(request.state, "model", ""), "too_large")
    return JSONResponse(
        error_body(error, _request_id(request)), status_code=error.status, headers=error.headers
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for item in exc.errors():
        loc = [str(p) for p in item.get("loc", ()) if p != "body"]
        # Never echo the input back: it may be a private document.
        details.append({"field": ".".join(loc), "message": item.get("msg", "invalid")})
    first = details[0] if details else {"field": "", "message": "invalid request"}
    where = f"{first['field']}: " if first["field"] else ""
    return f"{where}{first['message']}", details


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the JSON error format."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc, request)

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
        return error_response(from_engine(exc), request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, details = _validation_message(exc)
        return error_response(ApiError(422, "validation_error", message, details=details), request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not_found", 405: "method_not_allowed"}
        error = ApiError(
            exc.status_code,
            kinds.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
        return error_response(error, request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return error_response(ApiError(500, "internal_error", "internal error"), request)
