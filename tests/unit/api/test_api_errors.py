"""Every error path of the HTTP API against fake runtimes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from api_helpers import client_for, fake_runtimes, sse_events, wait_until

from tests.support.fake_runtime import FakeRuntime, expected

T = {"source_lang": "en", "target_lang": "de"}


def _err(r: Any) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}, body
    assert {"type", "message"} <= set(body["error"])
    return dict(body["error"])


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"text": "", **T}, "text"),
        ({"text": ["ok", "  "], **T}, "text"),
        ({"text": [], **T}, "text"),
        ({"text": "x", "source_lang": "e n", "target_lang": "de"}, "source_lang"),
        ({"text": "x", **T, "options": {"num_beams": 0}}, "options.num_beams"),
        ({"text": "x", **T, "options": {"top_p": 1.5}}, "options.top_p"),
        ({"text": "x", **T, "options": {"beams": 2}}, "options.beams"),
        ({"text": "x", **T, "options": {"min_new_tokens": 5, "max_new_tokens": 2}}, "options"),
    ],
)
async def test_validation_errors_are_422(
    tmp_path: Path, payload: dict[str, Any], field: str
) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post("/translate", json=payload)
    assert r.status_code == 422
    error = _err(r)
    assert error["type"] == "validation_error"
    assert any(d["field"].startswith(field) for d in error["details"]), error


async def test_unknown_pair_is_422_and_names_the_pairs(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post(
            "/translate", json={"text": "x", "source_lang": "en", "target_lang": "fr"}
        )
    assert r.status_code == 422
    assert _err(r)["type"] == "unsupported_language_pair" and _err(r)["pairs"] == ["en->de"]


async def test_unknown_model_404_and_wrong_task_422(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        missing = await client.post("/summarize", json={"text": "x", "model": "nope"})
        wrong = await client.post("/summarize", json={"text": "x", "model": "fake-mt"})
        openai = await client.post(
            "/v1/chat/completions",
            json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
        )
        route = await client.get("/nowhere")
    assert missing.status_code == 404 and _err(missing)["type"] == "model_not_found"
    assert "fake-sum" in _err(missing)["available"]
    assert wrong.status_code == 422 and _err(wrong)["type"] == "wrong_task"
    assert openai.status_code == 404
    assert route.status_code == 404 and _err(route)["type"] == "not_found"


async def test_limits_are_413(tmp_path: Path) -> None:
    async with client_for(
        tmp_path, max_texts=2, max_chars=50, max_new_tokens_cap=10, max_body_bytes=2048
    ) as client:
        many = await client.post("/translate", json={"text": ["a", "b", "c"], **T})
        chars = await client.post("/translate", json={"text": "a" * 51, **T})
        cap = await client.post(
            "/translate", json={"text": "a", **T, "options": {"max_new_tokens": 11}}
        )
        body = await client.post("/translate", json={"text": "a" * 3000, **T})
        metrics = (await client.get("/metrics")).text
    for r in (many, chars, cap, body):
        assert r.status_code == 413, r.text
        assert _err(r)["type"] == "too_large"
    assert _err(many)["limit"] == 2 and _err(cap)["limit"] == 10
    assert 's2s_rejections_total{model="",reason="too_large"} 4.0' in metrics


async def test_summarize_over_the_window_summarizes_in_chunks(tmp_path: Path) -> None:
    # Issue 35: a dialogue longer than the model's window (64 tokens here) was a 413; now
    # its turns are summarized in chunks that fit and the chunk summaries are joined.
    runtimes = fake_runtimes()
    dialogue = "\n".join(f"Anna: turn {i} of a long chat about the trip." for i in range(12))
    async with client_for(tmp_path, runtimes) as client:
        plain = await client.post("/summarize", json={"text": dialogue})
        streamed = await client.post("/summarize", json={"text": dialogue, "stream": True})
    assert plain.status_code == 200, plain.text
    (summary,) = plain.json()["summaries"]
    runtime = runtimes["fake-sum"]
    parts = [runtime.decode(expected(ids, runtime.resolve())[0]) for ids in _chunk_ids(dialogue)]
    assert len(parts) > 1 and summary == " ".join(parts)
    events = sse_events(streamed.text)
    assert "".join(e["delta"] for e in events if isinstance(e, dict) and "delta" in e) == summary


def _chunk_ids(dialogue: str) -> list[list[int]]:
    """The fake's ids of each chunk the service cuts ``dialogue`` into."""
    from service.text import chunks

    runtime = FakeRuntime("fake-sum", "summarization")
    parts = chunks.split(dialogue, runtime.token_counts, 64)
    return runtime.encode_texts(parts)


