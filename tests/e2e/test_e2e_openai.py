"""The OpenAI-compatible API through the real `openai` Python SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

pytestmark = pytest.mark.slow

MESSAGES: list[Any] = [
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi, how are you?"},
    {"role": "user", "content": "I am fine, I went to the park today."},
]


def _client(server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-needed", max_retries=0)


def test_models_list(server: Any) -> None:
    ids = {m.id for m in _client(server).models.list()}
    assert ids == {"tiny-blenderbot"}  # the chat models: the ones the route serves


def test_chat_completion_and_stream_agree(server: Any) -> None:
    client = _client(server)
    done = client.chat.completions.create(model="tiny-blenderbot", messages=MESSAGES, max_tokens=12)
    choice = done.choices[0]
    assert done.object == "chat.completion" and done.model == "tiny-blenderbot"
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert done.usage is not None and done.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model="tiny-blenderbot",
        messages=MESSAGES,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == choice.message.content
    assert finish == choice.finish_reason
    assert usage is not None and usage.total_tokens == done.usage.total_tokens


def test_n_seed_and_stop(server: Any) -> None:
    client = _client(server)
    two = client.chat.completions.create(
        model="tiny-blenderbot", messages=MESSAGES, max_tokens=8, n=2
    )
    assert [c.index for c in two.choices] == [0, 1]
    sampled = [
        client.chat.completions.create(
            model="tiny-blenderbot", messages=MESSAGES, max_tokens=8, temperature=0.9, seed=7
        )
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1], "the same seed gives the same sample"
    full = (
        client.chat.completions.create(model="tiny-blenderbot", messages=MESSAGES, max_tokens=12)
        .choices[0]
        .message.content
        or ""
    )
    if len(full) > 3:
        stop = full[2:4]
        cut = client.chat.completions.create(
            model="tiny-blenderbot", messages=MESSAGES, max_tokens=12, stop=[stop]
        ).choices[0]
        assert cut.message.content == full[: full.find(stop)]
        assert cut.finish_reason == "stop"


def test_errors_surface_as_sdk_exceptions(server: Any) -> None:
    client = _client(server)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MESSAGES)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="tiny-blenderbot", messages=MESSAGES, n=99)
    for model in ("tiny-marian", "tiny-bart"):  # issue 39, finding 5: no chat model
        with pytest.raises(openai.UnprocessableEntityError, match="not chat"):
            client.chat.completions.create(model=model, messages=MESSAGES)
        with pytest.raises(openai.UnprocessableEntityError, match="not chat"):
            client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
