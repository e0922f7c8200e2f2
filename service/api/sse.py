"""Server-sent events responses (sse-starlette) with errors reported in-band."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request

from service.api.errors import error_body, log_unexpected, request_id_of, to_api_error

DONE = "[DONE]"
# One event: a JSON object, or a literal string such as DONE.
SseEvent = dict[str, Any] | str


def sse(request: Request, events: AsyncIterator[SseEvent]) -> EventSourceResponse:
    """Stream ``events`` as ``data:`` lines (dicts as JSON, strings verbatim).

    Once the 200 header is sent, an error can only travel in the stream: it becomes one
    ``{"error": {...}}`` event (mapped by the same table as JSON responses) and the stream
    ends; its HTTP-equivalent status is kept in ``request.state.stream_status`` for metrics
    and logs. A client disconnect cancels the producer (and with it the generations).
    """

    async def body() -> AsyncIterator[dict[str, str]]:
        finished = False
        try:
            async for event in events:
                data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
                yield {"data": data}
            finished = True
        except Exception as exc:
            log_unexpected(exc, f"stream of {request.url.path}")
            error = to_api_error(exc)
            request.state.stream_status = error.status
            finished = True
            yield {"data": json.dumps(error_body(error, request_id_of(request)))}
        finally:
            if not finished:
                request.state.stream_status = 499

    return EventSourceResponse(body(), ping=15)
