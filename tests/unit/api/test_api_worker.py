"""Through HTTP: a dead model worker is visible and fails fast; a bug is a 500, never a 4xx."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from api_helpers import client_for, sse_events, wait_until

from service.engine.scheduler import Scheduler
from service.engine.service import ModelService
from tests.support.fake_runtime import FakeRuntime


async def test_dead_worker_makes_the_model_unready_and_requests_fail_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = FakeRuntime("fake-sum", "summarization")
    async with client_for(
        tmp_path,
        {"fake-sum": runtime},
        worker_restart_delay_s=0.3,
        default_timeout_ms=30_000,
        batch_mode="continuous",  # the fault is injected in the continuous loop's _deliver
    ) as client:

        def broken(self: Scheduler, *args: object) -> None:
            raise RuntimeError("injected fault")

        # A fault outside the guarded step whose recovery fails too: the worker dies.
        monkeypatch.setattr(Scheduler, "_deliver", broken)
        monkeypatch.setattr(Scheduler, "_recover_iteration", broken)
        started = time.monotonic()
        first = await client.post("/summarize", json={"text": "x"})
        elapsed = time.monotonic() - started
        ready = await client.get("/ready")
        later = await client.post("/summarize", json={"text": "x"})
        metrics = (await client.get("/metrics")).text
        monkeypatch.undo()
        engine = client.app.state.registry.entries["fake-sum"].service.engine  # type: ignore[attr-defined]
        assert await wait_until(lambda: engine.state == "running", timeout=3)
        healed = await client.post("/summarize", json={"text": "x"})
        ready_again = await client.get("/ready")
    assert first.status_code == 503 and first.json()["error"]["type"] == "model_failed"
    assert elapsed < 2, "failed at once, not at its deadline"
    assert ready.status_code == 503
    assert ready.json()["models"]["fake-sum"]["state"] == "failed"
    assert "worker died" in ready.json()["models"]["fake-sum"]["reason"]
    assert later.status_code == 503 and later.json()["error"]["type"] == "model_failed"
    assert 's2s_model_ready{model="fake-sum"} 0.0' in metrics
    assert healed.status_code == 200 and ready_again.status_code == 200


async def test_an_unexpected_exception_is_a_500_with_the_request_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = FakeRuntime("fake-sum", "summarization")

    def broken(*args: object, **kwargs: object) -> list[list[int]]:
        raise ValueError("a bug, not the client's input")

    async with client_for(tmp_path, {"fake-sum": runtime}, warmup=False) as client:
        monkeypatch.setattr(runtime, "encode_texts", broken)
        plain = await client.post("/summarize", json={"text": "x"}, headers={"X-Request-ID": "r-1"})
        early = await client.post(
            "/summarize", json={"text": "x", "stream": True}, headers={"X-Request-ID": "r-2"}
        )
        monkeypatch.undo()
        # Fails once streaming: when the result arrives (the detokenizer is made at
        # admission, before the response starts, so breaking it fails early).
        monkeypatch.setattr(ModelService, "_streamed", staticmethod(broken))
        late = await client.post(
            "/summarize", json={"text": "x", "stream": True}, headers={"X-Request-ID": "r-3"}
        )
    for r, rid in ((plain, "r-1"), (early, "r-2")):
        assert r.status_code == 500 and r.headers["x-request-id"] == rid
        assert r.json()["error"] == {
            "type": "internal_error",
            "message": "internal error",
            "request_id": rid,
        }
    events = sse_events(late.text)
    assert events[-1]["error"]["type"] == "internal_error"
    assert events[-1]["error"]["request_id"] == "r-3"
    assert len([r for r in caplog.records if r.exc_info]) >= 3, "each traceback is logged"


async def test_a_stream_whose_input_is_refused_is_a_plain_http_error(tmp_path: Path) -> None:
    async with client_for(tmp_path) as client:
        r = await client.post(
            "/chat", json={"messages": [{"role": "user", "content": "w" * 90}], "stream": True}
        )
        pair = await client.post(
            "/translate",
            json={"text": "x", "source_lang": "en", "target_lang": "fr", "stream": True},
        )
    assert r.status_code == 413 and r.json()["error"]["limit_tokens"] == 64
    assert pair.status_code == 422
