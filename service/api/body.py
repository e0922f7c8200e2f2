"""Reading a work request's body before the app sees it: size, disconnects, JSON sanity.

The middleware reads the whole body of a work request (at most ``S2S_MAX_BODY_BYTES``,
counted as it arrives, so a chunked body without Content-Length gets the same 413) and
replays it to the app. A JSON body (any JSON content type) is checked once here so that
every way of being unparseable answers the same 422 ``validation_error`` (FastAPI answers
invalid JSON 422 but invalid UTF-8 and recursion 400; the compatible APIs render it as
their 400), and so that no string with a lone UTF-16 surrogate (valid JSON,
``"\\ud800"``, but no text) ever reaches a tokenizer, the language detector or a
response encoder.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Message, Receive

from service.api.errors import ApiError

#: Deepest JSON nesting a request may have (real bodies need 5; pydantic gives up later).
MAX_DEPTH = 32


class BodyTooLargeError(ApiError):
    """413: the body passed ``limit`` bytes while arriving."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "too_large", f"request body over {limit} bytes", limit=limit)


class BodyTimeoutError(ApiError):
    """408: the body did not arrive in time (the connection is closed after the answer)."""

    def __init__(self, pace: BodyPace) -> None:
        super().__init__(
            408,
            "request_timeout",
            f"the request body did not arrive in time ({pace.received} bytes received; "
            f"allowed: {pace.timeout_s:g} s plus 1 s per {pace.min_rate} bytes)",
            headers={"Connection": "close"},
        )


@dataclass
class BodyPace:
    """The deadline of one request body: ``timeout_s`` from its headers, plus one second
    per ``min_rate`` bytes received. A stalled body ends at ``timeout_s``; one trickling
    slower than ``min_rate`` soon after; a large one arriving steadily at least as fast
    as ``min_rate`` is never cut. Applies only until the body is complete: afterwards
    ``receive`` only reports the disconnect, which may take as long as the response."""

    timeout_s: float
    min_rate: int
    started: float = field(default_factory=time.monotonic)
    received: int = 0
    complete: bool = False

    async def receive(self, receive: Receive) -> Message:
        """The next ASGI message, or BodyTimeoutError when the body is late."""
        if self.complete:
            return await receive()
        deadline = self.started + self.timeout_s + self.received / self.min_rate
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                message = await receive()
        except TimeoutError:
            raise BodyTimeoutError(self) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        return message


class ClientLeftError(Exception):
    """The client disconnected before sending the whole body (answered 499, no body)."""


def _invalid(message: str, field: str = "") -> ApiError:
    return ApiError(
        422, "validation_error", message, details=[{"field": field, "message": message}]
    )


def is_json(content_type: str) -> bool:
    """Whether a Content-Type header names JSON (``application/json`` or a
    ``application/...+json`` type, which the compatible APIs accept too)."""
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


async def read_body(receive: Receive, limit: int, pace: BodyPace) -> bytes:
    """The whole body; BodyTooLargeError past ``limit`` bytes, BodyTimeoutError when it
    arrives too slowly (``pace``), ClientLeftError when the client disconnects first."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await pace.receive(receive)
        if message["type"] == "http.disconnect":
            raise ClientLeftError
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _lone_surrogate_at(value: Any, path: list[str], depth: int = 0) -> str | None:
    """The dotted path of the first string holding a lone surrogate (None: none)."""
    if depth > MAX_DEPTH:
        raise RecursionError
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return ".".join(path)
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate_at(key, path, depth + 1) or _lone_surrogate_at(
                item, [*path, str(key)], depth + 1
            )
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate_at(item, [*path, str(i)], depth + 1)
            if found is not None:
                return found
    return None


def check_json(body: bytes) -> ApiError | None:
    """The 422 for a body that is no usable JSON text, or None (an empty body is left
    to the route, which answers its own 422)."""
    if not body.strip():
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _invalid("the body is not valid UTF-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None  # FastAPI's own 422 json_invalid, with the position
    except RecursionError:
        return _invalid(f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        where = _lone_surrogate_at(data, [])
    except RecursionError:
        return _invalid(f"the body nests deeper than {MAX_DEPTH} levels")
    if where is not None:
        return _invalid(f"{where}: text holds a lone UTF-16 surrogate (not a character)", where)
    return None


def replaying(body: bytes, receive: Receive) -> Callable[[], Any]:
    """A receive callable that returns ``body`` once, then defers to ``receive`` (which
    then only ever reports the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
