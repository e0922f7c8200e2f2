"""OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models``.

Mapping: ``max_tokens``/``max_completion_tokens`` -> max_new_tokens; ``temperature`` 0 is
greedy, > 0 samples; ``n`` > 1 returns n sequences (sampled, or the n best beams when not
sampling); ``stop`` strings cut the text (applied to the decoded text, also while
streaming); ``seed`` seeds sampling. Only chat packages are served here (and listed by
``/v1/models``): another package is refused like on ``/chat`` (422 ``wrong_task``).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from service.api.calls import call_context, until_done_or_disconnect
from service.api.errors import ApiError, too_large
from service.api.options import openai_options
from service.api.schemas import TASK_RESPONSES, ChatCompletionRequest
from service.api.sse import DONE, SseEvent, sse
from service.engine import TextDelta, TextResult
from service.text.chat import Message

router = APIRouter(tags=["openai"])

# The model service's finish reasons in OpenAI's words ("stop" also for stop strings).
OPENAI_FINISH = {"eos": "stop", "length": "length"}


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    """Every ready chat model (the models this API serves), in OpenAI's list format."""
    entries = request.app.state.registry.entries.values()
    return {
        "object": "list",
        "data": [
            {"id": e.name, "object": "model", "created": 0, "owned_by": "seq2seq-serve"}
            for e in entries
            if e.state == "ready" and e.task == "chat"
        ],
    }


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text up to the first stop string, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


def _usage(result: TextResult | None, prompt_tokens: int = 0) -> dict[str, int]:
    if result is None:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 0,
            "total_tokens": prompt_tokens,
        }
    return {
        "prompt_tokens": result.input_tokens,
        "completion_tokens": result.generated_tokens,
        "total_tokens": result.input_tokens + result.generated_tokens,
    }


@router.post("/v1/chat/completions", responses=TASK_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    """An OpenAI chat completion (or a stream of chunks ending with ``data: [DONE]``)."""
    app = request.app.state
    settings = app.settings
    if len(body.messages) > settings.max_messages:
        raise too_large(f"{len(body.messages)} messages; at most {settings.max_messages}")
    longest = max(len(m.text()) for m in body.messages)
    if longest > settings.max_chars:
        raise too_large(f"a message has {longest} characters; at most {settings.max_chars}")
    options = openai_options(body)
    if (options.max_new_tokens or 0) > settings.max_new_tokens_cap:
        raise too_large(f"max_tokens is over the cap {settings.max_new_tokens_cap}")
    if body.stream and body.n > 1:
        raise ApiError(422, "validation_error", "streaming supports n=1 only")
    messages = [
        Message("system" if m.role == "developer" else m.role, m.text()) for m in body.messages
    ]
    if not any(m.role == "user" for m in messages):
        raise ApiError(422, "validation_error", "messages need at least one user message")
    model = app.registry.for_task("chat", body.model)
    call = call_context(request, model, None)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    stops = body.stop_list()
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _Chunks(completion_id, created, model.name)
        deltas = await model.stream_chat(messages, options, call)
        return sse(request, _stream(deltas, chunks, stops, include_usage))
    result = await until_done_or_disconnect(request, model.chat(messages, options, call))
    choices = []
    for index, (raw, reason) in enumerate(zip(result.texts, result.finish_reasons, strict=True)):
        text, stopped = _cut(raw.strip(), stops)
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop" if stopped else OPENAI_FINISH[reason],
                "logprobs": None,
            }
        )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model.name,
        "choices": choices,
        "usage": _usage(result),
    }


class _Chunks:
    """Builds the ``chat.completion.chunk`` objects of one completion."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self.completion_id = completion_id
        self.created = created
        self.model = model

    def __call__(self, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
        return {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }


async def _stream(
    deltas: AsyncGenerator[TextDelta, None], chunk: _Chunks, stops: list[str], include_usage: bool
) -> AsyncIterator[SseEvent]:
    yield chunk({"role": "assistant", "content": ""}, None)
    # Hold back the text that could still turn out to be the start of a stop string.
    hold = max((len(s) for s in stops), default=1) - 1
    text = ""
    sent = 0
    finish = "stop"
    result: TextResult | None = None
    prompt_tokens = 0
    async with contextlib.aclosing(deltas) as pieces:
        async for piece in pieces:
            prompt_tokens = piece.input_tokens
            text = (text + piece.text).lstrip()
            cut, stopped = _cut(text, stops)
            if stopped:
                # Closing the stream cancels the rest of the generation.
                if len(cut) > sent:
                    yield chunk({"content": cut[sent:]}, None)
                break
            safe = len(text) - hold if piece.result is None else len(text)
            if safe > sent:
                yield chunk({"content": text[sent:safe]}, None)
                sent = safe
            if piece.result is not None:
                result = piece.result
                finish = OPENAI_FINISH[result.finish_reason]
    yield chunk({}, finish)
    if include_usage:
        tail = chunk({}, None)
        tail["choices"] = []
        tail["usage"] = _usage(result, prompt_tokens)
        yield tail
    yield DONE
