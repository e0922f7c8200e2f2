"""What a request costs a batch: decoder rows, padded encoder tokens, cache positions.

A beam-search request occupies ``num_beams`` decoder rows, a sampled one
``num_return_sequences``; the encoder output and the cross-attention caches are as long
as the batch's longest input for every row. ``max_batch_size`` counts rows,
``max_batch_tokens`` padded tokens (longest input x rows), so a 16-beam request costs 16,
and ``max_batch_cache_tokens`` the key/value cache positions the batch may come to hold
(rows x (longest input + longest max_new_tokens): every row keeps cross-attention
entries for the padded source and up to max_new_tokens self-attention entries), the
budget that bounds a step batch's memory (TGI's ``max_batch_total_tokens``). Where a
request's beams share one copy of the cross-attention K/V (CPU, always in the service)
the budget overstates a beam request's memory; it stays per row because the CUDA backend
and cohorts of mixed beam widths still hold one copy per row.

Admission is per client request (:class:`WorkGroup`, every sentence of it): a request is
accepted or refused as a whole, its cost is :func:`cost_of` work units, the queue holds
at most ``max_queue`` requests and ``max_queue_cost`` units, a request over
``max_request_cost`` can never run (413), and a request that could not finish before its
deadline at the measured :class:`ServiceRate`, behind the work already admitted, is
refused at once (429) rather than accepted to time out. :class:`Turns` orders the queue:
tenants (API keys) take turns, and a tenant's requests run by due time.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from service.runtime import ResolvedOptions


def rows_of(options: ResolvedOptions) -> int:
    """Decoder rows one request with ``options`` occupies."""
    return options.num_beams if options.is_beam else options.num_return_sequences


def padded_tokens(costs: Iterable[tuple[int, int]]) -> int:
    """Padded tokens of a batch of (input length, rows) requests: longest input x rows."""
    items = list(costs)
    if not items:
        return 0
    return max(length for length, _ in items) * sum(rows for _, rows in items)


def cache_tokens(costs: Iterable[tuple[int, int, int]]) -> int:
    """Key/value cache positions a batch of (input length, rows, max_new_tokens) requests
    may reach: rows x (longest input + longest max_new_tokens)."""
    items = list(costs)
    if not items:
        return 0
    longest_input = max(length for length, _, _ in items)
    longest_output = max(new for _, _, new in items)
    return sum(rows for _, rows, _ in items) * (longest_input + longest_output)


# ---- requests as admission units --------------------------------------------------------
#: Work units: every decoder row may run for max_new_tokens steps, and every input token
#: is encoded once. A one-sentence greedy request with max_new_tokens 128 costs ~140.
def cost_of(options: ResolvedOptions, input_lengths: Iterable[int]) -> int:
    """Work units of one request: per input, rows x max_new_tokens + its input tokens."""
    per_input = rows_of(options) * options.max_new_tokens
    return sum(per_input + length for length in input_lengths)


_group_keys = itertools.count(1)


@dataclass(eq=False)
class WorkGroup:
    """One client request: every engine job of it shares this group.

    The scheduler admits (or refuses) a group as a whole, counts queue capacity in
    groups and their ``cost``, and orders the queue by group (see :class:`Turns`).
    ``deadline``: absolute ``time.monotonic()`` time the whole request must be answered by
    (None: the engine's default timeout, set on admission). ``due``: the group's place in
    its tenant's order, set on admission. ``done``: work units of its finished jobs.
    ``abandoned``: the request itself gave up the rest of its jobs (a sibling failed),
    which is no client disconnect.
    """

    cost: int
    tenant: str = ""
    deadline: float | None = None
    due: float = 0.0
    done: int = 0
    abandoned: bool = False
    key: int = field(default_factory=lambda: next(_group_keys))
    _reported: set[str] = field(default_factory=set)

    def first_report(self, reason: str) -> bool:
        """True the first time ``reason`` is reported for this request (metrics count
        requests, not their sentences)."""
        if reason in self._reported:
            return False
        self._reported.add(reason)
        return True


#: Work units a second assumed for ordering before any rate is measured.
_PRIOR_UNITS_PER_S = 1000.0


def due_time(group: WorkGroup, now: float, units_per_s: float | None) -> float:
    """When ``group``, admitted at ``now``, should be done: the earlier of its deadline and
    the time it would finish if it ran alone from now at the service rate. Smaller
    requests are due sooner than bigger ones admitted at the same time, and a request
    admitted earlier sooner than an equal one admitted later."""
    alone = now + group.cost / (units_per_s or _PRIOR_UNITS_PER_S)
    return alone if group.deadline is None else min(group.deadline, alone)


class ServiceRate:
    """Work units (:func:`cost_of`) the worker finishes a second while it has work.

    Measured over windows of at least ``window_s`` busy seconds (idle time is never
    counted); :attr:`per_second` is None until the first window ends, then the lower of
    the last window's rate and an exponential moving average: a slowdown (a burst of HTTP
    work on the same cores, a noisy neighbour) is believed at once, a speed-up gradually,
    so admission errs towards refusing. Written by the worker thread only.
    """

    def __init__(self, window_s: float = 0.5, weight: float = 0.3) -> None:
        self.window_s = window_s
        self.weight = weight
        self.per_second: float | None = None
        self._average: float | None = None
        self._units = 0
        self._busy_s = 0.0

    def finished(self, units: int) -> None:
        """Credit the work units of a finished job."""
        self._units += units

    def busy(self, seconds: float) -> None:
        """Count ``seconds`` the worker spent running batches; may close a window."""
        self._busy_s += seconds
        if self._busy_s < self.window_s:
            return
        sample = self._units / self._busy_s
        self._units, self._busy_s = 0, 0.0
        if sample <= 0:
            return  # nothing finished (one long batch): no evidence either way
        average = self._average
        self._average = (
            sample if average is None else (1 - self.weight) * average + self.weight * sample
        )
        self.per_second = min(sample, self._average)


class Grouped(Protocol):
    """A queued job: what the fair order needs of it."""

    @property
    def group(self) -> WorkGroup: ...


J = TypeVar("J", bound=Grouped)


class Turns:
    """Whose turn it is. Tenants (API keys) take turns, least recently served first (a new
    one joins at the back); within a tenant the request due first goes first
    (:func:`due_time`: earliest deadline, else shortest estimated finish), ties to the
    earlier admitted; within a request first in first out. So an admitted request runs to
    its end instead of every queued request finishing late together, and a small request
    is not queued behind a big one. Not thread-safe (the scheduler's lock)."""

    def __init__(self) -> None:
        self._tenants: collections.OrderedDict[str, None] = collections.OrderedDict()

    def order(self, pending: Iterable[J]) -> list[J]:
        """``pending`` in turn order: one job of each tenant in turn, each tenant's jobs by
        their request's due time, then admission, then queue order."""
        by_tenant: dict[str, list[J]] = {}
        for job in pending:
            self._tenants.setdefault(job.group.tenant, None)
            by_tenant.setdefault(job.group.tenant, []).append(job)
        queues = [
            collections.deque(sorted(by_tenant[t], key=lambda j: (j.group.due, j.group.key)))
            for t in self._tenants
            if t in by_tenant
        ]
        out: list[J] = []
        while queues:
            for queue in list(queues):
                out.append(queue.popleft())
                if not queue:
                    queues.remove(queue)
        return out

    def served(self, jobs: Iterable[Grouped]) -> None:
        """Send the tenants of ``jobs`` to the back of the turns."""
        for job in jobs:
            tenant = job.group.tenant
            self._tenants.pop(tenant, None)
            self._tenants[tenant] = None

    def forget(self, tenant: str) -> None:
        """Drop a tenant that has nothing left."""
        self._tenants.pop(tenant, None)
