"""Continuous batching (``EngineConfig(mode="continuous")``, ``S2S_BATCH_MODE=continuous``):
the loop over the runtime's positioned batch, admitting at every step within the
admission budgets and fair turns; a runtime without the positioned graphs falls back to
dynamic with a warning. Against the typed fake, then a real tiny package whose requests
arrive at different steps."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Hashable, Sequence
from pathlib import Path

import pytest

from service.engine import (
    CallContext,
    DeadlineExceededError,
    Engine,
    EngineConfig,
    GenerationOptions,
    GenerationRequest,
    InvalidRequestError,
    ModelService,
    StreamChunk,
)
from service.engine.ports import DecodeBatch, Detokenizer
from service.runtime import (
    GenerationOutput,
    Manifest,
    ResolvedOptions,
    RuntimeInfo,
    Seq2SeqRuntime,
    StepEvent,
)
from tests.support.fake_runtime import POISON, FakeOptions, FakeRuntime, expected
from tests.support.positioned import SENTENCES as SHARED_SENTENCES
from tests.support.positioned import positioned_package


def _inputs(n: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(20, 200) for _ in range(rng.randrange(1, 12))] for _ in range(n)]


async def _run(engine: Engine, ids: list[int], opts: ResolvedOptions) -> list[list[int]]:
    return (await engine.submit(GenerationRequest(ids, opts))).sequences


async def _drain(stream: AsyncIterator[StreamChunk]) -> None:
    """Reads a stream to its end."""
    async for _ in stream:
        pass


@pytest.mark.parametrize("beams", [1, 4])
async def test_concurrent_requests_equal_single_results_on_the_positioned_batch(
    beams: int,
) -> None:
    runtime = FakeRuntime()
    engine = Engine(runtime, EngineConfig(mode="continuous", max_batch_size=16, max_wait_ms=20))
    await engine.start()
    opts = FakeOptions(num_beams=beams)
    inputs = _inputs(48)
    try:
        assert engine.status()["mode"] == "continuous"
        together = await asyncio.gather(*(_run(engine, ids, opts) for ids in inputs))
        alone = [await _run(engine, ids, opts) for ids in inputs[:6]]
    finally:
        await engine.stop(1)
    assert together == [expected(ids, opts) for ids in inputs]
    assert alone == together[:6]
    assert runtime.batches == 1  # one positioned batch, never a generate call
    assert not runtime.generate_sizes
    assert 1 < max(runtime.step_sizes) <= 16 // beams * beams


async def test_admits_at_every_step() -> None:
    """Requests arriving while a batch runs join at the very next step, one by one."""
    runtime = FakeRuntime(step_delay_s=0.01)
    engine = Engine(runtime, EngineConfig(mode="continuous", max_wait_ms=0))
    await engine.start()
    long = FakeOptions(max_new_tokens=40)
    try:
        first = asyncio.ensure_future(_run(engine, [99, 30], long))  # LONG: 40 steps
        tasks = []
        for i in range(6):
            await asyncio.sleep(0.025)
            tasks.append(asyncio.ensure_future(_run(engine, [40 + i, 50], long)))
        results = await asyncio.gather(first, *tasks)
    finally:
        await engine.stop(1)
    assert results[1:] == [expected([40 + i, 50], long) for i in range(6)]
    joins = runtime.join_steps
    assert len(joins) == 7
    gaps = [b - a for a, b in itertools.pairwise(sorted(set(joins)))]
    assert len(set(joins)) >= 5  # joined at many different steps, one by one
    assert any(gap not in (0, 4, 8) for gap in gaps)


async def test_budgets_hold_in_continuous_mode() -> None:
    runtime = FakeRuntime(step_delay_s=0.002)
    engine = Engine(runtime, EngineConfig(mode="continuous", max_batch_size=3, max_wait_ms=5))
    await engine.start()
    opts = FakeOptions()
    inputs = _inputs(20, seed=3)
    try:
        out = await asyncio.gather(*(_run(engine, ids, opts) for ids in inputs))
    finally:
        await engine.stop(1)
    assert out == [expected(ids, opts) for ids in inputs]
    assert max(runtime.step_sizes) == 3


async def test_padded_token_budget_holds_back_a_long_joiner() -> None:
    runtime = FakeRuntime(step_delay_s=0.002)
    config = EngineConfig(mode="continuous", max_batch_tokens=40, max_wait_ms=5)
    engine = Engine(runtime, config)
    await engine.start()
    opts = FakeOptions(max_new_tokens=6)
    inputs = [[30 + i] * 20 for i in range(4)]  # 20 tokens each: two fit in 40
    try:
        out = await asyncio.gather(*(_run(engine, ids, opts) for ids in inputs))
    finally:
        await engine.stop(1)
    assert out == [expected(ids, opts) for ids in inputs]
    assert max(runtime.step_sizes) == 2


async def test_cache_token_budget_holds_back_long_generations() -> None:
    runtime = FakeRuntime(step_delay_s=0.002)
    config = EngineConfig(mode="continuous", max_batch_cache_tokens=50, max_wait_ms=5)
    engine = Engine(runtime, config)
    await engine.start()
    short, long = FakeOptions(max_new_tokens=3), FakeOptions(max_new_tokens=20)
    # 5 + 20 = 25 cache positions a long request: two fit in 50; the short ones alone
    # (5 + 3 = 8 each) would have fitted six at a time.
    inputs = [[30 + i] * 5 for i in range(4)]
    try:
        out = await asyncio.gather(*(_run(engine, ids, long) for ids in inputs))
        sizes_long = list(runtime.step_sizes)
        runtime.step_sizes.clear()
        out_short = await asyncio.gather(*(_run(engine, ids, short) for ids in inputs))
    finally:
        await engine.stop(1)
    assert out == [expected(ids, long) for ids in inputs]
    assert out_short == [expected(ids, short) for ids in inputs]
    assert max(sizes_long) == 2 and max(runtime.step_sizes) == 4


async def test_falls_back_to_dynamic_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    runtime = FakeRuntime(positioned=False)
    with caplog.at_level(logging.WARNING, logger="service.engine"):
        engine = Engine(runtime, EngineConfig(mode="continuous", max_wait_ms=5))
    assert "using dynamic" in caplog.text and "--positioned" in caplog.text
    await engine.start()
    opts = FakeOptions()
    inputs = _inputs(8, seed=1)
    try:
        assert engine.status()["mode"] == "dynamic"
        out = await asyncio.gather(*(_run(engine, ids, opts) for ids in inputs))
    finally:
        await engine.stop(1)
    assert out == [expected(ids, opts) for ids in inputs]
    assert runtime.batches == 0 and runtime.generate_sizes


@pytest.mark.timing  # compares two latencies measured here
async def test_a_small_request_is_not_queued_behind_a_monster() -> None:
    """Fair turns apply at every admission (as in the other modes)."""
    runtime = FakeRuntime("fake-sum", "summarization", step_delay_s=0.005)
    engine = Engine(runtime, EngineConfig(mode="continuous", max_batch_size=8, max_wait_ms=0))
    model = ModelService(runtime.manifest.name, runtime, engine)
    await model.start()
    monster_opts = GenerationOptions(num_beams=4, max_new_tokens=8)
    try:
        monster = asyncio.ensure_future(
            model.summarize([f"text {i:02d}" for i in range(48)], monster_opts, CallContext())
        )
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await model.summarize(["x"], GenerationOptions(max_new_tokens=8), CallContext())
        small_s = time.monotonic() - started
        assert not monster.done()
        monster_started = time.monotonic()
        await monster
        rest_s = time.monotonic() - monster_started
    finally:
        await model.stop(5)
    assert small_s < rest_s, (small_s, rest_s)


@pytest.mark.parametrize("poison_at", ["add", "step"])
async def test_a_failure_fails_only_its_request(poison_at: str) -> None:
    runtime = FakeRuntime(poison_at=poison_at)
    engine = Engine(runtime, EngineConfig(mode="continuous", max_batch_size=8, max_wait_ms=30))
    await engine.start()
    opts = FakeOptions()
    inputs = _inputs(6, seed=2)
    inputs[3] = [40, POISON, 50]
    try:
        outs = await asyncio.gather(
            *(_run(engine, ids, opts) for ids in inputs), return_exceptions=True
        )
        after = await _run(engine, [21, 22], opts)
    finally:
        await engine.stop(1)
    for i, (ids, out) in enumerate(zip(inputs, outs, strict=True)):
        if i == 3:
            assert isinstance(out, InvalidRequestError)
        else:
            assert out == expected(ids, opts)
    assert after == expected([21, 22], opts)
    if poison_at == "step":
        assert runtime.batches == 2  # a fresh positioned batch after the failed step


async def test_streams_a_token_per_step_and_cancels_and_expires_running_requests() -> None:
    runtime = FakeRuntime(step_delay_s=0.01)
    engine = Engine(runtime, EngineConfig(mode="continuous", max_wait_ms=0))
    await engine.start()
    opts = FakeOptions(max_new_tokens=30)
    ids = [99, 40]  # LONG: 30 tokens, about 0.3 s

    async def consume() -> list[StreamChunk]:
        return [chunk async for chunk in engine.stream(GenerationRequest(ids, opts))]

    try:
        streamed = asyncio.ensure_future(consume())
        cancelled = asyncio.ensure_future(_run(engine, [99, 41], opts))
        expiring = asyncio.ensure_future(
            engine.submit(GenerationRequest([99, 42], opts, GenerationRequest.deadline_in(60)))
        )
        await asyncio.sleep(0.1)  # all three are decoding
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        with pytest.raises(DeadlineExceededError):
            await expiring
        chunks = await streamed
    finally:
        await engine.stop(1)
    want = expected(ids, opts)
    assert [t for c in chunks for t in c.token_ids] == want[0]
    assert len([c for c in chunks if c.token_ids]) > 1  # streamed as it went
    assert chunks[-1].result is not None and chunks[-1].result.sequences == want
    assert len(runtime.removed) == 2  # both left the running batch


def test_settings_and_loader_accept_continuous(tmp_path: Path) -> None:
    from service.engine.registry import LoadConfig, default_loader
    from service.settings import Settings

    settings = Settings.model_validate({"models_dir": tmp_path, "batch_mode": "continuous"})
    assert settings.batch_mode == "continuous"
    package = _positioned_package()
    # shared_thread_pool off: the switch is process-wide (the service's default is on).
    continuous = LoadConfig(
        engine=EngineConfig(mode="continuous"), device="cpu", shared_thread_pool=False
    )
    assert default_loader(continuous)(package).supports_positioned
    dynamic = LoadConfig(
        engine=EngineConfig(mode="dynamic"), device="cpu", shared_thread_pool=False
    )
    assert not default_loader(dynamic)(package).supports_positioned


# ---- a real tiny package ----------------------------------------------------------------


def _positioned_package() -> Path:
    return positioned_package("marian")


class _Observed:
    """A DecodeBatch that records, after every step, how many rows it held at how many
    different positions (the real positioned batch underneath)."""

    def __init__(self, inner: DecodeBatch, positions: list[int], sizes: list[int]) -> None:
        self.inner = inner
        self.positions = positions
        self.sizes = sizes

    def add(self, key: Hashable, input_ids: Sequence[int], options: ResolvedOptions) -> None:
        self.inner.add(key, input_ids, options)

    def step(self) -> list[StepEvent]:
        events = self.inner.step()
        slots = getattr(self.inner, "slots", None)  # the positioned batch's slots
        self.positions.append(len(set(slots.positions)) if slots is not None else 0)
        self.sizes.append(len(events))
        return events

    def remove(self, key: Hashable) -> bool:
        return self.inner.remove(key)

    def __len__(self) -> int:
        return len(self.inner)

    @property
    def rows(self) -> int:
        return self.inner.rows


class _Recording:
    """The real runtime behind the engine's Runtime port, recording its positioned batches."""

    def __init__(self, runtime: Seq2SeqRuntime) -> None:
        self.runtime = runtime
        self.positions: list[int] = []
        self.sizes: list[int] = []

    @property
    def manifest(self) -> Manifest:
        return self.runtime.manifest

    @property
    def info(self) -> RuntimeInfo:
        return self.runtime.info

    @property
    def supports_positioned(self) -> bool:
        return self.runtime.supports_positioned

    def encode_texts(
        self, texts: Sequence[str], source_lang: str | None = None, target_lang: str | None = None
    ) -> list[list[int]]:
        return self.runtime.encode_texts(texts, source_lang, target_lang)

    def resolve(
        self, options: GenerationOptions | None = None, target_lang: str | None = None
    ) -> ResolvedOptions:
        return self.runtime.resolve(options, target_lang)

    def new_positioned_batch(self) -> DecodeBatch:
        return _Observed(self.runtime.new_positioned_batch(), self.positions, self.sizes)

    def generate_outputs(
        self,
        input_ids: Sequence[Sequence[int]],
        options: ResolvedOptions | GenerationOptions | None = None,
        batch_size: int | None = None,
    ) -> list[GenerationOutput]:
        return self.runtime.generate_outputs(input_ids, options, batch_size)

    def decode(self, ids: Sequence[int]) -> str:
        return self.runtime.decode(ids)

    def new_detokenizer(self) -> Detokenizer:
        return self.runtime.new_detokenizer()


