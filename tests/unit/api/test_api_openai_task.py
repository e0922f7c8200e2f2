"""/v1/chat/completions serves chat models only, like /chat (issue 39, finding 5): a
translation or summarization model is refused with /chat's 422 ``wrong_task``, in the
error object OpenAI's clients read (``error.type``, ``error.message``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_helpers import client_for

MESSAGES = [{"role": "user", "content": "Hello there"}]


@pytest.mark.parametrize("model", ["fake-mt", "fake-sum"])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_non_chat_model_is_refused_like_on_chat(
    tmp_path: Path, model: str, stream: bool
) -> None:
    async with client_for(tmp_path) as client:
        openai = await client.post(
            "/v1/chat/completions", json={"model": model, "messages": MESSAGES, "stream": stream}
        )
        native = await client.post(
            "/chat", json={"model": model, "messages": MESSAGES, "stream": stream}
        )
    assert openai.status_code == native.status_code == 422, openai.text
    error = openai.json()["error"]
    assert error["type"] == native.json()["error"]["type"] == "wrong_task"
    assert error["message"] == native.json()["error"]["message"]


async def test_v1_models_lists_the_chat_models(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        models = (await client.get("/v1/models")).json()
    assert [m["id"] for m in models["data"]] == ["fake-chat"]
