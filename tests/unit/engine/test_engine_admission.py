"""service/engine/admission.py: batch budgets (padded tokens, cache positions), the
measured service rate, due times and the turn order."""

from __future__ import annotations

from dataclasses import dataclass

from service.engine.admission import (
    ServiceRate,
    Turns,
    WorkGroup,
    cache_tokens,
    due_time,
    padded_tokens,
)


def test_padded_tokens_are_longest_input_times_rows() -> None:
    assert padded_tokens([]) == 0
    assert padded_tokens([(10, 1), (4, 4)]) == 10 * 5


def test_cache_tokens_pad_both_the_source_and_the_output() -> None:
    assert cache_tokens([]) == 0
    # One greedy row of 10 input tokens and 5 new ones holds 15 positions.
    assert cache_tokens([(10, 1, 5)]) == 15
    # Every row is padded to the longest input and the longest max_new_tokens, even
    # when those come from different requests.
    assert cache_tokens([(10, 1, 5), (3, 4, 20)]) == 5 * (10 + 20)


def test_the_service_rate_is_unknown_until_a_busy_window_closes() -> None:
    rate = ServiceRate(window_s=1.0, weight=0.5)
    rate.finished(400)
    rate.busy(0.5)
    assert rate.per_second is None  # half a window: no estimate yet
    rate.finished(400)
    rate.busy(0.5)
    assert rate.per_second == 800.0


def test_a_slowdown_is_believed_at_once_a_speedup_gradually() -> None:
    rate = ServiceRate(window_s=1.0, weight=0.5)
    rate.finished(800)
    rate.busy(1.0)
    rate.finished(1200)
    rate.busy(1.0)
    assert rate.per_second == 0.5 * 800.0 + 0.5 * 1200.0  # the average, below the sample
    rate.finished(300)
    rate.busy(1.0)
    assert rate.per_second == 300.0  # the last window, below the average


def test_a_window_with_nothing_finished_keeps_the_estimate() -> None:
    rate = ServiceRate(window_s=1.0)
    rate.finished(500)
    rate.busy(1.0)
    rate.busy(1.0)  # one long batch still running: no evidence the rate fell to 0
    assert rate.per_second == 500.0


def test_a_request_is_due_when_it_would_finish_alone_or_by_its_deadline() -> None:
    big, small = WorkGroup(cost=1000), WorkGroup(cost=100)
    assert due_time(big, now=10.0, units_per_s=100.0) == 20.0
    assert due_time(small, now=11.0, units_per_s=100.0) == 12.0  # later, yet due first
    urgent = WorkGroup(cost=1000, deadline=12.5)
    assert due_time(urgent, now=10.0, units_per_s=100.0) == 12.5


@dataclass
class _Job:
    group: WorkGroup
    name: str


def _jobs(group: WorkGroup, name: str, n: int) -> list[_Job]:
    return [_Job(group, f"{name}{i}") for i in range(n)]


def test_a_tenants_requests_run_by_due_time_each_to_its_end() -> None:
    first = WorkGroup(cost=600, due=6.0)
    second = WorkGroup(cost=600, due=7.0)
    small = WorkGroup(cost=100, due=2.0)
    queued = [*_jobs(first, "a", 3), *_jobs(second, "b", 3), *_jobs(small, "s", 1)]
    order = [j.name for j in Turns().order(queued)]
    # Not interleaved (a0 b0 a1 b1 ...): every request finishes as early as it can.
    assert order == ["s0", "a0", "a1", "a2", "b0", "b1", "b2"]


def test_tenants_take_turns_whatever_their_due_times() -> None:
    turns = Turns()
    flood = WorkGroup(cost=100, tenant="flood", due=1.0)
    other = WorkGroup(cost=100, tenant="other", due=50.0)
    queued = [*_jobs(flood, "f", 3), *_jobs(other, "o", 2)]
    assert [j.name for j in turns.order(queued)] == ["f0", "o0", "f1", "o1", "f2"]
    turns.served(queued[:1])  # the flood's tenant was served last: the other goes first
    assert [j.name for j in turns.order(queued)][:2] == ["o0", "f0"]
