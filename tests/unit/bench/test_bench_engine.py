"""Engine benchmark harness: cells, timing, agreement, and one real worker run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import pytest

from bench.backends import Spec
from bench.engine import Cell, Plan, agreement, make_cells, run_worker, texts_per_cell, time_cell


def test_cells_cap_beam_batches_and_validate() -> None:
    cells = make_cells(["greedy", "beam4"], ["fixed"], [1, 8, 64], 8, 1, max_beam_batch=8)
    assert [(c.search, c.batch_size) for c in cells] == [
        ("greedy", 1),
        ("greedy", 8),
        ("greedy", 64),
        ("beam4", 1),
        ("beam4", 8),
    ]
    assert cells[2].texts == 64 and cells[0].texts == 8
    with pytest.raises(ValueError):
        make_cells(["beam9"], ["fixed"], [1], 8, 1)
    with pytest.raises(ValueError):
        make_cells(["greedy"], ["sometimes"], [1], 8, 1)


def test_texts_per_cell() -> None:
    assert texts_per_cell(1, 16, 1) == 16
    assert texts_per_cell(64, 16, 2) == 128


def test_time_cell_counts_tokens_batches_and_budget() -> None:
    calls: list[int] = []

    def generate(batch: list[list[int]]) -> list[list[int]]:
        calls.append(len(batch))
        return [[1, 2, 3] for _ in batch]

    inputs = [[5]] * 10
    result = time_cell(generate, inputs, batch_size=4, repeats=3, budget_s=1e9, max_warmups=1)
    assert calls == [4] + [4, 4, 2] * 3  # warm-up on the first batch, then 3 passes
    assert result["warmup_calls"] == 1 and result["minor_faults_per_pass"] >= 0
    assert result["tokens"] == 30 and result["passes"] == 3
    assert result["tokens_per_s"] == pytest.approx(30 / result["seconds"])
    assert len(result["outputs"]) == 10
    calls.clear()
    result = time_cell(generate, inputs, batch_size=4, repeats=3, budget_s=0.0, max_warmups=1)
    assert result["passes"] == 1  # budget spent after the first pass


def test_time_cell_warms_up_until_two_calls_agree() -> None:
    # The first calls pay start-up costs (slow, slow-ish), then the speed settles.
    delays = iter([0.08, 0.04, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02])

    def generate(batch: list[list[int]]) -> list[list[int]]:
        time.sleep(next(delays, 0.02))
        return [[1] for _ in batch]

    result = time_cell(generate, [[5]] * 4, batch_size=4, repeats=1, budget_s=1e9, steady=0.2)
    assert result["warmup_calls"] == 4  # 0.08, 0.04, 0.02 differ; 0.02 then 0.02 agree
    capped = time_cell(
        generate, [[5]] * 4, batch_size=4, repeats=1, budget_s=1e9, max_warmups=2, steady=0.0
    )
    assert capped["warmup_calls"] == 2


def test_agreement_uses_label_prefix_and_drops_outputs() -> None:
    def row(label: str, outputs: list[list[int]]) -> dict[str, object]:
        return {
            "label": label,
            "search": "greedy",
            "stop": "fixed",
            "batch_size": 2,
            "outputs": outputs,
        }

    rows = [
        row("torch fp32 t2", [[1], [2]]),
        row("ours int8 t2", [[1], [3]]),
        {"label": "x", "error": "boom"},
    ]
    agreement(rows, "torch fp32")
    assert rows[0]["identical_to_ref"] == 1.0
    assert rows[1]["identical_to_ref"] == 0.5
    assert rows[1]["reference"] == "torch fp32 t2"
    assert rows[2]["identical_to_ref"] is None
    assert all("outputs" not in r for r in rows)


@pytest.mark.slow
def test_worker_runs_our_runtime_on_a_tiny_package(tiny_package: Callable[..., Path]) -> None:
    """A real cell on our runtime: fixed length means every input yields max_new tokens."""
    from service.runtime import load_runtime

    package = tiny_package("marian")  # the shared package: its fp32 variant is used
    rt = load_runtime(package, device="cpu", precision="fp32", intra_op_threads=1)
    model = rt.manifest.model
    plan = Plan(
        family="marian",
        size="tiny",
        task="translation",
        checkpoint="unused",
        package=str(package),
        ct2_dir="unused",
        device="cpu",
        ids={
            "pad": model.pad_token_id,
            "eos": model.eos_token_id,
            "decoder_start": model.decoder_start_token_id,
        },
        inputs=rt.encode_texts(["A man rides a bicycle.", "Two dogs play in the snow."]),
        input_source="test",
        cells=[asdict(Cell("greedy", "fixed", 2, 3)), asdict(Cell("beam4", "fixed", 1, 2))],
        max_new_tokens=5,
        repeats=1,
        cell_budget_s=60,
        backend_budget_s=600,
    )
    rows = run_worker(Spec("ours", "fp32", 1), plan)
    assert [r["tokens"] for r in rows] == [3 * 5, 2 * 5]
    assert all(r["peak_rss_mb"] > 0 and r["latency_ms_p50"] > 0 for r in rows)
    assert rows[0]["label"] == "ours fp32 t1" and rows[1]["search"] == "beam4"
    lengths = [len(ids) for ids in plan.inputs]
    # 3 texts cycle over the 2 inputs: the first counts twice (bench.ceiling's source share)
    assert rows[0]["source_tokens"] == 2 * lengths[0] + lengths[1]
    assert rows[1]["source_tokens"] == sum(lengths)
