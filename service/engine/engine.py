"""The asyncio face of one model: submit / stream / status / start / stop.

One :class:`Engine` per model package. It owns a :class:`Scheduler` whose loop runs on a
dedicated worker thread; results come back through each job's ``asyncio.Queue``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from service.engine.errors import (
    DeadlineExceededError,
    DrainingError,
    EngineError,
    RequestCancelledError,
)
from service.engine.observer import EngineObserver
from service.engine.requests import (
    GenerationRequest,
    GenerationResult,
    Job,
    StreamChunk,
    _Done,
    _Failed,
    _Tokens,
)
from service.engine.scheduler import EngineConfig, Scheduler

EngineState = Literal["created", "running", "draining", "stopped"]


class Engine:
    """Batched generation for one runtime; all public methods run on the event loop."""

    def __init__(
        self,
        runtime: Any,
        config: EngineConfig | None = None,
        observer: EngineObserver | None = None,
        name: str = "model",
    ) -> None:
        self.runtime = runtime
        self.config = config or EngineConfig()
        self.observer = observer or EngineObserver()
        self.name = name
        self._scheduler = Scheduler(runtime, self.config, self.observer)
        self._thread: threading.Thread | None = None
        self._state: EngineState = "created"
        self._active = 0  # accepted requests not yet answered (queued, running or delivering)

    @property
    def state(self) -> EngineState:
        """created, running, draining or stopped."""
        return self._state

    async def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._scheduler.run, name=f"engine-{self.name}", daemon=True
        )
        self._thread.start()
        self._state = "running"

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Refuse new work, let accepted work finish for up to ``drain_timeout_s``, then stop.

        Work still unfinished after the timeout fails with DrainingError.
        """
        if self._state == "stopped":
            return
        self._state = "draining"
        until = time.monotonic() + drain_timeout_s
        while self._active and time.monotonic() < until:
            await asyncio.sleep(0.02)
        self._scheduler.request_stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
        self._state = "stopped"

    def status(self) -> dict[str, Any]:
        """State, batching mode, queue depth and requests in flight."""
        return {
            "state": self._state,
            "mode": self.config.mode,
            "queue_depth": self._scheduler.queue_depth,
            "in_flight": self._scheduler.in_flight,
            "active": self._active,
        }

    @property
    def active(self) -> int:
        """Accepted requests not yet answered."""
        return self._active

    def _accept(self, request: GenerationRequest, stream: bool) -> Job:
        if self._state != "running":
            self.observer.on_rejection(DrainingError.reason)
            raise DrainingError(f"model {self.name!r} is not accepting work ({self._state})")
        if request.deadline is None and self.config.default_timeout_ms is not None:
            request.deadline = GenerationRequest.deadline_in(self.config.default_timeout_ms)
        job = Job(request=request, loop=asyncio.get_running_loop(), stream=stream)
        try:
            self._scheduler.put(job)
        except EngineError as exc:
            self.observer.on_rejection(exc.reason)
            raise
        self._active += 1
        return job

    async def _next_event(self, job: Job) -> _Tokens | _Done | _Failed:
        """Wait for the job's next event, enforcing its deadline and cancellation."""
        timeout = None
        if job.request.deadline is not None:
            timeout = max(0.0, job.request.deadline - time.monotonic())
        try:
            return await asyncio.wait_for(job.events.get(), timeout)
        except TimeoutError:
            job.cancel()
            self._scheduler.wake()
            self.observer.on_rejection(DeadlineExceededError.reason)
            raise DeadlineExceededError(
                f"deadline exceeded after {time.monotonic() - job.enqueued_at:.3f}s"
            ) from None
        except asyncio.CancelledError:
            job.cancel()
            self._scheduler.wake()
            self.observer.on_rejection(RequestCancelledError.reason)
            raise

    def _raise_failure(self, event: _Failed) -> None:
        if isinstance(event.error, EngineError) and event.error.reason:
            self.observer.on_rejection(event.error.reason)
        raise event.error

    async def submit(self, request: GenerationRequest) -> GenerationResult:
        """Generate for one request; raises the engine's typed errors.

        Cancelling the awaiting task (client disconnect) removes the request from the
        queue or the running batch.
        """
        job = self._accept(request, stream=False)
        try:
            while True:
                event = await self._next_event(job)
                if isinstance(event, _Done):
                    return event.result
                if isinstance(event, _Failed):
                    self._raise_failure(event)
        finally:
            self._active -= 1

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Yield new token ids as they are generated; the last chunk carries the result.

        Greedy/sampling requests in continuous mode yield a chunk per step; beam search and
        the dynamic/off modes yield the whole first sequence at once. Closing the iterator
        early cancels the request.
        """
        job = self._accept(request, stream=True)
        try:
            while True:
                event = await self._next_event(job)
                if isinstance(event, _Tokens):
                    yield StreamChunk(event.ids)
                elif isinstance(event, _Done):
                    yield StreamChunk([], event.result)
                    return
                else:
                    self._raise_failure(event)
        finally:
            if not job.finished:
                job.cancel()
                self._scheduler.wake()
            self._active -= 1
