"""POST /translate: sentence-split, batch-translate, re-join keeping layout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from service.api.generation import (
    check_limits,
    complete,
    decode,
    prepare,
    stream_in_order,
)
from service.api.schemas import TranslateRequest, TranslateResponse
from service.api.sse import DONE, sse
from service.text import sentences

router = APIRouter(tags=["tasks"])


@router.post("/translate", response_model=TranslateResponse)
async def translate(body: TranslateRequest, request: Request) -> Any:
    """Translate one text or a list of texts (answer in input order)."""
    app = request.app.state
    texts = body.texts()
    check_limits(app.settings, texts, body.options)
    entry = app.registry.for_pair(body.source_lang, body.target_lang, body.model)
    segmented = [sentences.split(t, body.source_lang) for t in texts]
    flat = [s for seg in segmented for s in seg.sentences]
    prepared = await prepare(
        request,
        entry,
        flat,
        body.options,
        source_lang=body.source_lang,
        target_lang=body.target_lang,
    )
    if body.stream:
        return sse(request, _stream(prepared, segmented, entry.name))
    results = await complete(request, prepared)
    outputs = [decode(entry, r.sequences[0]) for r in results]
    translations = []
    start = 0
    for seg in segmented:
        n = len(seg.sentences)
        translations.append(sentences.join(seg, outputs[start : start + n]))
        start += n
    return TranslateResponse(model=entry.name, translations=translations)


async def _stream(
    prepared: Any, segmented: list[sentences.Segmented], model: str
) -> AsyncIterator[dict[str, Any] | str]:
    """Deltas ``{"index": text_index, "delta": str}``, then the full answer, then [DONE]."""
    owner = [i for i, seg in enumerate(segmented) for _ in seg.sentences]
    position = [k for seg in segmented for k in range(len(seg.sentences))]
    outputs: list[list[str]] = [[] for _ in segmented]
    current = [""] * len(owner)
    started: set[int] = set()
    async for piece in stream_in_order(prepared):
        text_index = owner[piece.index]
        seg = segmented[text_index]
        if piece.index not in started:
            started.add(piece.index)
            if position[piece.index] == 0 and seg.gaps[0]:
                yield {"index": text_index, "delta": seg.gaps[0]}
        if piece.text:
            current[piece.index] += piece.text
            yield {"index": text_index, "delta": piece.text}
        if piece.result is not None:
            outputs[text_index].append(current[piece.index])
            gap = seg.gaps[position[piece.index] + 1]
            if gap:
                yield {"index": text_index, "delta": gap}
    translations = [sentences.join(seg, out) for seg, out in zip(segmented, outputs, strict=True)]
    yield {"done": True, "model": model, "translations": translations}
    yield DONE
