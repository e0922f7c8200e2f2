"""POST /summarize.

Input longer than the model's maximum source length is refused with 413 naming the limit
(in tokens), never truncated: summarizing chunks separately and gluing the summaries
together produces text the model never saw as a whole, which we would rather leave to
the client to decide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from service.api.calls import call_context, check_limits, until_done_or_disconnect
from service.api.options import generation_options
from service.api.schemas import TASK_RESPONSES, SummarizeRequest, SummarizeResponse
from service.api.sse import DONE, SseEvent, sse
from service.engine import TextDelta

router = APIRouter(tags=["tasks"])


@router.post("/summarize", response_model=SummarizeResponse, responses=TASK_RESPONSES)
async def summarize(body: SummarizeRequest, request: Request) -> Any:
    """Summarize one text or a list of texts (answer in input order)."""
    app = request.app.state
    texts = body.texts()
    check_limits(app.settings, texts, body.options)
    model = app.registry.for_task("summarization", body.model)
    call = call_context(request, model, body.options.timeout_ms)
    options = generation_options(body.options)
    if body.stream:
        deltas = await model.stream_summarize(texts, options, call)
        return sse(request, _events(deltas, len(texts), model.name))
    results = await until_done_or_disconnect(request, model.summarize(texts, options, call))
    return SummarizeResponse(model=model.name, summaries=[r.text for r in results])


async def _events(
    deltas: AsyncIterator[TextDelta], count: int, model: str
) -> AsyncIterator[SseEvent]:
    """Deltas ``{"index": i, "delta": str}``, then the full answer, then [DONE]."""
    outputs = [""] * count
    async for delta in deltas:
        if delta.text:
            outputs[delta.index] += delta.text
            yield {"index": delta.index, "delta": delta.text}
    yield {"done": True, "model": model, "summaries": outputs}
    yield DONE
