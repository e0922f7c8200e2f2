"""Client mistakes are JSON 4xx from the error table, never a 500 or a bare status
(findings 1, 9 and 11 of the hardening issue; the real-model twins are in
tests/e2e/test_e2e_reliability.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import client_for

from service.api import create_app
from service.api.quotas import tenant_of
from service.settings import Settings
from tests.support.fake_runtime import FakeRuntime

SURROGATE = b'{"text": "\\ud800 A man.", "source_lang": "en", "target_lang": "de"}'
JSON = {"Content-Type": "application/json"}


def _err(response: Any) -> dict[str, Any]:
    body = response.json()
    assert "error" in body, body
    return dict(body["error"])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/translate", SURROGATE),
        ("/summarize", b'{"text": "\\udfff x"}'),
        ("/chat", b'{"messages": [{"role": "user", "content": "hi \\ud800"}]}'),
        (
            "/v1/chat/completions",
            b'{"model": "fake-chat", "messages": [{"role": "user", "content": "\\ud800"}]}',
        ),
        ("/translate", b'{"text": ["ok", "\\ud83d"], "source_lang": "en", "target_lang": "de"}'),
    ],
)
async def test_lone_surrogates_are_a_422_naming_the_field(
    tmp_path: Path, path: str, body: bytes
) -> None:
    # Finding 1: sentencepiece raised on a lone surrogate -> 500 and two tracebacks.
    async with client_for(tmp_path) as client:
        r = await client.post(path, content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert _err(r)["type"] == "validation_error"
    assert "surrogate" in _err(r)["message"]


async def test_a_stream_with_a_surrogate_is_a_plain_422(tmp_path: Path) -> None:
    body = SURROGATE.replace(b"}", b', "stream": true}')
    async with client_for(tmp_path) as client:
        r = await client.post("/translate", content=body, headers=JSON)
    assert r.status_code == 422 and _err(r)["type"] == "validation_error"


@pytest.mark.parametrize(
    "body",
    [
        b'{"text": "\xff\xfe A man.", "source_lang": "en", "target_lang": "de"}',  # bad UTF-8
        b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # deep nesting
        b'{"text": ' + b"[" * 100 + b'"x"' + b"]" * 100 + b"}",  # nested past the depth cap
        b'{"text": "A man.", ',  # invalid JSON (was already 422)
    ],
    ids=["invalid-utf8", "recursion", "depth", "invalid-json"],
)
async def test_unparseable_bodies_are_all_422(tmp_path: Path, body: bytes) -> None:
    # Finding 9: invalid UTF-8 and deep nesting answered 400, invalid JSON 422.
    async with client_for(tmp_path) as client:
        r = await client.post("/translate", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert _err(r)["type"] == "validation_error"


async def test_a_chunked_body_over_the_limit_is_a_413(tmp_path: Path) -> None:
    # Finding 9: no Content-Length, so only the streamed byte count can tell: was 400.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(40):
            yield b"a" * 1024
        yield b'", "source_lang": "en", "target_lang": "de"}'

    async with client_for(tmp_path, max_body_bytes=8192) as client:
        r = await client.post("/translate", content=chunks(), headers=JSON)
    assert r.status_code == 413, r.text
    assert _err(r)["type"] == "too_large" and _err(r)["limit"] == 8192


async def test_a_client_leaving_mid_body_is_counted_499(tmp_path: Path) -> None:
    # Finding 9: counted 400.
    app = create_app(
        Settings(models_dir=tmp_path),
        runtimes={"fake-sum": FakeRuntime("fake-sum", "summarization")},
    )
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"text": "abc', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/summarize",
        "raw_path": b"/summarize",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("127.0.0.1", 1),
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
    }
    await asyncio.wait_for(app(scope, receive, send), 10)  # type: ignore[arg-type]
    assert not [m for m in sent if m["type"] == "http.response.start"]
    metrics = app.state.metrics.exposition().decode()
    assert 'route="/summarize",status="499"' in metrics
    assert 'status="400"' not in metrics


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/summarize", {"text": "x", "options": {"num_beams": "4"}}),
        ("/summarize", {"text": "x", "stream": "yes"}),
        ("/summarize", {"text": "x", "options": {"do_sample": 1}}),
        ("/summarize", {"text": "x", "options": {"max_new_tokens": 5.0}}),
        ("/chat", {"messages": [{"role": "user", "content": "hi"}], "stream": "true"}),
        (
            "/v1/chat/completions",
            {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "n": "2"},
        ),
        (
            "/v1/chat/completions",
            {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}], "stream": 1},
        ),
    ],
)
async def test_no_lax_coercion(tmp_path: Path, path: str, body: dict[str, Any]) -> None:
    # Finding 11: "num_beams": "4" and "stream": "yes" were accepted.
    async with client_for(tmp_path) as client:
        r = await client.post(path, content=json.dumps(body), headers=JSON)
    assert r.status_code == 422, r.text
    assert _err(r)["type"] == "validation_error"


async def test_numbers_stay_numbers(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post(
            "/summarize", json={"text": "x", "options": {"temperature": 1, "do_sample": True}}
        )
    assert r.status_code == 200, r.text


async def test_a_trailing_slash_is_a_json_404_not_a_bodiless_307(tmp_path: Path) -> None:
    # Finding 9: /translate/ answered a bodiless 307.
    async with client_for(tmp_path) as client:
        r = await client.post(
            "/translate/", json={"text": "x", "source_lang": "en", "target_lang": "de"}
        )
    assert r.status_code == 404, r.text
    assert _err(r)["type"] == "not_found"


async def test_more_sentences_than_queue_slots_run_on_an_idle_server(tmp_path: Path) -> None:
    # Finding 3: 320 sentences > S2S_MAX_QUEUE 256 got 429 with Retry-After forever.
    texts = [" ".join(f"Sentence {i} {k} here." for k in range(5)) for i in range(64)]
    body = {"text": texts, "source_lang": "en", "target_lang": "de"}
    async with client_for(tmp_path) as client:
        r = await client.post("/translate", json={**body, "options": {"max_new_tokens": 4}})
    assert r.status_code == 200, r.text
    assert len(r.json()["translations"]) == 64


async def test_a_request_that_can_never_fit_is_a_413_naming_the_limit(tmp_path: Path) -> None:
    texts = [" ".join(f"Sentence {i} {k} here." for k in range(5)) for i in range(64)]
    body = {"text": texts, "source_lang": "en", "target_lang": "de"}
    async with client_for(tmp_path, max_request_cost=20_000, max_queue_cost=40_000) as client:
        options = {"num_beams": 4, "max_new_tokens": 32}  # 320 x (4 x 32 + ~22) units
        r = await client.post("/translate", json={**body, "options": options})
        metrics = (await client.get("/metrics")).text
    assert r.status_code == 413, r.text
    error = _err(r)
    assert error["type"] == "too_large" and error["limit"] == 20_000
    assert error["cost"] > 20_000 and "S2S_MAX_REQUEST_COST" in error["message"]
    assert "Retry-After" not in r.headers
    assert 's2s_rejections_total{model="fake-mt",reason="too_large"} 1.0' in metrics


async def test_a_rejected_request_counts_one_queue_full(tmp_path: Path) -> None:
    # Finding 10: queue_full counted sentences, and the siblings' cancellations counted
    # as client disconnects.
    runtimes = {"fake-sum": FakeRuntime("fake-sum", "summarization", step_delay_s=0.1)}
    async with client_for(tmp_path, runtimes, max_queue=1, max_wait_ms=0) as client:
        first = asyncio.ensure_future(
            client.post("/summarize", json={"text": [f"t{i}" for i in range(8)]})
        )
        await asyncio.sleep(0.1)
        second = await client.post("/summarize", json={"text": [f"u{i}" for i in range(8)]})
        assert (await first).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert second.status_code == 429 and second.headers["Retry-After"]
    assert 's2s_rejections_total{model="fake-sum",reason="queue_full"} 1.0' in metrics
    assert 'reason="cancelled"' not in metrics


async def test_per_key_rate_and_concurrency_limits(tmp_path: Path) -> None:
    keys = ["key-aaaaaaaa", "key-bbbbbbbb"]
    runtimes = {"fake-sum": FakeRuntime("fake-sum", "summarization", step_delay_s=0.02)}
    a = {"Authorization": f"Bearer {keys[0]}"}
    b = {"Authorization": f"Bearer {keys[1]}"}
    async with client_for(
        tmp_path, runtimes, api_keys=keys, key_rate_per_s=0.5, key_burst=1, key_max_concurrent=1
    ) as client:
        slow = asyncio.ensure_future(
            client.post(
                "/summarize", json={"text": "x", "options": {"max_new_tokens": 64}}, headers=a
            )
        )
        await asyncio.sleep(0.05)
        busy = await client.post("/summarize", json={"text": "x"}, headers=a)
        other = await client.post("/summarize", json={"text": "x"}, headers=b)
        assert (await slow).status_code == 200
        await asyncio.sleep(0.05)  # the middleware releases the slot after the last byte
        rate = await client.post("/summarize", json={"text": "x"}, headers=a)
        metrics = (await client.get("/metrics")).text
    assert busy.status_code == 429 and _err(busy)["type"] == "concurrency_limit"
    assert other.status_code == 200  # another key is not limited by key a
    assert rate.status_code == 429 and _err(rate)["type"] == "rate_limited"
    assert int(rate.headers["Retry-After"]) >= 1
    assert 'reason="rate_limited"' in metrics and 'reason="concurrency_limit"' in metrics
    assert keys[0] not in metrics


def test_quota_tenant_is_the_key_whichever_way_the_client_sends_it() -> None:
    keys = ["key-aaaaaaaa", "key-bbbbbbbb"]
    assert tenant_of("Bearer key-bbbbbbbb", keys) == "key2"
    # DeepL's clients send the same key as DeepL-Auth-Key: the same tenant, the same quota.
    assert tenant_of("DeepL-Auth-Key key-bbbbbbbb", keys) == "key2"
    assert tenant_of("DeepL-Auth-Key key-cccccccc", keys) == ""
    assert tenant_of("Basic key-aaaaaaaa", keys) == ""
    assert tenant_of(None, keys) == ""
