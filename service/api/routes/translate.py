"""POST /translate: sentence-split, batch-translate, re-join keeping layout (the model
service does all three); source "auto" detects each text's language, format "html"
keeps the markup (both below the route, in the engine's Translator)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from service.api.calls import check_limits, label_models, start_call, until_done_or_disconnect
from service.api.options import generation_options
from service.api.schemas import (
    TASK_RESPONSES,
    DetectedLanguageOut,
    TranslateRequest,
    TranslateResponse,
)
from service.api.sse import DONE, SseEvent, sse
from service.api.usage import CharacterUsage
from service.engine import DetectedLanguage, TextDelta, TextFormat

router = APIRouter(tags=["tasks"])


@router.post(
    "/translate",
    response_model=TranslateResponse,
    response_model_exclude_none=True,
    responses=TASK_RESPONSES,
)
async def translate(body: TranslateRequest, request: Request) -> Any:
    """Translate one text or a list of texts (answer in input order)."""
    app = request.app.state
    texts = body.texts()
    check_limits(app.settings, texts, body.options)
    call = start_call(request, body.options.timeout_ms)
    plan = await app.translator.plan(
        texts, body.source_lang, body.target_lang, body.model, TextFormat(kind=body.format)
    )
    model = label_models(request, plan)
    options = generation_options(body.options)
    detected = _detected(plan.detected)
    # Absent (excluded when None) for the common case: one model, every text direct.
    answer = TranslateResponse(
        model=model,
        models=plan.models if len(plan.models) > 1 else None,
        pivot=plan.pivot,
        translations=[],
        detected_languages=detected,
    )
    if body.stream:
        deltas = await plan.stream(options, call)
        return sse(request, _events(deltas, len(texts), answer, app.usage, texts))
    results = await until_done_or_disconnect(request, plan.run(options, call))
    app.usage.add(texts)
    return answer.model_copy(update={"translations": [r.text for r in results]})


def _detected(found: list[DetectedLanguage | None]) -> list[DetectedLanguageOut] | None:
    if not found or found[0] is None:
        return None
    return [
        DetectedLanguageOut(language=d.language, confidence=round(d.confidence, 4))
        for d in found
        if d is not None
    ]


async def _events(
    deltas: AsyncIterator[TextDelta],
    count: int,
    answer: TranslateResponse,
    usage: CharacterUsage,
    texts: list[str],
) -> AsyncIterator[SseEvent]:
    """``{"index": text_index, "delta": str}`` pieces, then the full answer, then [DONE]."""
    translations = [""] * count
    async for delta in deltas:
        if delta.text:
            yield {"index": delta.index, "delta": delta.text}
        if delta.result is not None:
            translations[delta.index] = delta.result.text
    usage.add(texts)
    full = answer.model_copy(update={"translations": translations})
    done: dict[str, Any] = {"done": True, **full.model_dump(exclude_none=True)}
    yield done
    yield DONE
