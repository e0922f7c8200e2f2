"""Which int8 candidate the export keeps (pure selection rule, no models)."""

from __future__ import annotations

from typing import Any

from export.pipeline import INT8_AGREEMENT_TOLERANCE, choose_int8


def _result(greedy: float, beam: float) -> dict[str, Any]:
    return {"greedy_token_agreement": greedy, "beam_token_agreement": beam}


def test_the_more_quantized_candidate_wins_within_tolerance() -> None:
    assert choose_int8([_result(0.99, 0.985), _result(1.0, 1.0)], 0.02) == 0
    assert choose_int8([_result(1.0, 1.0), _result(1.0, 1.0)], 0.0) == 0


def test_a_measurably_less_faithful_candidate_loses() -> None:
    assert choose_int8([_result(0.95, 1.0), _result(1.0, 1.0)], 0.02) == 1
    assert choose_int8([_result(1.0, 0.90), _result(1.0, 1.0)], 0.02) == 1
    # Zero tolerance: any extra agreement decides.
    assert choose_int8([_result(0.999, 1.0), _result(1.0, 1.0)], 0.0) == 1


def test_the_best_candidate_is_kept_even_when_later() -> None:
    assert choose_int8([_result(0.5, 0.6), _result(0.7, 0.9), _result(0.8, 0.95)], 0.0) == 2
    assert 0 < INT8_AGREEMENT_TOLERANCE < 0.1
