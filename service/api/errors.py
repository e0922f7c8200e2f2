"""The one place HTTP errors are defined, mapped from typed errors, and rendered.

Every error body is ``{"error": {"type": ..., "message": ..., ...}, "request_id"}``; no
stack traces. :func:`to_api_error` is the single table from the engine layer's typed
errors to HTTP statuses; JSON routes, SSE streams and the OpenAI routes all use it.
Anything that is not an ``ApiError`` or an ``EngineError`` is a bug: 500, logged with its
traceback and the request id, never a 4xx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.engine import (
    DeadlineExceededError,
    DetectedLanguageUnsupportedError,
    DrainingError,
    EngineError,
    GenerationFailedError,
    InputTooLargeError,
    InvalidRequestError,
    LanguageNotDetectedError,
    MarkupTooDeepError,
    ModelFailedError,
    ModelNotFoundError,
    ModelNotReadyError,
    NoModelError,
    OptionsRejectedError,
    QueueFullError,
    RequestCancelledError,
    RequestTooCostlyError,
    UnsupportedLanguagePairError,
    WorkerFailedError,
    WrongTaskError,
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


def too_large(message: str, **extra: Any) -> ApiError:
    """413 for a request over one of the configured limits."""
    return ApiError(413, "too_large", message, **extra)


def _queue_full(e: QueueFullError) -> ApiError:
    return ApiError(
        429,
        "queue_full",
        str(e),
        headers={"Retry-After": str(e.retry_after_s)},
        retry_after_s=e.retry_after_s,
    )


def _simple(status: int, type_: str) -> Callable[[Any], ApiError]:
    return lambda e: ApiError(status, type_, str(e))


# Most specific first: the first matching type decides.
_TABLE: tuple[tuple[type[EngineError], Callable[[Any], ApiError]], ...] = (
    (QueueFullError, _queue_full),
    (RequestTooCostlyError, lambda e: too_large(str(e), limit=e.limit, cost=e.cost)),
    (DeadlineExceededError, _simple(504, "timeout")),
    (DrainingError, _simple(503, "draining")),
    (RequestCancelledError, _simple(499, "cancelled")),
    (InputTooLargeError, lambda e: too_large(str(e), limit_tokens=e.limit_tokens)),
    (OptionsRejectedError, _simple(422, "invalid_options")),
    (InvalidRequestError, _simple(422, "invalid_request")),
    (GenerationFailedError, _simple(500, "generation_failed")),
    (WorkerFailedError, lambda e: ApiError(503, "model_failed", str(e), reason=str(e))),
    (
        ModelNotFoundError,
        lambda e: ApiError(404, "model_not_found", str(e), available=e.available),
    ),
    (MarkupTooDeepError, lambda e: ApiError(422, "markup_too_deep", str(e), limit=e.limit)),
    (WrongTaskError, _simple(422, "wrong_task")),
    (NoModelError, _simple(422, "no_model")),
    (
        UnsupportedLanguagePairError,
        lambda e: ApiError(422, "unsupported_language_pair", str(e), pairs=e.pairs),
    ),
    (
        DetectedLanguageUnsupportedError,
        lambda e: ApiError(
            422,
            "unsupported_source_language",
            str(e),
            language=e.language,
            supported=e.supported,
        ),
    ),
    (LanguageNotDetectedError, _simple(422, "language_not_detected")),
    (
        ModelNotReadyError,
        lambda e: ApiError(503, "not_ready", str(e), headers={"Retry-After": "5"}),
    ),
    (ModelFailedError, lambda e: ApiError(503, "model_failed", str(e), reason=e.failure)),
)


def internal_error() -> ApiError:
    """The 500 of a bug (the details are in the log, never in the response)."""
    return ApiError(500, "internal_error", "internal error")


def to_api_error(error: BaseException) -> ApiError:
    """The HTTP error for any exception (the one mapping table)."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, EngineError):
        for kind, build in _TABLE:
            if isinstance(error, kind):
                return build(error)
    return internal_error()


def log_unexpected(error: BaseException, where: str) -> None:
    """Log a bug with its traceback (the log line carries the request id)."""
    if not isinstance(error, ApiError | EngineError):
        log.error("unhandled error in %s", where, exc_info=error)