# The shared six plus two more, so eight requests join at different steps.
SENTENCES = [
    *SHARED_SENTENCES,
    "A donkey chases a dog.",
    "Two old women are sitting on a bench in the park and talking about the weather.",
]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
async def test_real_package_requests_arriving_at_different_steps(precision: str) -> None:
    """Requests submitted one after another while others decode: each output (greedy with
    its own budget, one sampled, one beam) equals its single-request decoding, and the
    decoder calls held rows at different positions."""
    from service.runtime import load_runtime

    rt = load_runtime(_positioned_package(), device="cpu", precision=precision, positioned=True)
    recording = _Recording(rt)
    engine = Engine(recording, EngineConfig(mode="continuous", max_wait_ms=0, max_batch_size=8))
    ids = rt.encode_texts(SENTENCES)
    options = [
        rt.resolve(GenerationOptions(num_beams=1, max_new_tokens=n))
        for n in (30, 30, 4, 30, 30, 12, 30, 30)
    ]
    options[5] = rt.resolve(GenerationOptions(num_beams=1, do_sample=True, seed=11))
    options[6] = rt.resolve(GenerationOptions(num_beams=3, max_new_tokens=20))
    alone = [rt.generate_outputs([i], o)[0].sequences for i, o in zip(ids, options, strict=True)]
    await engine.start()
    try:
        tasks = []
        for i in range(len(SENTENCES)):
            tasks.append(asyncio.ensure_future(_run(engine, ids[i], options[i])))
            await asyncio.sleep(0.004 * (i % 3))
        together = await asyncio.gather(*tasks)
    finally:
        await engine.stop(2)
    assert together == alone
    assert max(recording.positions) > 1  # one call held rows at different positions


