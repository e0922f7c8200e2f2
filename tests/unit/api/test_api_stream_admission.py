"""A stream is admitted or refused before its 200 goes out (issue 39, finding 2): a full
queue is a 429 with Retry-After on every streaming route, never a 200 whose stream then
carries a ``queue_full`` error."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest
from api_helpers import client_for, sse_events, wait_until

from service.engine import CallContext, Engine, GenerationOptions, QueueFullError
from service.text.chat import Message
from tests.support.fake_runtime import FakeRuntime

PAYLOADS: dict[str, dict[str, Any]] = {
    "/translate": {"text": "ABC.", "source_lang": "en", "target_lang": "de"},
    "/summarize": {"text": "ABC"},
    "/chat": {"messages": [{"role": "user", "content": "ABC"}]},
    "/v1/chat/completions": {
        "model": "fake-chat",
        "messages": [{"role": "user", "content": "ABC"}],
    },
}


def _slow() -> dict[str, FakeRuntime]:
    return {
        name: FakeRuntime(name, task, step_delay_s=0.02)
        for name, task in (
            ("fake-mt", "translation"),
            ("fake-sum", "summarization"),
            ("fake-chat", "chat"),
        )
    }


def _has_room(engine: Engine) -> bool:
    try:
        engine.check_room()
    except QueueFullError:
        return False
    return True


@pytest.mark.parametrize("path", list(PAYLOADS))
async def test_a_full_queue_refuses_streams_with_429_before_the_response(
    tmp_path: Path, path: str
) -> None:
    payload = {**PAYLOADS[path], "stream": True}
    async with client_for(tmp_path, _slow(), max_queue=2, max_wait_ms=0) as client:
        results = await asyncio.gather(*(client.post(path, json=payload) for _ in range(12)))
    codes = sorted(r.status_code for r in results)
    assert 200 in codes and 429 in codes, codes
    for r in results:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            body = r.json()
            assert body["error"]["type"] == "queue_full", body
        else:
            events = sse_events(r.text)
            assert events[-1] == "[DONE]", events
            assert not any(isinstance(e, dict) and "error" in e for e in events), events


async def test_an_admitted_stream_dropped_unread_frees_its_place(tmp_path: Path) -> None:
    # The stream reserves its place before the response starts; a response that never
    # starts (the client left at once) must not keep the place.
    async with client_for(tmp_path, _slow(), max_queue=1) as client:
        model = client.app.state.registry.get("fake-chat")  # type: ignore[attr-defined]
        call = CallContext.starting_now(5000)
        messages = [Message("user", "ABC")]
        deltas = await model.stream_chat(messages, GenerationOptions(), call)
        with pytest.raises(QueueFullError):
            await model.stream_chat(messages, GenerationOptions(), call)
        del deltas
        gc.collect()
        assert await wait_until(lambda: _has_room(model.engine))
        again = await model.stream_chat(messages, GenerationOptions(), call)
        pieces = [d async for d in again]
    assert pieces and pieces[-1].result is not None
