"""The asyncio face of one model's worker: submit / stream / status / start / stop.

One :class:`Engine` per model package. It owns a :class:`Scheduler` whose loop runs on a
dedicated worker thread; results come back through each job's ``asyncio.Queue``.

The engine supervises its worker. The scheduler guards every loop iteration, so only a
failure of that guard itself ends the thread; when it does, the engine turns ``failed``
at once: every queued and running request fails with :class:`WorkerFailedError` (503),
new requests are refused the same way instead of waiting for their deadline, the
observer hears it (``s2s_model_ready`` drops to 0, /ready turns 503 naming the model),
and a fresh worker thread is started after ``worker_restart_delay_s`` (doubled for each
death in a row, at most 30 s). Restarting in-process keeps the other models serving;
the process is never killed for one model's worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator

from service.engine.admission import WorkGroup, cost_of
from service.engine.errors import (
    DeadlineExceededError,
    DrainingError,
    EngineError,
    RequestCancelledError,
    WorkerFailedError,
)
from service.engine.observer import EngineObserver, EngineState, EngineStatus
from service.engine.ports import Runtime
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

log = logging.getLogger("service.engine")

_MAX_RESTART_DELAY_S = 30.0
# A worker that lived this long before dying starts the restart backoff afresh.
_STABLE_S = 60.0


class Engine:
    """Batched generation for one runtime; all public methods run on the event loop."""

    def __init__(
        self,
        runtime: Runtime,
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state: EngineState = "created"
        self._active = 0  # accepted requests not yet answered (queued, running or delivering)
        self._failure = ""
        self._deaths_in_a_row = 0
        self._worker_started_at = 0.0
        self._restart: asyncio.Task[None] | None = None

    @property
    def state(self) -> EngineState:
        """created, running, failed (worker died, restart pending), draining or stopped."""
        return self._state

    @property
    def failure(self) -> str:
        """Why the worker died ("" unless ``state`` is failed)."""
        return self._failure

    async def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._spawn()
        self._state = "running"

    def _spawn(self) -> None:
        self._worker_started_at = time.monotonic()
        self._thread = threading.Thread(target=self._work, name=f"engine-{self.name}", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        """The worker thread: the scheduler loop, and a report to the loop if it dies."""
        try:
            self._scheduler.run()
        except BaseException as exc:
            log.critical("worker of model %s died", self.name, exc_info=exc)
            loop = self._loop
            if loop is not None and not loop.is_closed():
                # RuntimeError: the loop closed meanwhile, and nobody is waiting.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._worker_died, exc)

    def _worker_died(self, exc: BaseException) -> None:
        if self._state in ("draining", "stopped"):
            self._scheduler.fail_all(DrainingError(f"model {self.name!r} shut down"))
            return
        lived = time.monotonic() - self._worker_started_at
        self._deaths_in_a_row = 1 if lived >= _STABLE_S else self._deaths_in_a_row + 1
        delay = min(
            _MAX_RESTART_DELAY_S,
            self.config.worker_restart_delay_s * 2 ** (self._deaths_in_a_row - 1),
        )
        self._state = "failed"
        self._failure = f"worker died ({type(exc).__name__}); restarting in {delay:g}s"
        self._scheduler.fail_all(WorkerFailedError(f"model {self.name!r}: {self._failure}"))
        self.observer.on_worker_alive(False)
        self._restart = asyncio.get_running_loop().create_task(self._restart_after(delay))

    async def _restart_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if self._state != "failed":
            return
        self._scheduler.restart()
        self._spawn()
        self._state = "running"
        self._failure = ""
        self.observer.on_worker_alive(True)
        log.warning("worker of model %s restarted", self.name)

    async def stop(self, drain_timeout_s: float = 30.0) -> None:
        """Refuse new work, let accepted work finish for up to ``drain_timeout_s``, then stop.

        Work still unfinished after the timeout fails with DrainingError.
        """
        if self._state == "stopped":
            return
        if self._restart is not None:
            self._restart.cancel()
        failed = self._state == "failed"
        self._state = "draining"
        until = time.monotonic() + drain_timeout_s
        while self._active and not failed and time.monotonic() < until:
            await asyncio.sleep(0.02)
        self._scheduler.request_stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 10.0)
        self._scheduler.fail_all(DrainingError(f"model {self.name!r} shut down"))
        self._state = "stopped"

    def abort(self, error: EngineError) -> None:
        """Fail every queued and running request with ``error`` now (the drain grace
        period is over); the worker keeps running until stop()."""
        self._scheduler.fail_all(error)

    def status(self) -> EngineStatus:
        """State, batching mode, queue depth and requests in flight."""
        return {
            "state": self._state,
            "mode": self._scheduler.mode,  # continuous may have fallen back to dynamic
            "queue_depth": self._scheduler.queue_depth,
            "in_flight": self._scheduler.in_flight,
            "active": self._active,
        }

    @property
    def active(self) -> int:
        """Accepted requests not yet answered."""
        return self._active

    def _check_state(self) -> None:
        if self._state == "failed":
            raise WorkerFailedError(f"model {self.name!r}: {self._failure}")
        if self._state != "running":
            self.observer.on_rejection(DrainingError.reason)
            raise DrainingError(f"model {self.name!r} is not accepting work ({self._state})")

    @contextlib.contextmanager
    def _counting_rejections(self) -> Iterator[None]:
        """Check the engine's state, then count an engine refusal once by its reason."""
        self._check_state()
        try:
            yield
        except EngineError as exc:
            if exc.reason:
                self.observer.on_rejection(exc.reason)
            raise

    def check_room(self) -> None:
        """Refuse a new request at once (QueueFullError, counted; DrainingError;
        WorkerFailedError) when it could not be admitted now, before its text work."""
        with self._counting_rejections():
            self._scheduler.check_room()

    def has_room(self) -> bool:
        """Whether ``check_room`` would pass now (nothing is counted)."""
        if self._state != "running":
            return False
        try:
            self._scheduler.check_room()
        except EngineError:
            return False
        return True

    def reserve(self, group: WorkGroup) -> None:
        """Admit one client request (all its generations) or refuse it as a whole:
        RequestTooCostlyError, QueueFullError (counted once), DrainingError,
        WorkerFailedError. Every admitted group must be released."""
        with self._counting_rejections():
            self._scheduler.reserve(group)

    def release(self, group: WorkGroup) -> None:
        """The client request of ``group`` is answered (or gave up): free its capacity."""
        self._scheduler.release(group)

    def _report(self, job: Job, reason: str) -> None:
        """Count a rejection once per client request, and never the request's own
        cancellation of its remaining generations."""
        if not reason:
            return
        if job.group.abandoned and reason == RequestCancelledError.reason:
            return
        if job.group.first_report(reason):
            self.observer.on_rejection(reason)

    def _accept(self, request: GenerationRequest, stream: bool) -> tuple[Job, bool]:
        """The accepted job, and whether the engine reserved its group (a request given
        without one is a client request of its own)."""
        self._check_state()
        own = request.group is None
        if request.group is None:
            request.group = WorkGroup(cost_of(request.options, [len(request.input_ids)]))
            self.reserve(request.group)
        if request.deadline is None:
            # The request's deadline, as admission assumed it.
            request.deadline = request.group.deadline
        job = Job(request=request, loop=asyncio.get_running_loop(), stream=stream)
        try:
            self._scheduler.put(job)
        except EngineError as exc:
            if own:
                self.release(request.group)
            self._report(job, exc.reason)
            raise
        self._active += 1
        return job, own

    async def _next_event(self, job: Job) -> _Tokens | _Done | _Failed:
        """Wait for the job's next event, enforcing its deadline and cancellation."""
        timeout = None
        if job.request.deadline is not None:
            timeout = max(0.0, job.request.deadline - time.monotonic())
        if not job.events.empty() and (timeout is None or timeout > 0):
            return job.events.get_nowait()  # already there: no wait_for task per event
        try:
            # asyncio.TimeoutError, not the builtin: they are one class only from 3.11 on.
            return await asyncio.wait_for(job.events.get(), timeout)
        except asyncio.TimeoutError:
            job.cancel()
            self._scheduler.wake()
            self._report(job, DeadlineExceededError.reason)
            raise DeadlineExceededError(
                f"deadline exceeded after {time.monotonic() - job.enqueued_at:.3f}s"
            ) from None
        except asyncio.CancelledError:
            job.cancel()
            self._scheduler.wake()
            self._report(job, RequestCancelledError.reason)
            raise

    def _raise_failure(self, job: Job, event: _Failed) -> None:
        if isinstance(event.error, EngineError) and event.error.reason:
            self._report(job, event.error.reason)
        raise event.error

    async def submit(self, request: GenerationRequest) -> GenerationResult:
        """Generate for one request; raises the engine's typed errors.

        Cancelling the awaiting task (client disconnect) removes the request from the
        queue or the running batch.
        """
        job, own = self._accept(request, stream=False)
        try:
            while True:
                event = await self._next_event(job)
                if isinstance(event, _Done):
                    return event.result
                if isinstance(event, _Failed):
                    self._raise_failure(job, event)
        finally:
            self._active -= 1
            if own:
                self.release(job.group)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamChunk]:
        """Yield new token ids (and their text) as they are generated; the last chunk
        carries the result.

        Greedy/sampling requests yield a chunk per step (in dynamic mode too: a batch that
        holds a stream is decoded step by step); beam search yields the whole first
        sequence at once.
        Closing the iterator early cancels the request.
        """
        job, own = self._accept(request, stream=True)
        try:
            held: _Tokens | _Done | _Failed | None = None
            while True:
                event = held if held is not None else await self._next_event(job)
                held = None
                if isinstance(event, _Tokens):
                    ids, text = list(event.ids), event.text
                    # A consumer that fell behind takes every piece already queued as one
                    # chunk (fewer, larger SSE writes under load; the same text in order).
                    while not job.events.empty():
                        more = job.events.get_nowait()
                        if not isinstance(more, _Tokens):
                            held = more
                            break
                        ids += more.ids
                        text += more.text
                    yield StreamChunk(ids, None, text)
                elif isinstance(event, _Done):
                    yield StreamChunk([], event.result)
                    return
                else:
                    self._raise_failure(job, event)
        finally:
            if not job.finished:
                job.cancel()
                self._scheduler.wake()
            self._active -= 1
            if own:
                self.release(job.group)
