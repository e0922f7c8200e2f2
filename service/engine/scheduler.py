"""The per-model worker: a bounded queue and the batching policies.

Everything here runs on the engine's worker thread except :meth:`Scheduler.put`,
:meth:`Scheduler.request_stop` and the read-only counters, which the event loop calls.
ONNX Runtime releases the GIL while it computes, so the event loop keeps serving
HTTP while a batch runs.

Policies
- ``continuous``: one running decode batch from the runtime's step API; queued requests
  join between steps, finished ones leave at once, cancelled/expired ones are removed.
- ``dynamic``: collect up to ``max_batch_size`` requests (waiting at most ``max_wait_ms``
  for the oldest), grouped by identical options and bucketed by input length to limit
  padding, capped by ``max_batch_tokens`` padded tokens; run one ``generate`` call.
- ``off``: one request per ``generate`` call, in arrival order.

A failing batch never wedges the loop: a failing multi-request ``generate`` is retried
request by request so that only the requests that fail alone are failed; a failing decode
step fails the streaming requests in that batch (they may have sent tokens already) and
reruns the others alone.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from service.engine.errors import (
    DeadlineExceededError,
    DrainingError,
    GenerationFailedError,
    InvalidRequestError,
    QueueFullError,
)
from service.engine.observer import EngineObserver
from service.engine.requests import Job

log = logging.getLogger("service.engine")

BatchMode = Literal["continuous", "dynamic", "off"]


def _input_error_types() -> tuple[type[BaseException], ...]:
    try:
        from service.runtime import RuntimeInputError
    except ImportError:  # runtime not installed in this checkout: only ValueError counts
        return (ValueError,)
    return (RuntimeInputError, ValueError)


@dataclass(frozen=True)
class EngineConfig:
    """Batching and queueing settings of one engine."""

    mode: BatchMode = "continuous"
    max_batch_size: int = 16
    max_batch_tokens: int = 8192
    max_wait_ms: float = 5.0
    max_queue: int = 256
    default_timeout_ms: float | None = 60_000.0
    # Continuous mode: queued requests join a running batch only every N decode steps.
    # Each join starts a cohort that costs one decoder call per step for its whole life,
    # so under heavy load joining less often means fewer, larger calls; a request waits at
    # most N - 1 extra steps. An idle batch admits at once.
    join_every_steps: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("continuous", "dynamic", "off"):
            raise ValueError(f"unknown batching mode {self.mode!r}")
        if self.max_batch_size < 1 or self.max_batch_tokens < 1 or self.max_queue < 1:
            raise ValueError("max_batch_size, max_batch_tokens and max_queue must be >= 1")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        if self.join_every_steps < 1:
            raise ValueError("join_every_steps must be >= 1")


def options_key(options: Any) -> str:
    """A string equal for equal option sets (requests with equal keys may share a batch)."""
    dump = getattr(options, "model_dump_json", None)
    return dump() if callable(dump) else repr(options)


class Scheduler:
    """Queue plus worker loop for one runtime."""

    def __init__(self, runtime: Any, config: EngineConfig, observer: EngineObserver) -> None:
        self.runtime = runtime
        self.config = config
        self.observer = observer
        self._cond = threading.Condition()
        self._pending: collections.deque[Job] = collections.deque()
        self._running: dict[int, Job] = {}
        self._stop = False
        self._input_errors = _input_error_types()
        # Exponential moving average of seconds per finished request, for Retry-After.
        self._ema_job_s = 0.5

    # ---- event-loop side -------------------------------------------------------------
    def put(self, job: Job) -> None:
        """Enqueue a job or raise QueueFullError / DrainingError (never blocks)."""
        with self._cond:
            if self._stop:
                raise DrainingError("the model is shutting down")
            if len(self._pending) >= self.config.max_queue:
                raise QueueFullError(
                    f"queue full ({self.config.max_queue} requests waiting)",
                    retry_after_s=self.retry_after_s(),
                )
            self._pending.append(job)
            self._cond.notify_all()

    def wake(self) -> None:
        """Wake the worker so it notices a cancellation promptly."""
        with self._cond:
            self._cond.notify_all()

    def request_stop(self) -> None:
        """Stop the loop; queued and running jobs fail with DrainingError."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    @property
    def queue_depth(self) -> int:
        """Jobs waiting in the queue."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Jobs currently in a running batch."""
        return len(self._running)

    def retry_after_s(self) -> int:
        """Seconds a rejected client should wait: the estimated time to drain the queue."""
        per_batch = self._ema_job_s * max(1, len(self._pending)) / self.config.max_batch_size
        return max(1, math.ceil(per_batch))

    # ---- worker side -----------------------------------------------------------------
    def run(self) -> None:
        """The worker thread's body; returns after request_stop()."""
        try:
            if self.config.mode == "continuous":
                self._run_continuous()
            else:
                self._run_batched()
        finally:
            self._fail_all(DrainingError("the model shut down before this request ran"))

    def _fail_all(self, error: BaseException) -> None:
        with self._cond:
            jobs = list(self._pending) + list(self._running.values())
            self._pending.clear()
            self._running.clear()
        for job in jobs:
            job.fail(error)

    def _wait_for_work(self) -> bool:
        """Block until a job is queued (True) or stop was requested (False). Holds no lock."""
        with self._cond:
            while not self._pending and not self._stop:
                self._cond.wait()
            return not self._stop

    def _wait_for_more(self, target: int) -> None:
        """Wait up to max_wait_ms after the oldest job's arrival for ``target`` queued jobs."""
        if self.config.max_wait_ms <= 0:
            return
        with self._cond:
            if not self._pending:
                return
            until = self._pending[0].enqueued_at + self.config.max_wait_ms / 1000.0
            while len(self._pending) < target and not self._stop:
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)

    def _drop_dead(self) -> None:
        """Remove cancelled and expired jobs from the queue (caller holds the lock)."""
        now = time.monotonic()
        alive: collections.deque[Job] = collections.deque()
        for job in self._pending:
            if job.cancelled:
                job.fail(DeadlineExceededError("cancelled while queued"))
            elif job.expired(now):
                job.fail(DeadlineExceededError("deadline exceeded while queued"))
            else:
                alive.append(job)
        self._pending = alive

    def _start(self, jobs: list[Job], batch_size: int) -> None:
        for job in jobs:
            job.mark_started(batch_size)
            self.observer.on_queue_wait(job.queue_wait_s)

    def _finish(self, job: Job, sequences: list[list[int]]) -> None:
        result = job.finish(sequences)
        self.observer.on_tokens(result.input_tokens, result.generated_tokens)
        elapsed = time.monotonic() - (job.started_at or job.enqueued_at)
        self._ema_job_s = 0.8 * self._ema_job_s + 0.2 * elapsed

    def _error_for(self, exc: BaseException) -> BaseException:
        if isinstance(exc, self._input_errors):
            return InvalidRequestError(str(exc))
        return GenerationFailedError(f"generation failed: {type(exc).__name__}")

    # ---- dynamic / off ---------------------------------------------------------------
    def _select(self) -> list[Job]:
        """Pick the next batch from the queue (caller holds the lock)."""
        self._drop_dead()
        if not self._pending:
            return []
        if self.config.mode == "off":
            return [self._pending.popleft()]
        head = self._pending[0]
        key = options_key(head.request.options)
        # Same options only (one generate call takes one option set); nearest lengths first.
        candidates = [j for j in list(self._pending)[1:] if options_key(j.request.options) == key]
        candidates.sort(key=lambda j: abs(j.input_len - head.input_len))
        chosen = [head]
        longest = head.input_len
        for job in candidates:
            if len(chosen) >= self.config.max_batch_size:
                break
            padded = max(longest, job.input_len) * (len(chosen) + 1)
            if padded > self.config.max_batch_tokens:
                continue
            chosen.append(job)
            longest = max(longest, job.input_len)
        ids = {j.key for j in chosen}
        self._pending = collections.deque(j for j in self._pending if j.key not in ids)
        return chosen

    def _run_batched(self) -> None:
        while self._wait_for_work():
            target = 1 if self.config.mode == "off" else self.config.max_batch_size
            self._wait_for_more(target)
            with self._cond:
                jobs = self._select()
                for job in jobs:
                    self._running[job.key] = job
            if not jobs:
                continue
            try:
                self._start(jobs, len(jobs))
                self._generate(jobs)
            finally:
                with self._cond:
                    for job in jobs:
                        self._running.pop(job.key, None)

    def _generate(self, jobs: list[Job]) -> None:
        """Run one generate call for ``jobs``; on failure isolate the failing requests."""
        jobs = [j for j in jobs if not j.cancelled]
        if not jobs:
            return
        self.observer.on_batch(len(jobs))
        started = time.monotonic()
        try:
            outputs = self.runtime.generate(
                [list(j.request.input_ids) for j in jobs], jobs[0].request.options
            )
        except Exception as exc:
            if len(jobs) > 1:
                log.warning("batch of %d failed (%s); retrying one by one", len(jobs), exc)
                for job in jobs:
                    self._generate([job])
            else:
                self._log_failure(exc)
                jobs[0].fail(self._error_for(exc))
            return
        self.observer.on_step(time.monotonic() - started)
        for job, sequences in zip(jobs, outputs, strict=True):
            if job.expired():
                job.fail(DeadlineExceededError("deadline exceeded while running"))
                continue
            self._finish(job, sequences)

    def _log_failure(self, exc: BaseException) -> None:
        if isinstance(exc, self._input_errors):
            log.info("request rejected by the runtime: %s", type(exc).__name__)
        else:
            log.error("generation failed", exc_info=exc)

    # ---- continuous ------------------------------------------------------------------
    def _admit(self) -> list[Job]:
        """Queued jobs that fit into the running batch now (caller holds the lock)."""
        self._drop_dead()
        room = self.config.max_batch_size - len(self._running)
        tokens = sum(j.input_len for j in self._running.values())
        admitted: list[Job] = []
        while self._pending and room > 0:
            job = self._pending[0]
            # The first joiner of an empty batch always fits, however long it is.
            if (
                admitted or self._running
            ) and tokens + job.input_len > self.config.max_batch_tokens:
                break
            self._pending.popleft()
            admitted.append(job)
            tokens += job.input_len
            room -= 1
        return admitted

    def _run_continuous(self) -> None:
        batch: Any = None
        steps_since_join = 0
        while True:
            with self._cond:
                idle = not self._running
            if idle:
                if not self._wait_for_work():
                    return
                self._wait_for_more(self.config.max_batch_size)
            joiners: list[Job] = []
            with self._cond:
                if self._stop:
                    return
                if idle or steps_since_join + 1 >= self.config.join_every_steps:
                    joiners = self._admit()
            if joiners:
                steps_since_join = 0
            else:
                steps_since_join += 1
            if batch is None:
                batch = self.runtime.new_batch()
            self._join(batch, joiners)
            with self._cond:
                if not self._running:
                    continue
            self.observer.on_batch(len(self._running))
            started = time.monotonic()
            try:
                events = batch.step()
            except Exception as exc:
                log.error("decode step failed; isolating its requests", exc_info=exc)
                self._recover(exc)
                batch = None
                continue
            self.observer.on_step(time.monotonic() - started)
            self._deliver(events)
            self._reap(batch)

    def _join(self, batch: Any, joiners: list[Job]) -> None:
        added: list[Job] = []
        for job in joiners:
            try:
                batch.add(job.key, list(job.request.input_ids), job.request.options)
            except Exception as exc:
                self._log_failure(exc)
                job.fail(self._error_for(exc))
                continue
            added.append(job)
        with self._cond:
            for job in added:
                self._running[job.key] = job
            size = len(self._running)
        self._start(added, size)

    def _deliver(self, events: list[Any]) -> None:
        for event in events:
            job = self._running.get(event.key)
            if job is None:
                continue
            if event.token_ids:
                job.emit_tokens(list(event.token_ids))
            if event.finished:
                with self._cond:
                    self._running.pop(event.key, None)
                self._finish(job, event.sequences or [])

    def _reap(self, batch: Any) -> None:
        """Remove cancelled and expired requests from the running batch."""
        now = time.monotonic()
        for key, job in list(self._running.items()):
            if job.cancelled or job.expired(now):
                batch.remove(key)
                with self._cond:
                    self._running.pop(key, None)
                job.fail(DeadlineExceededError("deadline exceeded while running"))

    def _recover(self, exc: BaseException) -> None:
        """After a failed step: fail the streaming requests, rerun the others alone."""
        with self._cond:
            jobs = list(self._running.values())
            self._running.clear()
        for job in jobs:
            if job.cancelled:
                job.fail(DeadlineExceededError("cancelled"))
            elif job.stream:
                job.fail(self._error_for(exc))
            else:
                self._generate([job])
