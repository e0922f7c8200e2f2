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
``max_request_cost`` can never run (413), and :class:`Turns` orders the queue so that
tenants (API keys) and the requests of a tenant take turns.
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
    groups and their ``cost``, and takes turns between tenants (API keys) and between the
    groups of a tenant. ``abandoned``: the request itself gave up the rest of its jobs (a
    sibling failed), which is no client disconnect.
    """

    cost: int
    tenant: str = ""
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


class Grouped(Protocol):
    """A queued job: what the fair order needs of it."""

    @property
    def group(self) -> WorkGroup: ...


J = TypeVar("J", bound=Grouped)


class Turns:
    """Whose turn it is: tenants, and the groups of each tenant, least recently served
    first (a new one joins at the back). Not thread-safe (the scheduler's lock)."""

    def __init__(self) -> None:
        self._tenants: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._groups: collections.OrderedDict[int, None] = collections.OrderedDict()

    def order(self, pending: Iterable[J]) -> list[J]:
        """``pending`` in fair order: round-robin over tenants, within a tenant over its
        groups, within a group first in first out."""
        by_tenant: dict[str, dict[int, collections.deque[J]]] = {}
        for job in pending:
            group = job.group
            self._tenants.setdefault(group.tenant, None)
            self._groups.setdefault(group.key, None)
            by_tenant.setdefault(group.tenant, {}).setdefault(
                group.key, collections.deque()
            ).append(job)
        rank = {key: i for i, key in enumerate(self._groups)}
        rotations: list[collections.deque[collections.deque[J]]] = [
            collections.deque(
                queue for _, queue in sorted(by_tenant[t].items(), key=lambda kv: rank[kv[0]])
            )
            for t in self._tenants
            if t in by_tenant
        ]
        out: list[J] = []
        while rotations:
            for rotation in list(rotations):
                queue = rotation[0]
                out.append(queue.popleft())
                if queue:
                    rotation.rotate(-1)
                else:
                    rotation.popleft()
                if not rotation:
                    rotations.remove(rotation)
        return out

    def served(self, jobs: Iterable[Grouped]) -> None:
        """Send the tenants and groups of ``jobs`` to the back of their turns."""
        for job in jobs:
            group = job.group
            self._tenants.pop(group.tenant, None)
            self._tenants[group.tenant] = None
            self._groups.pop(group.key, None)
            self._groups[group.key] = None

    def forget(self, group: WorkGroup, tenant_still_queued: bool) -> None:
        """Drop a finished group (and its tenant when it has nothing left)."""
        self._groups.pop(group.key, None)
        if not tenant_still_queued:
            self._tenants.pop(group.tenant, None)
