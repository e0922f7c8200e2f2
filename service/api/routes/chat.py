"""POST /chat: one assistant reply to a conversation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from service.api.calls import call_context, check_limits, until_done_or_disconnect
from service.api.errors import too_large
from service.api.options import generation_options
from service.api.schemas import TASK_RESPONSES, AssistantMessage, ChatRequest, ChatResponse, Usage
from service.api.sse import DONE, SseEvent, sse
from service.engine import TextDelta, TextResult
from service.text.chat import Message

router = APIRouter(tags=["tasks"])


def usage(result: TextResult) -> Usage:
    """Token counts of a reply."""
    return Usage(
        prompt_tokens=result.input_tokens,
        completion_tokens=result.generated_tokens,
        total_tokens=result.input_tokens + result.generated_tokens,
    )


@router.post("/chat", response_model=ChatResponse, responses=TASK_RESPONSES)
async def chat(body: ChatRequest, request: Request) -> Any:
    """Reply to the conversation in ``messages`` (the last one is the user's)."""
    app = request.app.state
    if len(body.messages) > app.settings.max_messages:
        raise too_large(
            f"{len(body.messages)} messages; at most {app.settings.max_messages}",
            limit=app.settings.max_messages,
        )
    check_limits(app.settings, [m.content for m in body.messages], body.options)
    model = app.registry.for_task("chat", body.model)
    call = call_context(request, model, body.options.timeout_ms)
    options = generation_options(body.options)
    messages = [Message(m.role, m.content) for m in body.messages]
    if body.stream:
        deltas = await model.stream_chat(messages, options, call)
        return sse(request, _events(deltas, model.name))
    result = await until_done_or_disconnect(request, model.chat(messages, options, call))
    return ChatResponse(
        model=model.name,
        message=AssistantMessage(content=result.text.strip()),
        usage=usage(result),
    )


async def _events(deltas: AsyncIterator[TextDelta], model: str) -> AsyncIterator[SseEvent]:
    """Deltas ``{"delta": str}``, then the full answer with usage, then [DONE]."""
    text = ""
    async for piece in deltas:
        if piece.text:
            delta = piece.text.lstrip() if not text else piece.text
            text += delta
            if delta:
                yield {"delta": delta}
        if piece.result is not None:
            yield {
                "done": True,
                "model": model,
                "message": {"role": "assistant", "content": text.strip()},
                "usage": usage(piece.result).model_dump(),
            }
    yield DONE
