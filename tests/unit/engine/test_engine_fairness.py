"""Fair admission: a request is one admission unit with a cost; the scheduler interleaves
requests (and API keys) so a big request cannot hold the model (findings 2, 3 and 10)."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.engine import (
    CallContext,
    Engine,
    EngineConfig,
    EngineObserver,
    GenerationOptions,
    ModelService,
    QueueFullError,
    RequestTooCostlyError,
)
from service.text.chat import Message
from tests.support.fake_runtime import FakeRuntime


class _Rejections(EngineObserver):
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def on_rejection(self, reason: str) -> None:
        self.reasons.append(reason)


def _service(
    runtime: FakeRuntime, observer: EngineObserver | None = None, **config: object
) -> ModelService:
    engine = Engine(runtime, EngineConfig(**config), observer)  # type: ignore[arg-type]
    return ModelService(runtime.manifest.name, runtime, engine)


MONSTER = GenerationOptions(num_beams=4, max_new_tokens=8)
SMALL = GenerationOptions(max_new_tokens=8)


@pytest.mark.timing  # compares two latencies measured here
@pytest.mark.parametrize("mode", ["dynamic", "continuous"])
async def test_a_small_request_is_not_queued_behind_a_monster(mode: str) -> None:
    # Finding 2: each sentence was its own FIFO job, so one request with many sentences
    # held the model until all of them were done.
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.005)
    model = _service(runtime, mode=mode, max_batch_size=8, max_wait_ms=0)
    await model.start()
    try:
        monster = asyncio.ensure_future(
            model.summarize([f"text {i:02d}" for i in range(48)], MONSTER, CallContext())
        )
        await asyncio.sleep(0.05)  # the monster is queued and running
        started = time.monotonic()
        await model.summarize(["x"], SMALL, CallContext())
        small_s = time.monotonic() - started
        assert not monster.done(), "the small request finished while the monster still ran"
        monster_started = time.monotonic()
        await monster
        rest_s = time.monotonic() - monster_started
    finally:
        await model.stop(5)
    # FIFO: the small request waited for all 48 monster sentences (rest_s ~ 0).
    assert small_s < rest_s, (small_s, rest_s)


async def test_api_keys_take_turns() -> None:
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.005)
    model = _service(runtime, mode="dynamic", max_batch_size=4, max_wait_ms=0)
    await model.start()
    done: list[str] = []

    async def run(tenant: str, texts: list[str]) -> None:
        await model.summarize(texts, MONSTER, CallContext(tenant=tenant))
        done.append(tenant)

    try:
        # Key a sends four big requests before key b's one; b must not wait for all four.
        tasks = [asyncio.ensure_future(run("a", [f"t{i}" for i in range(8)])) for _ in range(4)]
        await asyncio.sleep(0.02)
        tasks.append(asyncio.ensure_future(run("b", [f"t{i}" for i in range(8)])))
        await asyncio.gather(*tasks)
    finally:
        await model.stop(5)
    assert done.index("b") < 4, done


async def test_a_request_is_one_admission_unit_and_one_rejection() -> None:
    # Findings 3 and 10: the queue counted sentences (a request with more sentences than
    # S2S_MAX_QUEUE got 429 forever) and a rejected request counted one 429 per sentence
    # plus its siblings' cancellations as client disconnects.
    observer = _Rejections()
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.01)
    model = _service(runtime, observer, mode="dynamic", max_queue=1, max_wait_ms=0)
    await model.start()
    try:
        first = asyncio.ensure_future(
            model.summarize([f"t{i}" for i in range(10)], SMALL, CallContext())
        )
        await asyncio.sleep(0.02)
        with pytest.raises(QueueFullError) as info:
            await model.summarize([f"u{i}" for i in range(10)], SMALL, CallContext())
        assert info.value.retry_after_s >= 1
        results = await first  # 10 sentences > max_queue 1, yet one request: it runs
    finally:
        await model.stop(5)
    assert len(results) == 10
    assert observer.reasons == ["queue_full"]


async def test_a_request_over_the_cost_cap_is_too_costly_naming_the_limit() -> None:
    observer = _Rejections()
    runtime = FakeRuntime("fake-sum", "summarization")
    model = _service(runtime, observer, max_request_cost=1000, max_queue_cost=4000)
    await model.start()
    try:
        with pytest.raises(RequestTooCostlyError) as info:
            await model.summarize(
                ["t"] * 10, GenerationOptions(num_beams=4, max_new_tokens=100), CallContext()
            )
        ok = await model.summarize(["t"] * 10, GenerationOptions(max_new_tokens=50), CallContext())
    finally:
        await model.stop(5)
    assert info.value.limit == 1000 and info.value.cost > 1000
    assert len(ok) == 10
    assert observer.reasons == []  # the API counts every 413 (once)


def test_the_cost_cap_must_fit_the_queue() -> None:
    with pytest.raises(ValueError, match="max_request_cost"):
        EngineConfig(max_request_cost=10, max_queue_cost=5)


async def test_a_full_queue_refuses_before_any_text_work() -> None:
    # Overload: a refusal waited for sentence splitting and tokenization in the shared
    # worker threads first (seconds under load); now the queue is checked before either.
    observer = _Rejections()
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.01)
    model = _service(runtime, observer, mode="dynamic", max_queue=1, max_wait_ms=0)
    await model.start()
    encoded: list[int] = []
    real_encode = runtime.encode_texts

    def counting_encode(*args: object, **kwargs: object) -> list[list[int]]:
        encoded.append(1)
        return real_encode(*args, **kwargs)  # type: ignore[arg-type]

    try:
        first = asyncio.ensure_future(model.summarize(["t0", "t1"], SMALL, CallContext()))
        await asyncio.sleep(0.02)
        runtime.encode_texts = counting_encode  # type: ignore[method-assign]
        with pytest.raises(QueueFullError):
            await model.summarize(["u0"], SMALL, CallContext())
        with pytest.raises(QueueFullError):
            await model.chat([Message("user", "hi")], SMALL, CallContext())
        assert encoded == []
        await first
    finally:
        await model.stop(5)
    assert observer.reasons == ["queue_full", "queue_full"]
