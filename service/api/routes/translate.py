"""POST /translate: sentence-split, batch-translate, re-join keeping layout (the model
service does all three)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from service.api.calls import call_context, check_limits, until_done_or_disconnect
from service.api.options import generation_options
from service.api.schemas import TranslateRequest, TranslateResponse
from service.api.sse import DONE, SseEvent, sse
from service.engine import TextDelta

router = APIRouter(tags=["tasks"])


@router.post("/translate", response_model=TranslateResponse)
async def translate(body: TranslateRequest, request: Request) -> Any:
    """Translate one text or a list of texts (answer in input order)."""
    app = request.app.state
    texts = body.texts()
    check_limits(app.settings, texts, body.options)
    model = app.registry.for_pair(body.source_lang, body.target_lang, body.model)
    call = call_context(request, model, body.options.timeout_ms)
    options = generation_options(body.options)
    if body.stream:
        deltas = await model.stream_translate(
            texts, body.source_lang, body.target_lang, options, call
        )
        return sse(request, _events(deltas, len(texts), model.name))
    work = model.translate(texts, body.source_lang, body.target_lang, options, call)
    results = await until_done_or_disconnect(request, work)
    return TranslateResponse(model=model.name, translations=[r.text for r in results])


async def _events(
    deltas: AsyncIterator[TextDelta], count: int, model: str
) -> AsyncIterator[SseEvent]:
    """``{"index": text_index, "delta": str}`` pieces, then the full answer, then [DONE]."""
    translations = [""] * count
    async for delta in deltas:
        if delta.text:
            yield {"index": delta.index, "delta": delta.text}
        if delta.result is not None:
            translations[delta.index] = delta.result.text
    yield {"done": True, "model": model, "translations": translations}
    yield DONE
