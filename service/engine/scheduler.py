"""The per-model worker: a bounded queue and the batching policies.

Everything here runs on the engine's worker thread except :meth:`Scheduler.put`,
:meth:`Scheduler.request_stop`, :meth:`Scheduler.wake` and the read-only counters, which
the event loop calls. ONNX Runtime releases the GIL while it computes, so the event loop
keeps serving HTTP while a batch runs.

Policies
- ``dynamic`` (default): collect up to ``max_batch_size`` decoder rows (waiting at most
  ``max_wait_ms`` for the oldest), grouped by identical options and bucketed by input
  length to limit padding, capped by ``max_batch_tokens`` padded tokens; run one
  ``generate`` call, or, when the batch holds a streaming request, decode it step by step
  (``new_batch``: the rows start together and each step's tokens go out at once).
- ``continuous``: continuous batching over the runtime's *positioned* batch
  (``new_positioned_batch``): queued requests join the running batch at every step
  (within the same row / padded-token / cache budgets and fair turns), finished ones
  leave at once, cancelled/expired ones are removed, and all running requests share one
  decoder call per step whatever their positions. A runtime without the positioned
  graphs (``supports_positioned`` False: a package exported without ``--positioned``, or
  not on CPU) falls back to ``dynamic`` with a logged warning; :attr:`Scheduler.mode`
  (and the engine's status) says which runs.

Admission counts decoder rows (a beam-16 request costs 16), padded tokens and key/value
cache positions (service/engine/admission.py). A client request is admitted only when it
can finish before its deadline: the work units admitted ahead of it plus its own, at the
worker's measured service rate (:class:`ServiceRate`), must fit in ``ADMISSION_MARGIN`` of
the time left; otherwise it is refused at once (429 with the seconds the backlog needs
beyond that as Retry-After) instead of being accepted to time out. The queue is taken in
turn order, not arrival order (:class:`Turns`): API keys take turns, a key's requests run
by due time (their deadline, or when they would finish alone at the service rate: so an
admitted request runs to its end and a small one passes a big one), and a request's
sentences first in first out; a batch starts with the job whose turn it is.

Failures never wedge the loop: a failing multi-request ``generate`` is retried request by
request so that only the requests that fail alone are failed; a failing decode step fails
the streaming requests in that batch (they may have sent tokens already) and reruns the
others alone. Every loop iteration is guarded as a whole: an unexpected exception anywhere
in it is logged, the running batch is failed (its state is unknown) and the loop goes
on with the queue untouched. Only if that recovery itself fails does the worker die; the
engine notices (service/engine/engine.py).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass

from service.engine.admission import (
    ServiceRate,
    Turns,
    WorkGroup,
    cache_tokens,
    due_time,
    padded_tokens,
)
from service.engine.errors import (
    DeadlineExceededError,
    DrainingError,
    EngineError,
    GenerationFailedError,
    QueueFullError,
    RequestCancelledError,
    RequestTooCostlyError,
    invalid_request,
)
from service.engine.observer import BatchMode, EngineObserver
from service.engine.ports import DecodeBatch, Runtime
from service.engine.requests import GenerationRequest, Job, batched_posts
from service.runtime import RuntimeInputError, StepEvent

log = logging.getLogger("service.engine")

#: A request is admitted only if the work ahead of it and its own are estimated to finish
#: within this share of the time to its deadline: the rate is an average, and a request
#: admitted later but due sooner may still run first.
ADMISSION_MARGIN = 0.8


@dataclass(frozen=True)
class EngineConfig:
    """Batching and queueing settings of one engine."""

    mode: BatchMode = "dynamic"
    # Decoder rows per batch: a request costs num_beams (or num_return_sequences) rows.
    max_batch_size: int = 16
    # Padded encoder tokens per batch: longest input x rows.
    max_batch_tokens: int = 8192
    # Key/value cache positions per batch: rows x (longest input + longest max_new_tokens).
    max_batch_cache_tokens: int = 65_536
    max_wait_ms: float = 5.0
    # Client requests (all their sentences together) queued or running, and their work
    # units (service/engine/admission.py cost_of); a request over max_request_cost units
    # could never run (413).
    max_queue: int = 256
    max_queue_cost: int = 2_097_152
    max_request_cost: int = 262_144
    default_timeout_ms: float | None = 60_000.0
    # A dead worker thread is restarted after this delay, doubled for each death in a row
    # (at most 30 s).
    worker_restart_delay_s: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("dynamic", "continuous"):
            raise ValueError(f"unknown batching mode {self.mode!r}")
        if min(self.max_batch_size, self.max_batch_tokens, self.max_batch_cache_tokens) < 1:
            raise ValueError(
                "max_batch_size, max_batch_tokens and max_batch_cache_tokens must be >= 1"
            )
        if self.max_queue < 1:
            raise ValueError("max_queue must be >= 1")
        if self.max_request_cost < 1 or self.max_request_cost > self.max_queue_cost:
            raise ValueError("max_request_cost must be between 1 and max_queue_cost")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        if self.worker_restart_delay_s < 0:
            raise ValueError("worker_restart_delay_s must be >= 0")


def error_for(exc: Exception) -> EngineError:
    """The engine error a request fails with when the runtime raised ``exc``."""
    if isinstance(exc, RuntimeInputError):
        return invalid_request(exc)
    return GenerationFailedError(f"generation failed: {type(exc).__name__}")


def _log_failure(exc: Exception) -> None:
    if isinstance(exc, RuntimeInputError):
        log.info("request rejected by the runtime: %s", type(exc).__name__)
    else:
        log.error("generation failed", exc_info=exc)


@dataclass
class _Continuous:
    """State the continuous loop carries from one iteration to the next."""

    batch: DecodeBatch | None = None


class Scheduler:
    """Queue plus worker loop for one runtime."""

    def __init__(self, runtime: Runtime, config: EngineConfig, observer: EngineObserver) -> None:
        self.runtime = runtime
        self.config = config
        self.observer = observer
        self._cond = threading.Condition()
        self._pending: collections.deque[Job] = collections.deque()
        self._running: dict[Hashable, Job] = {}
        # Jobs taken from the queue and not yet in _running (failed too if the loop breaks).
        self._in_hand: list[Job] = []
        self._stop = False
        # Admitted client requests (queued or running) and their work units.
        self._groups: dict[int, WorkGroup] = {}
        self._reserved_cost = 0
        # Work units of the admitted requests' finished jobs (the rest is the backlog).
        self._finished_cost = 0
        self._turns = Turns()
        self.rate = ServiceRate()
        self.mode: BatchMode = config.mode
        if self.mode == "continuous" and not runtime.supports_positioned:
            log.warning(
                "model %s: batch mode continuous needs a package exported with --positioned "
                "(CPU fp32/int8 variant); using dynamic batching instead",
                runtime.manifest.name,
            )
            self.mode = "dynamic"

    # ---- event-loop side -------------------------------------------------------------
    def reserve(self, group: WorkGroup) -> None:
        """Admit a client request as a whole or raise RequestTooCostlyError (it could
        never fit), QueueFullError (the queue is full, or the request could not finish
        before its deadline behind the work already admitted), DeadlineExceededError (it
        could not finish before its deadline even alone) or DrainingError (never blocks).
        A group without a deadline gets the default timeout's."""
        limit = self.config.max_request_cost
        if group.cost > limit:
            raise RequestTooCostlyError(
                f"the request costs {group.cost} work units (per sentence: decoder rows x "
                f"max_new_tokens + input tokens); at most {limit} (S2S_MAX_REQUEST_COST)",
                cost=group.cost,
                limit=limit,
            )
        now = time.monotonic()
        if group.deadline is None:
            group.deadline = GenerationRequest.deadline_in(self.config.default_timeout_ms, now)
        with self._cond:
            self._refuse_when_full(group.cost, group.deadline, now)
            group.due = due_time(group, now, self.rate.per_second)
            self._groups[group.key] = group
            self._reserved_cost += group.cost

    def check_room(self) -> None:
        """Raise QueueFullError (or DrainingError) when a request could not be admitted
        now whatever its size (the queue holds ``max_queue`` requests, or the backlog
        alone would outlast the default timeout): refused before any of its text work
        (splitting, tokenization) is done."""
        now = time.monotonic()
        with self._cond:
            deadline = GenerationRequest.deadline_in(self.config.default_timeout_ms, now)
            self._refuse_when_full(0, deadline, now)

    @property
    def backlog(self) -> int:
        """Work units admitted and not yet finished."""
        return self._reserved_cost - self._finished_cost

    def _refuse_when_full(self, cost: int, deadline: float | None, now: float) -> None:
        """DrainingError, or QueueFullError when a request of ``cost`` due by ``deadline``
        cannot be admitted now (the caller holds the lock)."""
        if self._stop:
            raise DrainingError("the model is shutting down")
        rate = self.rate.per_second
        if (
            len(self._groups) >= self.config.max_queue
            or self._reserved_cost + cost > self.config.max_queue_cost
        ):
            # Until a slot frees: about one admitted request's share of the backlog.
            share = self.backlog / max(len(self._groups), 1)
            raise QueueFullError(
                f"queue full ({len(self._groups)} requests, {self._reserved_cost} work "
                "units admitted)",
                retry_after_s=max(1, math.ceil(share / rate)) if rate else 1,
            )
        if rate is None or deadline is None:
            return
        if cost / rate > deadline - now:
            # Not even alone: no retry helps, so no 429 (its deadline would pass).
            raise DeadlineExceededError(
                f"deadline too short: the request needs about {cost / rate:.2f} s alone at "
                f"the measured {rate:.0f} work units/s, its deadline allows "
                f"{max(deadline - now, 0):.2f} s"
            )
        needed_s = (self.backlog + cost) / rate
        budget_s = (deadline - now) * ADMISSION_MARGIN
        if needed_s > budget_s:
            raise QueueFullError(
                f"overloaded: the {self.backlog} work units admitted ahead and this "
                f"request's {cost} need about {needed_s:.1f} s at the measured "
                f"{rate:.0f} units/s, more than its deadline allows ({budget_s:.1f} s)",
                retry_after_s=max(1, math.ceil(needed_s - budget_s)),
            )

    def release(self, group: WorkGroup) -> None:
        """The client request is answered: its capacity is free again."""
        with self._cond:
            if self._groups.pop(group.key, None) is not None:
                self._reserved_cost -= group.cost
                self._finished_cost -= group.done
            if not any(g.tenant == group.tenant for g in self._groups.values()):
                self._turns.forget(group.tenant)

    def put(self, job: Job) -> None:
        """Enqueue a job of a reserved request or raise DrainingError (never blocks)."""
        with self._cond:
            if self._stop:
                raise DrainingError("the model is shutting down")
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

    def restart(self) -> None:
        """Make a stopped or dead loop runnable again (called before a new worker starts)."""
        with self._cond:
            self._stop = False

    @property
    def queue_depth(self) -> int:
        """Jobs waiting in the queue."""
        return len(self._pending)

    @property
    def in_flight(self) -> int:
        """Jobs currently in a running batch."""
        return len(self._running)

    @property
    def admitted(self) -> int:
        """Client requests admitted and not yet answered."""
        return len(self._groups)

    def fail_all(self, error: EngineError) -> None:
        """Fail every queued and running job with ``error`` (thread-safe)."""
        with self._cond:
            jobs = [*self._pending, *self._in_hand, *self._running.values()]
            self._pending.clear()
            self._in_hand = []
            self._running.clear()
        for job in jobs:
            job.fail(error)

    # ---- worker side -----------------------------------------------------------------
    def run(self) -> None:
        """The worker thread's body: returns after request_stop(); raises only when a
        failed iteration could not be recovered (the worker dies)."""
        continuous = _Continuous()
        while True:
            try:
                if self.mode == "continuous":
                    go_on = self._continuous_iteration(continuous)
                else:
                    go_on = self._batched_iteration()
            except Exception as exc:
                log.error("scheduler iteration failed; failing its running batch", exc_info=exc)
                self._recover_iteration(exc)
                continuous = _Continuous()
                continue
            if not go_on:
                break
        self.fail_all(DrainingError("the model shut down before this request ran"))

    def _recover_iteration(self, exc: Exception) -> None:
        """After an unexpected failure: fail what was running (its state is unknown)."""
        with self._cond:
            jobs = [*self._in_hand, *self._running.values()]
            self._in_hand = []
            self._running.clear()
        for job in jobs:
            job.fail(GenerationFailedError(f"generation failed: {type(exc).__name__}"))

    def _wait_for_work(self) -> bool:
        """Block until a job is queued (True) or stop was requested (False). Holds no lock."""
        with self._cond:
            while not self._pending and not self._stop:
                self._cond.wait()
            return not self._stop

    def _wait_for_more(self, target_rows: int) -> None:
        """Wait up to max_wait_ms after the oldest job's arrival for ``target_rows`` queued
        decoder rows."""
        if self.config.max_wait_ms <= 0:
            return
        with self._cond:
            if not self._pending:
                return
            until = self._pending[0].enqueued_at + self.config.max_wait_ms / 1000.0
            while sum(j.rows for j in self._pending) < target_rows and not self._stop:
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
                job.fail(RequestCancelledError("cancelled while queued"))
            elif job.expired(now):
                job.fail(DeadlineExceededError("deadline exceeded while queued"))
            else:
                alive.append(job)
        self._pending = alive

    def _start(self, jobs: list[Job], batch_size: int) -> None:
        for job in jobs:
            job.mark_started(batch_size)
            self.observer.on_queue_wait(job.queue_wait_s)

    def _finish(self, job: Job, event: StepEvent | None, sequences: list[list[int]]) -> None:
        reasons = (event.finish_reasons or []) if event is not None else []
        result = job.finish(sequences, reasons)
        self.observer.on_tokens(result.input_tokens, result.generated_tokens)
        cost = job.cost
        self.rate.finished(cost)
        with self._cond:
            group = job.group
            group.done += cost
            if group.key in self._groups:
                self._finished_cost += cost

    def _fits(self, chosen: list[Job], job: Job) -> bool:
        """True when ``job`` fits next to ``chosen`` in rows, padded tokens and cache
        positions."""
        batch = [*chosen, job]
        config = self.config
        rows = sum(j.rows for j in batch)
        tokens = padded_tokens([(j.input_len, j.rows) for j in batch])
        cache = cache_tokens(
            [(j.input_len, j.rows, j.request.options.max_new_tokens) for j in batch]
        )
        return (
            rows <= config.max_batch_size
            and tokens <= config.max_batch_tokens
            and cache <= config.max_batch_cache_tokens
        )

    # ---- dynamic ---------------------------------------------------------------------
    def _select(self) -> list[Job]:
        """Pick the next batch from the queue (caller holds the lock)."""
        self._drop_dead()
        if not self._pending:
            return []
        order = self._turns.order(self._pending)
        head = order[0]
        chosen = self._fill(head, order)
        self._turns.served(chosen)
        ids = {j.key for j in chosen}
        self._pending = collections.deque(j for j in self._pending if j.key not in ids)
        return chosen

    def _fill(self, head: Job, order: list[Job]) -> list[Job]:
        """The batch that starts with ``head``: jobs with its options (one generate call
        takes one option set), nearest lengths first among the next few turns (a window,
        so that length bucketing cannot skip a request's turn for long)."""
        window = order[1 : 1 + 4 * self.config.max_batch_size]
        candidates = [j for j in window if j.request.options == head.request.options]
        candidates.sort(key=lambda j: abs(j.input_len - head.input_len))
        chosen = [head]  # the head always runs, however large it is
        for job in candidates:
            if sum(j.rows for j in chosen) >= self.config.max_batch_size:
                break
            if self._fits(chosen, job):
                chosen.append(job)
        return chosen

    def _batched_iteration(self) -> bool:
        if not self._wait_for_work():
            return False
        self._wait_for_more(self.config.max_batch_size)
        busy_from = time.monotonic()
        with self._cond:
            jobs = self._select()
            for job in jobs:
                self._running[job.key] = job
        if not jobs:
            return True
        # No try/finally: if this raises, the jobs stay in _running for the loop's guard
        # to fail them.
        self._start(jobs, len(jobs))
        if any(job.stream for job in jobs):
            self._step_through(jobs)
        else:
            self._generate(jobs)
        with self._cond:
            for job in jobs:
                self._running.pop(job.key, None)
        self.rate.busy(time.monotonic() - busy_from)
        return True

    def _step_through(self, jobs: list[Job]) -> None:
        """Decode a batch that holds a stream with the step API, so that its tokens go
        out as they are made (one generate call would send them all at the end)."""
        batch = self.runtime.new_batch()
        for job in jobs:
            try:
                batch.add(job.key, list(job.request.input_ids), job.request.options)
            except Exception as exc:
                _log_failure(exc)
                with self._cond:
                    self._running.pop(job.key, None)
                job.fail(error_for(exc))
        while True:
            with self._cond:
                if not self._running:
                    return
            if not self._step(batch):
                return

    def _step(self, batch: DecodeBatch) -> bool:
        """One decode step of the running requests: deliver its tokens and finished
        requests, drop cancelled and expired ones. False when the step failed (its
        requests were isolated by ``_recover_step``; the batch is unusable)."""
        self.observer.on_batch(len(self._running))
        started = time.monotonic()
        try:
            events = batch.step()
        except Exception as exc:
            log.error("decode step failed; isolating its requests", exc_info=exc)
            self._recover_step(exc)
            return False
        self.observer.on_step(time.monotonic() - started)
        with batched_posts():  # one event-loop wake-up for the whole step
            self._deliver(events)
            self._reap(batch)
        return True

    def _generate(self, jobs: list[Job]) -> None:
        """Run one generate call for ``jobs``; on failure isolate the failing requests."""
        jobs = [j for j in jobs if not j.cancelled]
        if not jobs:
            return
        self.observer.on_batch(len(jobs))
        started = time.monotonic()
        try:
            outputs = self.runtime.generate_outputs(
                [list(j.request.input_ids) for j in jobs], jobs[0].request.options
            )
        except Exception as exc:
            if len(jobs) > 1:
                log.warning(
                    "batch of %d failed (%s); retrying one by one", len(jobs), type(exc).__name__
                )
                for job in jobs:
                    self._generate([job])
            else:
                _log_failure(exc)
                jobs[0].fail(error_for(exc))
            return
        self.observer.on_step(time.monotonic() - started)
        with batched_posts():
            for job, output in zip(jobs, outputs, strict=True):
                if job.expired():
                    job.fail(DeadlineExceededError("deadline exceeded while running"))
                    continue
                event = StepEvent(job.key, [], True, output.sequences, output.finish_reasons)
                self._finish(job, event, output.sequences)

    # ---- continuous ------------------------------------------------------------------
    def _admit(self) -> list[Job]:
        """Queued jobs that fit into the running batch now (caller holds the lock)."""
        self._drop_dead()
        batch = list(self._running.values())
        admitted: list[Job] = []
        for job in self._turns.order(self._pending):
            # The first joiner of an empty batch always fits, however large it is.
            if (batch or admitted) and not self._fits(batch + admitted, job):
                break
            admitted.append(job)
        self._turns.served(admitted)
        ids = {j.key for j in admitted}
        self._pending = collections.deque(j for j in self._pending if j.key not in ids)
        self._in_hand = list(admitted)
        return admitted

    def _continuous_iteration(self, state: _Continuous) -> bool:
        with self._cond:
            idle = not self._running
        if idle:
            if not self._wait_for_work():
                return False
            self._wait_for_more(self.config.max_batch_size)
        busy_from = time.monotonic()
        with self._cond:
            if self._stop:
                return False
            joiners = self._admit()
        if state.batch is None:
            state.batch = self.runtime.new_positioned_batch()
        batch = state.batch
        self._join(batch, joiners)
        with self._cond:
            if not self._running:
                return True
        if not self._step(batch):
            state.batch = None
        self.rate.busy(time.monotonic() - busy_from)
        return True

    def _join(self, batch: DecodeBatch, joiners: list[Job]) -> None:
        added: list[Job] = []
        for job in joiners:
            try:
                batch.add(job.key, list(job.request.input_ids), job.request.options)
            except Exception as exc:
                _log_failure(exc)
                job.fail(error_for(exc))
                continue
            added.append(job)
        with self._cond:
            for job in added:
                self._running[job.key] = job
            self._in_hand = []
            size = len(self._running)
        self._start(added, size)

    def _deliver(self, events: list[StepEvent]) -> None:
        for event in events:
            job = self._running.get(event.key)
            if job is None:
                continue
            if event.token_ids:
                job.emit_tokens(list(event.token_ids))
            if event.finished:
                with self._cond:
                    self._running.pop(job.key, None)
                self._finish(job, event, event.sequences or [])

    def _reap(self, batch: DecodeBatch) -> None:
        """Remove cancelled and expired requests from the running batch."""
        now = time.monotonic()
        for key, job in list(self._running.items()):
            if job.cancelled or job.expired(now):
                batch.remove(key)
                with self._cond:
                    self._running.pop(key, None)
                if job.cancelled:
                    job.fail(RequestCancelledError("cancelled while running"))
                else:
                    job.fail(DeadlineExceededError("deadline exceeded while running"))

    def _recover_step(self, exc: Exception) -> None:
        """After a failed step: fail the streaming requests, rerun the others alone."""
        with self._cond:
            jobs = list(self._running.values())
            self._running.clear()
        for job in jobs:
            if job.cancelled:
                job.fail(RequestCancelledError("cancelled"))
            elif job.stream:
                job.fail(error_for(exc))
            else:
                self._generate([job])
