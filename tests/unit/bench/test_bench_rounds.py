"""Interleaved rounds: the run order and the folding of per-round rows."""

from __future__ import annotations

from typing import Any

import pytest

from bench.rounds import fold_rounds, lead_verdict, round_order


def _row(
    label: str, backend: str, round_index: int, speed: float, batch: int = 8
) -> dict[str, Any]:
    precision, threads = label.split()[1], int(label.split()[2][1:])
    return {
        "label": label,
        "backend": backend,
        "precision": precision,
        "threads": threads,
        "model": "marian-full",
        "search": "greedy",
        "stop": "fixed",
        "batch_size": batch,
        "round": round_index,
        "tokens_per_s": speed,
        "latency_ms_p50": 1000.0 / speed,
        "peak_rss_mb": 100.0,
    }


def test_round_order_alternates_so_no_backend_always_runs_first() -> None:
    specs = ["a", "b", "c"]
    assert round_order(specs, 0) == ["a", "b", "c"]
    assert round_order(specs, 1) == ["c", "b", "a"]
    assert round_order(specs, 2) == ["a", "b", "c"]


def test_ratios_are_taken_within_a_round_against_the_faster_ct2_setting() -> None:
    # Round 0 is a fast machine, round 1 a slow one: ours leads in both rounds, although
    # ours' slow round is below ct2's fast one (a cross-round ratio would say otherwise).
    rows = [
        _row("ours int8 t2", "ours", 0, 600.0),
        _row("ct2 int8 t1", "ct2", 0, 400.0),
        _row("ct2 int8 t2", "ct2", 0, 500.0),
        _row("ours int8 t2", "ours", 1, 450.0),
        _row("ct2 int8 t1", "ct2", 1, 300.0),
        _row("ct2 int8 t2", "ct2", 1, 350.0),
        _row("ours int8 t2", "ours", 2, 550.0),
        _row("ct2 int8 t1", "ct2", 2, 350.0),
        _row("ct2 int8 t2", "ct2", 2, 450.0),
    ]
    folded = {r["label"]: r for r in fold_rounds(rows)}
    ours = folded["ours int8 t2"]
    assert ours["rounds"] == 3
    assert ours["tokens_per_s"] == 550.0
    assert (ours["tokens_per_s_min"], ours["tokens_per_s_max"]) == (450.0, 600.0)
    assert ours["ratio_ct2_int8_rounds"] == pytest.approx([1.2, 450 / 350, 550 / 450])
    assert ours["ratio_ct2_int8_min"] == pytest.approx(1.2)
    assert lead_verdict(ours) == "lead in every round"
    assert "round" not in ours


def test_a_lead_that_one_round_contradicts_is_not_a_lead() -> None:
    rows = [
        _row("ours int8 t1", "ours", 0, 520.0),
        _row("ct2 int8 t1", "ct2", 0, 500.0),
        _row("ours int8 t1", "ours", 1, 480.0),
        _row("ct2 int8 t1", "ct2", 1, 500.0),
    ]
    ours = next(r for r in fold_rounds(rows) if r["backend"] == "ours")
    assert lead_verdict(ours) == "no lead: the rounds disagree"
    behind = [_row("ours int8 t1", "ours", 0, 400.0), _row("ct2 int8 t1", "ct2", 0, 500.0)]
    assert lead_verdict(fold_rounds(behind)[0]) == "behind in every round"
    alone = fold_rounds([_row("ours int8 t1", "ours", 0, 400.0)])[0]
    assert lead_verdict(alone) == "no CTranslate2 int8 in the same rounds"


def test_failed_workers_pass_through_once_and_cells_stay_apart() -> None:
    rows = [
        _row("ours int8 t1", "ours", 0, 400.0, batch=8),
        _row("ours int8 t1", "ours", 0, 700.0, batch=32),
        {"label": "ct2:int8:1", "error": "worker exit status 1", "round": 0},
        {"label": "ct2:int8:1", "error": "worker exit status 1", "round": 1},
    ]
    folded = fold_rounds(rows)
    speeds = sorted(r["tokens_per_s"] for r in folded if "tokens_per_s" in r)
    assert speeds == [400.0, 700.0]
    errors = [r for r in folded if "error" in r]
    assert errors == [{"label": "ct2:int8:1", "error": "worker exit status 1"}]


def test_report_shows_the_spread_and_judges_targets_on_the_worst_round() -> None:
    from bench.report import engine_tables, engine_targets

    rows = [
        _row("ours int8 t2", "ours", 0, 700.0),
        _row("ct2 int8 t2", "ct2", 0, 500.0),
        _row("ours int8 t2", "ours", 1, 560.0),
        _row("ct2 int8 t2", "ct2", 1, 500.0),
    ]
    document = {
        "model": "marian-full",
        "max_new_tokens": 32,
        "rounds": 2,
        "rows": [{**r, "identical_to_ref": 1.0} for r in fold_rounds(rows)],
    }
    table = engine_tables(document)
    assert "630 [560–700] (1.26× [1.12–1.40], –)" in table
    assert "over 2 interleaved rounds" in table
    (target,) = engine_targets(document)
    # The median (1.26x) and the best round (1.40x) do not count: the worst round is 1.12x.
    assert "target ≥ 1.3×: missed; lead in every round" in target