async def test_a_chat_message_over_the_window_is_413_naming_the_limit(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post("/chat", json={"messages": [{"role": "user", "content": "w" * 90}]})
    assert r.status_code == 413
    error = _err(r)
    assert error["limit_tokens"] == 64 and "at most 64" in error["message"]


async def test_wrong_content_type_is_415(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post(
            "/translate",
            content=b"text=hi",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert r.status_code == 415 and _err(r)["type"] == "unsupported_media_type"


async def test_malformed_json_is_422(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post(
            "/translate", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert r.status_code == 422


async def test_runtime_failure_fails_only_that_request(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        bad, good = await asyncio.gather(
            client.post("/summarize", json={"text": "bad ☠ input"}),
            client.post("/summarize", json={"text": "fine input"}),
        )
        after = await client.post("/summarize", json={"text": "fine input"})
    assert bad.status_code == 422 and _err(bad)["type"] == "invalid_request"
    assert good.status_code == 200 and after.json() == good.json()


async def test_queue_full_is_429_with_retry_after(tmp_path: Path) -> None:
    runtimes = {"fake-sum": FakeRuntime("fake-sum", "summarization", step_delay_s=0.05)}
    async with client_for(
        tmp_path, runtimes, max_queue=1, max_batch_size=1, max_wait_ms=0
    ) as client:
        payload = {"text": "OOO", "options": {"max_new_tokens": 4}}
        results = await asyncio.gather(*(client.post("/summarize", json=payload) for _ in range(5)))
        metrics = (await client.get("/metrics")).text
    codes = sorted(r.status_code for r in results)
    assert 200 in codes and 429 in codes, codes
    rejected = next(r for r in results if r.status_code == 429)
    assert int(rejected.headers["retry-after"]) >= 1 and _err(rejected)["type"] == "queue_full"
    assert 's2s_rejections_total{model="fake-sum",reason="queue_full"}' in metrics


async def test_deadline_is_504(tmp_path: Path) -> None:
    runtimes = {"fake-sum": FakeRuntime("fake-sum", "summarization", step_delay_s=0.05)}
    async with client_for(tmp_path, runtimes) as client:
        r = await client.post(
            "/summarize", json={"text": "OOO", "options": {"max_new_tokens": 40, "timeout_ms": 100}}
        )
        ok = await client.post("/summarize", json={"text": "ab"})
        metrics = (await client.get("/metrics")).text
    assert r.status_code == 504 and _err(r)["type"] == "timeout"
    assert ok.status_code == 200
    assert 's2s_rejections_total{model="fake-sum",reason="timeout"} 1.0' in metrics


async def test_server_default_timeout_applies(tmp_path: Path) -> None:
    runtimes = {"fake-sum": FakeRuntime("fake-sum", "summarization", step_delay_s=0.05)}
    async with client_for(tmp_path, runtimes, default_timeout_ms=100) as client:
        r = await client.post("/summarize", json={"text": "OOO", "options": {"max_new_tokens": 40}})
    assert r.status_code == 504


async def test_api_keys(tmp_path: Path) -> None:
    async with client_for(tmp_path, api_keys=["secret-key-1"]) as client:
        none = await client.post("/summarize", json={"text": "x"})
        wrong = await client.post(
            "/summarize", json={"text": "x"}, headers={"Authorization": "Bearer nope-nope"}
        )
        right = await client.post(
            "/summarize", json={"text": "x"}, headers={"Authorization": "Bearer secret-key-1"}
        )
        models = await client.get("/models")
        open_paths = [await client.get(p) for p in ("/health", "/ready", "/metrics")]
    assert none.status_code == wrong.status_code == models.status_code == 401
    assert none.headers["www-authenticate"] == "Bearer" and _err(none)["type"] == "unauthorized"
    assert right.status_code == 200
    assert [r.status_code for r in open_paths] == [200, 200, 200]


async def test_cors(tmp_path: Path) -> None:
    async with client_for(tmp_path, cors_origins=["https://app.example"]) as client:
        r = await client.options(
            "/translate",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        other = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in other.headers


async def test_not_ready_while_loading_and_failed_model(tmp_path: Path) -> None:
    from service.api import create_app
    from service.settings import Settings

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{}")
    app = create_app(Settings(models_dir=tmp_path))
    import httpx
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app) as manager:
        await app.state.registry.wait_loaded()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/ready")
            models = (await client.get("/models")).json()["models"]
            r = await client.post("/summarize", json={"text": "x", "model": "broken"})
    assert ready.status_code == 503 and ready.json()["models"]["broken"]["state"] == "failed"
    assert models[0]["state"] == "failed" and "format_version" in models[0]["reason"]
    assert r.status_code == 503 and _err(r)["type"] == "model_failed"


async def test_draining_refuses_new_work_and_ready_turns_503(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        client.app.state.drain.begin()  # type: ignore[attr-defined]
        ready = await client.get("/ready")
        work = await client.post("/summarize", json={"text": "x"})
        health = await client.get("/health")
    assert ready.status_code == 503 and ready.json()["draining"] is True
    assert work.status_code == 503 and _err(work)["type"] == "draining"
    assert health.status_code == 200


async def test_client_disconnect_cancels_the_generation(tmp_path: Path) -> None:
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.03)
    # Continuous: only the step API can remove a running generation.
    async with client_for(tmp_path, {"fake-sum": runtime}, batch_mode="continuous") as client:
        engine = client.app.state.registry.entries["fake-sum"].service.engine  # type: ignore[attr-defined]
        task = asyncio.create_task(
            client.post("/summarize", json={"text": "OOO", "options": {"max_new_tokens": 200}})
        )
        assert await wait_until(lambda: engine.status()["in_flight"] == 1)
        task.cancel()  # httpx's ASGI transport delivers http.disconnect to the app
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_until(lambda: engine.status()["active"] == 0)
    assert runtime.removed, "the generation was removed from the running batch"


async def test_texts_are_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = "my private document about Xylophones"
    caplog.set_level(logging.DEBUG)
    async with client_for(tmp_path) as client:
        await client.post("/summarize", json={"text": secret})
        await client.post("/summarize", json={"text": secret, "options": {"num_beams": 99}})
        await client.post("/summarize", json={"text": secret + " ☠"})
    assert caplog.records, "requests are logged"
    assert all(
        "Xylophones" not in r.getMessage() and "Xylophones" not in str(vars(r))
        for r in caplog.records
    )
    assert any(getattr(r, "route", None) == "/summarize" for r in caplog.records)


def test_unused_fakes_helper() -> None:
    assert set(fake_runtimes()) == {"fake-mt", "fake-sum", "fake-chat"}
