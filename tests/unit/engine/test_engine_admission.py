"""Batch budgets of service/engine/admission.py: padded tokens and cache positions."""

from __future__ import annotations

from service.engine.admission import cache_tokens, padded_tokens


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
