"""POST /chat: one assistant reply to a conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from service.api.conversation import encode_chat
from service.api.errors import too_large
from service.api.generation import (
    Prepared,
    check_limits,
    complete,
    decode,
    resolve,
    stream_in_order,
)
from service.api.schemas import AssistantMessage, ChatRequest, ChatResponse, Usage
from service.api.sse import DONE, sse
from service.engine import GenerationRequest
from service.text.chat import Message

router = APIRouter(tags=["tasks"])


@router.post("/chat", response_model=ChatResponse)
async def chat(body: ChatRequest, request: Request) -> Any:
    """Reply to the conversation in ``messages`` (the last one is the user's)."""
    app = request.app.state
    if len(body.messages) > app.settings.max_messages:
        raise too_large(
            f"{len(body.messages)} messages; at most {app.settings.max_messages}",
            limit=app.settings.max_messages,
        )
    check_limits(app.settings, [m.content for m in body.messages], body.options)
    entry = app.registry.for_task("chat", body.model)
    request.state.model = entry.name
    resolved = resolve(entry, body.options.generation_fields())
    ids = await encode_chat(entry, [Message(m.role, m.content) for m in body.messages])
    prepared = Prepared(
        entry,
        [ids],
        resolved,
        GenerationRequest.deadline_in(body.options.timeout_ms),
        getattr(request.state, "request_id", ""),
    )
    if body.stream:
        return sse(request, _stream(prepared))
    (result,) = await complete(request, prepared)
    return ChatResponse(
        model=entry.name,
        message=AssistantMessage(content=decode(entry, result.sequences[0]).strip()),
        usage=Usage(
            prompt_tokens=result.input_tokens,
            completion_tokens=result.generated_tokens,
            total_tokens=result.input_tokens + result.generated_tokens,
        ),
    )


async def _stream(prepared: Prepared) -> AsyncIterator[dict[str, Any] | str]:
    """Deltas ``{"delta": str}``, then the full answer with usage, then [DONE]."""
    text = ""
    async for piece in stream_in_order(prepared):
        if piece.text:
            delta = piece.text.lstrip() if not text else piece.text
            text += delta
            if delta:
                yield {"delta": delta}
        if piece.result is not None:
            r = piece.result
            usage = Usage(
                prompt_tokens=r.input_tokens,
                completion_tokens=r.generated_tokens,
                total_tokens=r.input_tokens + r.generated_tokens,
            )
            yield {
                "done": True,
                "model": prepared.entry.name,
                "message": {"role": "assistant", "content": text.strip()},
                "usage": usage.model_dump(),
            }
    yield DONE
