"""Server-sent events responses (sse-starlette) with errors reported in-band."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request

from service.api.errors import ApiError, error_body, from_engine
from service.engine import EngineError

log = logging.getLogger("service.api")

DONE = "[DONE]"


def sse(request: Request, events: AsyncIterator[dict[str, Any] | str]) -> EventSourceResponse:
    """Stream ``events`` as ``data:`` lines (dicts as JSON, strings verbatim).

    Once the 200 header is sent, an error can only travel in the stream: it becomes one
    ``{"error": {...}}`` event and the stream ends; its HTTP-equivalent status is kept in
    ``request.state.stream_status`` for metrics and logs. A client disconnect cancels the
    producer (and with it the generations).
    """

    async def body() -> AsyncIterator[dict[str, str]]:
        finished = False
        try:
            async for event in events:
                data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
                yield {"data": data}
            finished = True
        except (ApiError, EngineError) as exc:
            error = exc if isinstance(exc, ApiError) else from_engine(exc)
            request.state.stream_status = error.status
            finished = True
            rid = getattr(request.state, "request_id", None)
            yield {"data": json.dumps(error_body(error, rid))}
        except Exception as exc:
            log.error("stream failed", exc_info=exc)
            request.state.stream_status = 500
            finished = True
            error = ApiError(500, "internal_error", "internal error")
            yield {"data": json.dumps(error_body(error))}
        finally:
            if not finished:
                request.state.stream_status = 499

    return EventSourceResponse(body(), ping=15)
