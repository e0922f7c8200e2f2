"""One pure-ASGI middleware for what every request goes through, in order:

request id (accepted from ``X-Request-ID`` if sane, else generated; always returned),
body framing (400 for Content-Length with Transfer-Encoding), API-key check, draining
(503 for new work), content type (415), per-key quotas (429), the body read whole and
checked (413 / 408 / 422 / 499, service/api/body.py), then metrics (requests by
route/status, duration) and one access-log line. Pure ASGI rather than
BaseHTTPMiddleware so streaming responses and disconnects pass through.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import body
from service.api.auth import OPEN_PATHS, OPEN_PREFIXES, SELF_AUTH_PREFIXES, authorized
from service.api.drain import DrainState
from service.api.errors import (
    ApiError,
    compat_api_for,
    internal_error,
    log_unexpected,
    rendered,
    too_large,
)
from service.api.logs import request_id_var
from service.api.metrics import Metrics, route_label
from service.api.quotas import KeyQuotas, tenant_of
from service.settings import Settings

access_log = logging.getLogger("service.access")

WORK_ROUTES = frozenset({"/translate", "/summarize", "/chat", "/v1/chat/completions"})
# The compatible APIs' work routes: drained like ours, but they take form bodies too.
COMPAT_WORK_ROUTES = frozenset(
    {"/libretranslate/translate", "/libretranslate/detect", "/v2/translate"}
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


_BodyTooLargeError = body.BodyTooLargeError


def _framing_error(headers: Headers) -> ApiError | None:
    """400 for a request that frames its body twice (Content-Length and
    Transfer-Encoding): RFC 9112 6.3 lets a server refuse it, and a proxy in front that
    reads the other header would see another request boundary (request smuggling). The
    connection closes after the answer."""
    if "content-length" in headers and "transfer-encoding" in headers:
        return ApiError(
            400,
            "bad_request",
            "a request must not have both Content-Length and Transfer-Encoding",
            headers={"Connection": "close"},
        )
    return None


class ServiceMiddleware:
    """Request id, auth, draining, content checks, metrics and access log."""

    def __init__(
        self, app: ASGIApp, settings: Settings, metrics: Metrics, drain: DrainState
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.drain = drain
        self.quotas = KeyQuotas(
            settings.key_rate_per_s, settings.key_burst, settings.key_max_concurrent
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        is_work = scope["method"] == "POST" and path in WORK_ROUTES | COMPAT_WORK_ROUTES
        status = [500]
        started_response = [False]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                started_response[0] = True
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            error = _framing_error(headers) or self._precheck(path, headers, is_work)
            if error is not None:
                await self._send_error(error, path, send_with_id)
                return
            quota = is_work and self.quotas.enabled
            # A local, not only the scope state: that dict may be shared between requests.
            tenant = tenant_of(headers.get("authorization"), self.settings.api_keys)
            state["tenant"] = tenant
            if quota:
                refused = self.quotas.acquire(tenant)
                if refused is not None:
                    self.metrics.reject("", refused.type)
                    await self._send_error(refused, path, send_with_id)
                    return
            if is_work:
                self.drain.active += 1
            try:
                if is_work:
                    replay = await self._read_work_body(path, headers, receive, send_with_id)
                    if replay is None:
                        if not started_response[0]:
                            status[0] = 499  # the client left mid-body; nobody to answer
                        return
                else:
                    replay = self._limited(receive)
                await self.app(scope, replay, send_with_id)
            except Exception as exc:
                # A bug anywhere below: 500 with the request id (logged with its traceback).
                log_unexpected(exc, path)
                if started_response[0]:
                    raise
                await self._send_error(internal_error(), path, send_with_id)
            finally:
                if is_work:
                    self.drain.active -= 1
                if quota:
                    self.quotas.release(tenant)
        finally:
            final = int(state.get("stream_status") or status[0])
            route = route_label(path)
            model = str(state.get("model", ""))
            elapsed = time.perf_counter() - started
            self.metrics.requests.labels(model=model, route=route, status=str(final)).inc()
            self.metrics.request_duration.labels(route=route).observe(elapsed)
            access_log.info(
                "%s %s %d",
                scope["method"],
                route,
                final,
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": final,
                    "model": model,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)

    def _precheck(self, path: str, headers: Headers, is_work: bool) -> ApiError | None:
        keys = self.settings.api_keys
        if (
            keys
            and path not in OPEN_PATHS
            and not path.startswith(SELF_AUTH_PREFIXES)
            and not path.startswith(OPEN_PREFIXES)
            and not authorized(headers.get("authorization"), keys)
        ):
            return ApiError(
                401,
                "unauthorized",
                "a valid API key is required (Bearer token)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not is_work:
            return None
        if self.drain.draining:
            return ApiError(
                503, "draining", "the server is shutting down", headers={"Retry-After": "1"}
            )
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json" and path in WORK_ROUTES:
            return ApiError(
                415, "unsupported_media_type", "send the request body as application/json"
            )
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.settings.max_body_bytes:
            return too_large(
                f"request body over {self.settings.max_body_bytes} bytes",
                limit=self.settings.max_body_bytes,
            )
        return None

    async def _read_work_body(
        self, path: str, headers: Headers, receive: Receive, send: Send
    ) -> Receive | None:
        """Read and check a work request's body, answering 413/422 itself; a receive that
        replays the body, or None when answered (or the client left)."""
        try:
            data = await body.read_body(receive, self.settings.max_body_bytes, self._pace())
        except body.ClientLeftError:
            return None
        except (body.BodyTooLargeError, body.BodyTimeoutError) as exc:
            await self._send_error(exc, path, send)
            return None
        if body.is_json(headers.get("content-type", "")):
            error = body.check_json(data)
            if error is not None:
                await self._send_error(error, path, send)
                return None
        return body.replaying(data, receive)

    def _pace(self) -> body.BodyPace:
        return body.BodyPace(self.settings.body_timeout_s, self.settings.body_min_rate)

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` for a route that reads its own body: 413 past the size limit,
        408 when it arrives too slowly (raised to the route's error handler)."""
        limit = self.settings.max_body_bytes
        pace = self._pace()
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await pace.receive(receive)
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLargeError(limit)
            return message

        return limited_receive

    async def _send_error(self, error: ApiError, path: str, send: Send) -> None:
        """Answer ``error`` in the format of the API ``path`` belongs to."""
        if error.status == 413:
            self.metrics.reject("", "too_large")
        if error.type == "draining":
            self.metrics.reject("", "draining")
        status, content = rendered(error, compat_api_for(path), request_id_var.get())
        body = json.dumps(content).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
