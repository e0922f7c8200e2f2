"""Request state shared by the event loop (API side) and the engine's worker thread.

A :class:`Job` is created on the event loop thread by ``Engine.submit``/``Engine.stream``
and handed to the worker thread. The worker only ever *reads* the request, checks the
cancellation flag and deadline between steps, and posts events back to the job's
``asyncio.Queue`` with ``loop.call_soon_threadsafe``; it never touches the loop otherwise.
Inside :func:`batched_posts` (the scheduler wraps each step's deliveries in it) the posts of
a step reach each loop in one call: one wake-up of the event loop per decode step, not one
per streamed token of every running request.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from service.engine.admission import WorkGroup, cost_of, rows_of
from service.engine.ports import Detokenizer
from service.runtime import FinishReason, ResolvedOptions

_keys = itertools.count(1)
# Posts held back by batched_posts() on this thread (None: post at once).
_held = threading.local()


@contextlib.contextmanager
def batched_posts() -> Iterator[None]:
    """Hold the events jobs post on this thread until the block ends, then hand them to
    each event loop in one ``call_soon_threadsafe`` (in order: a job's events stay in
    the order they were posted). Nested blocks join the outer one."""
    if getattr(_held, "posts", None) is not None:
        yield
        return
    _held.posts = []
    try:
        yield
    finally:
        posts: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event], Event]] = _held.posts
        _held.posts = None
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue[Event], Event]]] = {}
        for loop, queue, event in posts:
            by_loop.setdefault(loop, []).append((queue, event))
        for loop, pairs in by_loop.items():
            # A closed event loop (process shutting down) means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_put_all, pairs)


def _put_all(pairs: list[tuple[asyncio.Queue[Event], Event]]) -> None:
    for queue, event in pairs:
        queue.put_nowait(event)


@dataclass
class GenerationRequest:
    """One generation: encoder input ids, resolved runtime options and a deadline.

    ``deadline`` is an absolute ``time.monotonic()`` value (None: the engine's default
    timeout applies). ``request_id`` is for logs only. A streamed request with a
    ``detokenizer`` gets its text pieces detokenized on the worker thread.
    """

    input_ids: Sequence[int]
    options: ResolvedOptions
    deadline: float | None = None
    request_id: str = ""
    detokenizer: Detokenizer | None = None
    # The client request this generation belongs to (None: a request of its own).
    group: WorkGroup | None = None

    @staticmethod
    def deadline_in(timeout_ms: float | None, now: float | None = None) -> float | None:
        """The absolute monotonic deadline ``timeout_ms`` after ``now`` (default: the
        current ``time.monotonic()``); None stays None."""
        if timeout_ms is None:
            return None
        return (time.monotonic() if now is None else now) + timeout_ms / 1000.0


@dataclass
class GenerationResult:
    """What one request produced."""

    sequences: list[list[int]]
    input_tokens: int
    generated_tokens: int
    queue_wait_s: float
    batch_size: int
    finish_reasons: list[FinishReason] = field(default_factory=list)


@dataclass
class StreamChunk:
    """One piece of a streamed generation: new token ids and their text (when the request
    has a detokenizer), and the result on the last one."""

    token_ids: list[int]
    result: GenerationResult | None = None
    text: str = ""


@dataclass
class _Tokens:
    ids: list[int]
    text: str = ""


@dataclass
class _Done:
    result: GenerationResult


@dataclass
class _Failed:
    error: BaseException


Event = _Tokens | _Done | _Failed


@dataclass
class Job:
    """Engine-internal state of one accepted request."""

    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    stream: bool
    key: int = field(default_factory=lambda: next(_keys))
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    batch_size: int = 0
    emitted: int = 0
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    _cancelled: threading.Event = field(default_factory=threading.Event)
    _finished: bool = False

    @property
    def input_len(self) -> int:
        """Number of encoder input tokens."""
        return len(self.request.input_ids)

    @property
    def group(self) -> WorkGroup:
        """The client request this job belongs to (set by the engine on accept)."""
        assert self.request.group is not None
        return self.request.group

    @property
    def cost(self) -> int:
        """Work units of this job alone."""
        return cost_of(self.request.options, [self.input_len])

    @property
    def rows(self) -> int:
        """Decoder rows the request occupies (beams or returned sequences)."""
        return rows_of(self.request.options)

    @property
    def cancelled(self) -> bool:
        """True once the consumer gave up (client gone or deadline passed)."""
        return self._cancelled.is_set()

    @property
    def finished(self) -> bool:
        """True once the worker posted a final event."""
        return self._finished

    def cancel(self) -> None:
        """Ask the worker to drop this job at its next check (thread-safe)."""
        self._cancelled.set()

    def expired(self, now: float | None = None) -> bool:
        """True when the deadline has passed."""
        deadline = self.request.deadline
        return deadline is not None and (now if now is not None else time.monotonic()) >= deadline

    def mark_started(self, batch_size: int) -> None:
        """Record that the job left the queue and joined a batch of ``batch_size``."""
        self.started_at = time.monotonic()
        self.batch_size = batch_size

    @property
    def queue_wait_s(self) -> float:
        """Seconds between enqueue and start (0 if never started)."""
        return 0.0 if self.started_at is None else self.started_at - self.enqueued_at

    # Worker-side delivery: each call posts one event to the consumer's queue.
    def emit_tokens(self, ids: list[int], final: bool = False) -> None:
        """Post newly generated token ids and their text (streaming jobs only)."""
        if not self.stream or self._finished:
            return
        text = ""
        detokenizer = self.request.detokenizer
        if detokenizer is not None:
            text = "".join(detokenizer.push(t) for t in ids)
            if final:
                text += detokenizer.flush()
        if ids or text:
            self.emitted += len(ids)
            self._post(_Tokens(list(ids), text))

    def finish(
        self, sequences: list[list[int]], finish_reasons: Sequence[FinishReason] = ()
    ) -> GenerationResult:
        """Post the final result and return it.

        A stream first gets whatever part of the first sequence it has not seen (all of it
        for beam search, which only reports finished sequences).
        """
        if self.stream:
            self.emit_tokens(list(sequences[0][self.emitted :]) if sequences else [], final=True)
        result = GenerationResult(
            sequences=[list(s) for s in sequences],
            input_tokens=self.input_len,
            generated_tokens=sum(len(s) for s in sequences),
            queue_wait_s=self.queue_wait_s,
            batch_size=self.batch_size,
            finish_reasons=list(finish_reasons),
        )
        if not self._finished:
            self._finished = True
            self._post(_Done(result))
        return result

    def fail(self, error: BaseException) -> None:
        """Post a failure; the consumer raises it."""
        if not self._finished:
            self._finished = True
            self._post(_Failed(error))

    def _post(self, event: Event) -> None:
        held = getattr(_held, "posts", None)
        if held is not None:
            held.append((self.loop, self.events, event))
            return
        # A closed event loop (process shutting down) means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