async def test_real_package_stream_gets_its_first_token_while_others_run() -> None:
    """A streamed request joining a busy batch gets its first token at its first step,
    long before the running requests end (a dynamic batch would make it wait for them)."""
    from service.runtime import load_runtime

    rt = load_runtime(_positioned_package(), device="cpu", precision="fp32", positioned=True)
    engine = Engine(rt, EngineConfig(mode="continuous", max_wait_ms=0))
    assert engine.status()["mode"] == "continuous"
    ids = rt.encode_texts(SENTENCES)
    # 200 forced tokens (the tiny Marian has 512 positions): ~200 steps after the
    # stream joins, so the check below does not depend on how busy the machine is.
    long = rt.resolve(GenerationOptions(num_beams=1, min_length=200, max_new_tokens=200))
    short = rt.resolve(GenerationOptions(num_beams=1, max_new_tokens=20))
    await engine.start()
    try:
        long_streams = [engine.stream(GenerationRequest(ids[i], long)) for i in range(3)]
        for long_stream in long_streams:  # each has decoded its first step
            assert (await long_stream.__anext__()).token_ids
        running = [asyncio.ensure_future(_drain(s)) for s in long_streams]
        stream = engine.stream(GenerationRequest(ids[3], short))
        first = await stream.__anext__()
        assert first.token_ids
        assert not any(task.done() for task in running)
        rest = [chunk async for chunk in stream]
        await asyncio.gather(*running)
    finally:
        await engine.stop(2)
    tokens = first.token_ids + [t for c in rest for t in c.token_ids]
    assert tokens == rt.generate_outputs([ids[3]], short)[0].sequences[0]
