"""OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models``.

Mapping: ``max_tokens``/``max_completion_tokens`` -> max_new_tokens; ``temperature`` 0 is
greedy, > 0 samples; ``n`` > 1 returns n sequences (sampled, or the n best beams when not
sampling); ``stop`` strings cut the text (applied to the decoded text, also while
streaming); ``seed`` seeds sampling. Chat packages get the whole conversation, other
packages the last user message.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request

from service.api.conversation import encode_chat
from service.api.errors import ApiError, too_large
from service.api.generation import (
    Prepared,
    complete,
    decode,
    finish_reason,
    resolve,
    stream_in_order,
)
from service.api.schemas import ChatCompletionRequest
from service.api.sse import DONE, sse
from service.text.chat import Message

router = APIRouter(tags=["openai"])


@router.get("/v1/models")
async def list_models(request: Request) -> dict[str, Any]:
    """Every ready model, in OpenAI's list format."""
    entries = request.app.state.registry.entries.values()
    return {
        "object": "list",
        "data": [
            {"id": e.name, "object": "model", "created": 0, "owned_by": "seq2seq-serve"}
            for e in entries
            if e.state == "ready"
        ],
    }


def _fields(body: ChatCompletionRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens is not None:
        fields["max_new_tokens"] = max_tokens
    sampling = body.temperature is not None and body.temperature > 0
    if body.temperature is not None:
        fields["do_sample"] = sampling
    if sampling:
        fields["temperature"] = body.temperature
        if body.top_p is not None:
            fields["top_p"] = body.top_p
    if body.seed is not None:
        fields["seed"] = body.seed
    if body.n > 1:
        fields["num_return_sequences"] = body.n
        if not sampling:
            fields["num_beams"] = body.n
    return fields


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    """Text up to the first stop string, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    """An OpenAI chat completion (or a stream of chunks ending with ``data: [DONE]``)."""
    app = request.app.state
    settings = app.settings
    if len(body.messages) > settings.max_messages:
        raise too_large(f"{len(body.messages)} messages; at most {settings.max_messages}")
    longest = max(len(m.text()) for m in body.messages)
    if longest > settings.max_chars:
        raise too_large(f"a message has {longest} characters; at most {settings.max_chars}")
    fields = _fields(body)
    if fields.get("max_new_tokens", 0) > settings.max_new_tokens_cap:
        raise too_large(f"max_tokens is over the cap {settings.max_new_tokens_cap}")
    if body.stream and body.n > 1:
        raise ApiError(422, "validation_error", "streaming supports n=1 only")
    messages = [
        Message("system" if m.role == "developer" else m.role, m.text()) for m in body.messages
    ]
    if not any(m.role == "user" for m in messages):
        raise ApiError(422, "validation_error", "messages need at least one user message")
    entry = app.registry.get(body.model)
    request.state.model = entry.name
    resolved = resolve(entry, fields)
    ids = await encode_chat(entry, messages)
    prepared = Prepared(entry, [ids], resolved, None, getattr(request.state, "request_id", ""))
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    stops = body.stop_list()
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return sse(request, _stream(prepared, completion_id, created, stops, include_usage))
    (result,) = await complete(request, prepared)
    choices = []
    for index, sequence in enumerate(result.sequences):
        text, stopped = _cut(decode(entry, sequence).strip(), stops)
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop" if stopped else finish_reason(prepared, sequence),
                "logprobs": None,
            }
        )
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": entry.name,
        "choices": choices,
        "usage": {
            "prompt_tokens": result.input_tokens,
            "completion_tokens": result.generated_tokens,
            "total_tokens": result.input_tokens + result.generated_tokens,
        },
    }


async def _stream(
    prepared: Prepared, completion_id: str, created: int, stops: list[str], include_usage: bool
) -> AsyncIterator[dict[str, Any] | str]:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": prepared.entry.name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    yield chunk({"role": "assistant", "content": ""}, None)
    # Hold back the text that could still turn out to be the start of a stop string.
    hold = max((len(s) for s in stops), default=1) - 1
    text = ""
    sent = 0
    finish = "stop"
    usage: dict[str, int] | None = None
    async with contextlib.aclosing(stream_in_order(prepared)) as pieces:
        async for piece in pieces:
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
                finish = (
                    finish_reason(prepared, result.sequences[0]) if result.sequences else "stop"
                )
                usage = {
                    "prompt_tokens": result.input_tokens,
                    "completion_tokens": result.generated_tokens,
                    "total_tokens": result.input_tokens + result.generated_tokens,
                }
    yield chunk({}, finish)
    if include_usage:
        tail = chunk({}, None)
        tail["choices"] = []
        tail["usage"] = usage or {
            "prompt_tokens": len(prepared.ids[0]),
            "completion_tokens": 0,
            "total_tokens": len(prepared.ids[0]),
        }
        yield tail
    yield DONE
