"""Load generator logic against an in-process fake server (no sockets, no model)."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from bench.load import (
    LevelResult,
    _parser,
    batch_mode,
    check_loopback,
    paired_overhead,
    percentile,
    run_level,
    server_command,
    single_sentences,
)


def test_percentile_interpolates() -> None:
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([5], 99) == 5
    assert percentile([3, 1, 2], 100) == 3
    assert percentile([], 50) != percentile([], 50)  # NaN


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000/x", "https://example.com/translate"])
def test_only_loopback_targets(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        check_loopback(url)


def test_loopback_accepted() -> None:
    assert check_loopback("http://127.0.0.1:9/translate").endswith("/translate")
    assert check_loopback("http://localhost:9/")


def _app(fail_every: int) -> FastAPI:
    app = FastAPI()
    seen = {"n": 0}

    @app.post("/translate")
    async def translate(body: dict[str, object]) -> JSONResponse:
        seen["n"] += 1
        if seen["n"] % fail_every == 0:
            return JSONResponse({"error": "busy"}, status_code=429)
        return JSONResponse({"translations": [str(body["text"])]})

    return app


async def _level(max_requests: int, duration_s: float, fail_every: int = 10**9) -> LevelResult:
    transport = httpx.ASGITransport(app=_app(fail_every))
    async with httpx.AsyncClient(transport=transport) as client:
        return await run_level(
            client,
            "http://127.0.0.1/translate",
            [{"text": "a"}, {"text": "b"}],
            concurrency=4,
            duration_s=duration_s,
            max_requests=max_requests,
            tokens_per_request=7,
        )


async def test_run_level_stops_at_the_request_count() -> None:
    result = await _level(max_requests=20, duration_s=30)
    assert result.requests == 20 and result.errors == 0 and result.unfinished == 0
    assert result.tokens_per_s == pytest.approx(20 * 7 / result.elapsed_s)
    assert result.p50_ms <= result.p95_ms <= result.p99_ms


async def test_run_level_counts_errors_separately() -> None:
    result = await _level(max_requests=20, duration_s=30, fail_every=4)
    assert result.requests == 15 and result.errors == 5
    assert result.error_sample.startswith("HTTP 429")


async def test_run_level_stops_at_the_deadline() -> None:
    started = time.perf_counter()
    result = await _level(max_requests=10**9, duration_s=0.3)
    assert time.perf_counter() - started < 5
    assert result.requests > 0 and result.elapsed_s >= 0.3


def test_single_sentences_are_unsplit_wmt_lines() -> None:
    from service.text import sentences

    texts = single_sentences(12)
    assert len(texts) == 12
    assert all(len(sentences.split(t, "en").sentences) == 1 for t in texts)


def _slow_app(delay_s: dict[str, float]) -> FastAPI:
    app = FastAPI()

    @app.post("/translate")
    async def translate(body: dict[str, object]) -> JSONResponse:
        time.sleep(delay_s[str(body["text"])])  # stands in for the model's work
        return JSONResponse({"translations": [str(body["text"])]})

    return app


async def test_paired_overhead_subtracts_each_sentences_own_offline_time() -> None:
    """Sentences of very different cost: the paired difference is the service's extra
    20 ms, not the spread between sentences."""
    engine_s = {"short": 0.01, "long": 0.08}
    service_s = {text: seconds + 0.02 for text, seconds in engine_s.items()}
    bodies = [{"text": "short"}, {"text": "long"}]
    calls: list[int] = []

    def offline(index: int) -> float:
        calls.append(index)
        return engine_s[str(bodies[index]["text"])]

    transport = httpx.ASGITransport(app=_slow_app(service_s))
    async with httpx.AsyncClient(transport=transport) as client:
        pair = await paired_overhead(
            client, "http://127.0.0.1/translate", bodies, offline, 2, 3, "fake"
        )
    assert calls == [0, 0, 0, 0, 1, 1, 1]  # one warm-up run, then 3 per sentence
    assert pair.sentences == 2 and pair.repeats == 3 and pair.target == "fake"
    assert 20 <= pair.added_p25_ms <= pair.added_p50_ms <= pair.added_p75_ms < 35
    assert pair.offline_p50_ms == pytest.approx(45.0)


async def test_paired_overhead_refuses_failed_requests() -> None:
    transport = httpx.ASGITransport(app=_app(fail_every=1))
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(RuntimeError, match="HTTP 429"):
            await paired_overhead(
                client, "http://127.0.0.1/translate", [{"text": "a"}], lambda i: 0.0, 1, 1
            )


@pytest.mark.parametrize("mode", ["continuous", "dynamic"])
def test_server_command_maps_targets_to_batch_modes(mode: str) -> None:
    args = _parser().parse_args(["--package", "/models/full-marian"])
    command = server_command(mode, args, 8123)
    assert command[command.index("--batch-mode") + 1] == mode
    assert command[command.index("--max-queue") + 1] == "1024"


def test_unknown_targets_are_refused() -> None:
    assert batch_mode("dynamic") == "dynamic"
    for name in ("naive", "iteration", "off", "dynamic-shared"):
        with pytest.raises(ValueError, match="unknown target"):
            batch_mode(name)
