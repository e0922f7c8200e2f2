"""Deadline-aware admission and due-time order (hardening round 2, finding 1): past its
capacity the engine admits only what it can finish before the deadline, refuses the rest
at once with a Retry-After, and lets every admitted request finish instead of every queued
request finishing late together."""

from __future__ import annotations

import asyncio

import pytest

from service.engine import (
    CallContext,
    DeadlineExceededError,
    Engine,
    EngineConfig,
    GenerationOptions,
    ModelService,
    QueueFullError,
)
from tests.support.fake_runtime import FakeRuntime

# timing: each test measures the engine's service rate, then relies on it holding for the
# rest of the test, so make test runs them alone, after the parallel run.
pytestmark = pytest.mark.timing

PARAGRAPH = [f"sentence {i}" for i in range(6)]
OPTIONS = GenerationOptions(max_new_tokens=8)


def _service(runtime: FakeRuntime, **config: object) -> ModelService:
    engine = Engine(runtime, EngineConfig(**config))  # type: ignore[arg-type]
    return ModelService(runtime.manifest.name, runtime, engine)


async def _measure_rate(model: ModelService) -> float:
    """Run closed-loop work until the engine has measured its service rate."""
    scheduler = model.engine._scheduler
    while scheduler.rate.per_second is None:
        await asyncio.gather(
            *(model.summarize(PARAGRAPH, OPTIONS, CallContext()) for _ in range(8))
        )
    return scheduler.rate.per_second


@pytest.mark.parametrize("mode", ["dynamic", "continuous"])
async def test_past_capacity_admitted_requests_finish_and_the_rest_are_refused_at_once(
    mode: str,
) -> None:
    # 200 six-sentence paragraphs at once with a 1 s deadline, where the engine finishes
    # ~15 a second: round-robin turns and deadline-blind admission made nearly all of
    # them time out together (the finding: 1 x 200, 199 x 504).
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.004)
    model = _service(runtime, mode=mode, max_batch_size=4, max_wait_ms=0)
    await model.start()
    try:
        await _measure_rate(model)

        async def one() -> str:
            try:
                texts = await model.summarize(
                    PARAGRAPH, OPTIONS, CallContext.starting_now(timeout_ms=1000)
                )
            except QueueFullError as exc:
                assert exc.retry_after_s >= 1
                assert "overloaded" in str(exc) or "queue full" in str(exc)
                return "refused"
            except DeadlineExceededError:
                return "timed out"
            assert len(texts) == 6 and all(t.texts[0] for t in texts)
            return "done"

        outcomes = await asyncio.gather(*(one() for _ in range(200)))
    finally:
        await model.stop(5)
    counts = {k: outcomes.count(k) for k in ("done", "refused", "timed out")}
    assert counts["timed out"] == 0, counts
    assert counts["refused"] > 0, counts
    assert counts["done"] >= 5, counts  # goodput: a second's worth, not one request


async def test_a_refusal_for_the_deadline_comes_before_any_work() -> None:
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.004)
    model = _service(runtime, mode="dynamic", max_batch_size=4, max_wait_ms=0)
    await model.start()
    try:
        rate = await _measure_rate(model)
        scheduler = model.engine._scheduler
        # A backlog of ~2 s of work, then a request that must be done within 1 s.
        backlog = [
            asyncio.ensure_future(model.summarize(PARAGRAPH, OPTIONS, CallContext()))
            for _ in range(int(2 * rate / 100) + 1)
        ]
        for _ in range(100):  # until they are admitted with their real cost
            await asyncio.sleep(0.002)
            if scheduler.backlog > 1.5 * rate:
                break
        assert scheduler.backlog > 1.5 * rate  # more than a second's work admitted
        encoded = len(runtime.encoded)
        with pytest.raises(QueueFullError) as info:
            await model.summarize(PARAGRAPH, OPTIONS, CallContext.starting_now(timeout_ms=1000))
        assert len(runtime.encoded) == encoded  # refused before its text was tokenized
        assert info.value.retry_after_s >= 1
        # The same request with time to spare is admitted behind the backlog.
        texts = await model.summarize(
            PARAGRAPH, OPTIONS, CallContext.starting_now(timeout_ms=60_000)
        )
        assert len(texts) == 6
        await asyncio.gather(*backlog)
    finally:
        await model.stop(5)


async def test_a_deadline_too_short_even_alone_fails_at_once_not_with_a_429() -> None:
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.004)
    model = _service(runtime, mode="dynamic", max_batch_size=4, max_wait_ms=0)
    await model.start()
    try:
        rate = await _measure_rate(model)
        texts = [f"sentence {i}" for i in range(60)]  # ~1,000 units: seconds of work
        started = asyncio.get_running_loop().time()
        with pytest.raises(DeadlineExceededError) as info:
            await model.summarize(texts, OPTIONS, CallContext.starting_now(timeout_ms=1))
        assert asyncio.get_running_loop().time() - started < 0.5  # refused, not run
        assert "deadline too short" in str(info.value) and rate > 0
    finally:
        await model.stop(5)
