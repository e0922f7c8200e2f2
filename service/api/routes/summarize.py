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

from service.api.generation import (
    Prepared,
    check_limits,
    complete,
    decode,
    prepare,
    stream_in_order,
)
from service.api.schemas import SummarizeRequest, SummarizeResponse
from service.api.sse import DONE, sse

router = APIRouter(tags=["tasks"])


@router.post("/summarize", response_model=SummarizeResponse)
async def summarize(body: SummarizeRequest, request: Request) -> Any:
    """Summarize one text or a list of texts (answer in input order)."""
    app = request.app.state
    texts = body.texts()
    check_limits(app.settings, texts, body.options)
    entry = app.registry.for_task("summarization", body.model)
    prepared = await prepare(request, entry, texts, body.options)
    if body.stream:
        return sse(request, _stream(prepared))
    results = await complete(request, prepared)
    return SummarizeResponse(
        model=entry.name, summaries=[decode(entry, r.sequences[0]) for r in results]
    )


async def _stream(prepared: Prepared) -> AsyncIterator[dict[str, Any] | str]:
    """Deltas ``{"index": i, "delta": str}``, then the full answer, then [DONE]."""
    outputs = [""] * len(prepared.ids)
    async for piece in stream_in_order(prepared):
        if piece.text:
            outputs[piece.index] += piece.text
            yield {"index": piece.index, "delta": piece.text}
    yield {"done": True, "model": prepared.entry.name, "summaries": outputs}
    yield DONE
