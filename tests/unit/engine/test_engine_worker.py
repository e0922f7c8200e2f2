"""The worker cannot die unnoticed: guarded iterations, and fault injection past the guard."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.engine import (
    Engine,
    EngineConfig,
    EngineObserver,
    GenerationFailedError,
    GenerationRequest,
    WorkerFailedError,
)
from service.engine.scheduler import Scheduler
from service.runtime import StepEvent
from tests.support.fake_runtime import FakeOptions, FakeRuntime, expected


class _Alive(EngineObserver):
    def __init__(self) -> None:
        self.alive: list[bool] = []

    def on_worker_alive(self, alive: bool) -> None:
        self.alive.append(alive)


async def _wait_for(predicate: object, timeout: float = 3.0) -> bool:
    for _ in range(int(timeout / 0.01)):
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.01)
    return False


class _Faults:
    """Injects a fault into Scheduler._deliver (outside the guarded decode step)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.on = False
        deliver = Scheduler._deliver

        def faulty(scheduler: Scheduler, events: list[StepEvent]) -> None:
            if self.on:
                raise RuntimeError("injected fault in _deliver")
            deliver(scheduler, events)

        monkeypatch.setattr(Scheduler, "_deliver", faulty)


async def test_a_failed_iteration_fails_only_what_ran_and_the_loop_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults = _Faults(monkeypatch)
    runtime = FakeRuntime()
    engine = Engine(runtime, EngineConfig(mode="continuous", max_wait_ms=0))
    await engine.start()
    try:
        faults.on = True
        with pytest.raises(GenerationFailedError):
            await engine.submit(GenerationRequest([30, 31], FakeOptions()))
        faults.on = False
        result = await engine.submit(GenerationRequest([30, 31], FakeOptions()))
        assert result.sequences == expected([30, 31], FakeOptions())
        assert engine.state == "running"
    finally:
        await engine.stop(1)


async def test_a_dead_worker_fails_fast_turns_failed_and_is_restarted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faults = _Faults(monkeypatch)
    runtime = FakeRuntime()
    observer = _Alive()
    config = EngineConfig(mode="continuous", max_wait_ms=0, worker_restart_delay_s=0.2)
    engine = Engine(runtime, config, observer, name="m")

    def broken_recovery(self: Scheduler, exc: Exception) -> None:
        raise RuntimeError("injected fault: recovery failed")

    monkeypatch.setattr(Scheduler, "_recover_iteration", broken_recovery)
    await engine.start()
    try:
        faults.on = True
        # A long deadline: the request must fail at once, not when it expires.
        deadline = GenerationRequest.deadline_in(30_000)
        started = time.monotonic()
        with pytest.raises(WorkerFailedError):
            await engine.submit(GenerationRequest([30], FakeOptions(), deadline))
        assert time.monotonic() - started < 2
        assert engine.state == "failed" and "worker died" in engine.failure
        assert engine.status()["state"] == "failed"
        assert observer.alive == [False]
        # New work is refused at once while the worker is down.
        with pytest.raises(WorkerFailedError):
            await engine.submit(GenerationRequest([31], FakeOptions(), deadline))
        faults.on = False
        assert await _wait_for(lambda: engine.state == "running")
        assert observer.alive == [False, True]
        result = await engine.submit(GenerationRequest([32], FakeOptions()))
        assert result.sequences == expected([32], FakeOptions())
    finally:
        await engine.stop(1)
    assert engine.state == "stopped"


@pytest.mark.parametrize("mode", ["continuous", "dynamic"])
async def test_admission_counts_decoder_rows(mode: str) -> None:
    runtime = FakeRuntime(step_delay_s=0.002)
    engine = Engine(runtime, EngineConfig(mode=mode, max_batch_size=8, max_wait_ms=30))
    await engine.start()
    opts = FakeOptions(num_beams=4)
    inputs = [[30 + i, 40] for i in range(6)]
    try:
        outs = await asyncio.gather(
            *(engine.submit(GenerationRequest(ids, opts)) for ids in inputs)
        )
    finally:
        await engine.stop(1)
    assert [o.sequences for o in outs] == [expected(ids, opts) for ids in inputs]
    sizes = runtime.step_sizes if mode == "continuous" else runtime.generate_sizes
    # 8 rows hold two 4-beam requests, never more.
    assert max(sizes) == 2


async def test_one_request_over_the_row_budget_still_runs_alone() -> None:
    runtime = FakeRuntime()
    engine = Engine(runtime, EngineConfig(mode="continuous", max_batch_size=2, max_wait_ms=0))
    await engine.start()
    opts = FakeOptions(num_beams=4)
    try:
        result = await engine.submit(GenerationRequest([30, 31], opts))
    finally:
        await engine.stop(1)
    assert result.sequences == expected([30, 31], opts)


async def test_results_carry_the_finish_reason() -> None:
    runtime = FakeRuntime()
    engine = Engine(runtime, EngineConfig(mode="continuous", max_wait_ms=0))
    await engine.start()
    try:
        long = await engine.submit(GenerationRequest([99, 30], FakeOptions(max_new_tokens=5)))
        short = await engine.submit(GenerationRequest([30], FakeOptions(max_new_tokens=8)))
    finally:
        await engine.stop(1)
    assert long.finish_reasons == ["length"] and short.finish_reasons == ["eos"]
