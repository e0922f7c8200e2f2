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

import json
from collections.abc import Callable
from typing import Any

from starlette.types import Message, Receive

from service.api.errors import ApiError

#: Deepest JSON nesting a request may have (real bodies need 5; pydantic gives up later).
MAX_DEPTH = 32


class BodyTooLargeError(ApiError):
    """413: the body passed ``limit`` bytes while arriving."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, "too_large", f"request body over {limit} bytes", limit=limit)


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


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body; BodyTooLargeError past ``limit`` bytes, ClientLeftError when the
    client disconnects first."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
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