def error_body(error: ApiError, request_id: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    body: dict[str, Any] = {"type": error.type, "message": error.message, **error.extra}
    if request_id:
        body["request_id"] = request_id
    return {"error": body}


def request_id_of(request: Request) -> str | None:
    """The request id the middleware assigned."""
    rid = getattr(request.state, "request_id", None)
    return rid if isinstance(rid, str) else None


def error_response(error: ApiError, request: Request) -> JSONResponse:
    """Render ``error`` in the format of the API its path belongs to (ours, or a
    compatible one: :func:`compat_api_for`) and count a too_large rejection."""
    if error.status == 413:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.reject(getattr(request.state, "model", ""), "too_large")
    status, body = rendered(error, compat_api_for(request.url.path), request_id_of(request))
    return JSONResponse(body, status_code=status, headers=error.headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    for item in exc.errors():
        loc = [str(p) for p in item.get("loc", ()) if p != "body"]
        # Never echo the input back: it may be a private document.
        details.append({"field": ".".join(loc), "message": item.get("msg", "invalid")})
    first = details[0] if details else {"field": "", "message": "invalid request"}
    where = f"{first['field']}: " if first["field"] else ""
    return f"{where}{first['message']}", details


# ---- the compatible APIs' error formats ------------------------------------------------
CompatApi = Literal["libretranslate", "deepl"]
#: DeepL's own statuses for quota and auth; every other client error is its 400.
_DEEPL_KEEPS = frozenset({403, 404, 405, 408, 413, 429, 456, 499})


#: LibreTranslate's own statuses besides 400 and 500: a bad key, an unknown path or
#: method, rate limits, and the temporary states a client should retry (draining or
#: loading, a deadline).
_LIBRETRANSLATE_KEEPS = frozenset({403, 404, 405, 408, 429, 499, 503, 504})
#: Path prefixes of the compatible APIs (every path under them answers in their format).
_COMPAT_PREFIXES: tuple[tuple[str, CompatApi], ...] = (
    ("/libretranslate/", "libretranslate"),
    ("/v2/", "deepl"),
)


def compat_api_for(path: str) -> CompatApi | None:
    """The compatible API a request path belongs to, or None for our own API."""
    for prefix, api in _COMPAT_PREFIXES:
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            return api
    return None


def compat_status(error: ApiError, api: CompatApi) -> int:
    """The status a LibreTranslate or DeepL client expects for ``error`` (decided from the
    status the typed table gave it, never from its message).

    LibreTranslate answers 400 for every client error but a bad key (403), an unknown
    path or method (404, 405), a body too slow (408) and rate limits (429), and 500 for
    server errors but the temporary ones (503 draining or loading, 504 deadline), which
    are no bug; DeepL
    answers 400 for bad requests but keeps 403 (auth), 404, 405, 408, 413, 429 and 456
    (quota), and keeps 5xx (its clients retry them).
    """
    status = error.status
    if api == "libretranslate":
        if status in _LIBRETRANSLATE_KEEPS:
            return status
        return 400 if status < 500 else 500
    if status in _DEEPL_KEEPS or status >= 500:
        return status
    return 400


def rendered(
    error: ApiError, api: CompatApi | None, request_id: str | None
) -> tuple[int, dict[str, Any]]:
    """Status and body of ``error`` in ``api``'s format: ours (``{"error": {...}}``),
    LibreTranslate's ``{"error": message}`` or DeepL's ``{"message": message}``."""
    if api is None:
        return error.status, error_body(error, request_id)
    key = "error" if api == "libretranslate" else "message"
    return compat_status(error, api), {key: error.message}


def compat_error_response(error: BaseException, request: Request, api: CompatApi) -> JSONResponse:
    """Render any failure in a compatible API's format: ``{"error": message}``
    (LibreTranslate) or ``{"message": message}`` (DeepL), with that API's status; bugs are
    logged and answered as 500 like everywhere else."""
    log_unexpected(error, request.url.path)
    api_error = to_api_error(error)
    if api_error.status == 413:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.reject(getattr(request.state, "model", ""), "too_large")
    status, body = rendered(api_error, api, None)
    return JSONResponse(body, status_code=status, headers=api_error.headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the JSON error format."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc, request)

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
        return error_response(to_api_error(exc), request)

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
        log_unexpected(exc, request.url.path)
        return error_response(internal_error(), request)
