"""The work bound: MatMul counts from configs, and the bound from kernel times."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.ceiling import KernelTimer, LinearWork, ceiling_rows, linear_work, macs, markdown

MARIAN = {
    "model_type": "marian",
    "d_model": 512,
    "encoder_ffn_dim": 2048,
    "decoder_ffn_dim": 2048,
    "encoder_layers": 6,
    "decoder_layers": 6,
    "vocab_size": 58101,
}


def test_marian_counts_every_weight_matmul() -> None:
    work = linear_work(MARIAN)
    d, ff = 512, 2048
    # encoder: q k v o + 2 FFN per layer; cross k v once per source token
    assert macs(work.per_source_token) == 6 * (4 * d * d + 2 * d * ff) + 6 * 2 * d * d
    # decoder: self q k v o, cross q o, 2 FFN per layer; then the output projection
    assert macs(work.per_generated_token) == 6 * (6 * d * d + 2 * d * ff) + d * 58101


def test_t5_uses_its_inner_width_and_gated_ffn() -> None:
    config = {
        "model_type": "t5",
        "d_model": 8,
        "d_kv": 2,
        "num_heads": 3,
        "d_ff": 10,
        "num_layers": 2,
        "num_decoder_layers": 1,
        "feed_forward_proj": "gated-gelu",
        "vocab_size": 100,
    }
    work = linear_work(config)
    assert work.per_source_token == {(8, 6): 2 * 3 + 1 * 2, (6, 8): 2, (8, 10): 4, (10, 8): 2}
    assert work.per_generated_token == {
        (8, 6): 4,
        (6, 8): 2,
        (8, 10): 2,
        (10, 8): 1,
        (8, 100): 1,
    }


class _FlatTimer(KernelTimer):
    """Every row of every matrix costs ``K * N`` ns: 1 GMAC/s at any row count."""

    def __init__(self) -> None:
        super().__init__(Path("."))
        self.rows_seen: set[int] = set()

    def seconds_per_row(self, shape: tuple[int, int], rows: int) -> float:
        self.rows_seen.add(rows)
        return shape[0] * shape[1] * 1e-9


def _row(label: str, batch: int, tps: float, **extra: Any) -> dict[str, Any]:
    return {
        "label": label,
        "search": "greedy",
        "stop": "fixed",
        "batch_size": batch,
        "texts": max(8, batch),
        "tokens": 32 * max(8, batch),
        "source_tokens": 64 * max(8, batch),
        "tokens_per_s": tps,
        **extra,
    }


def test_bound_is_kernel_throughput_over_work_per_token() -> None:
    rows = [
        _row("ct2 int8 t1", 8, 10.0),
        _row("ours int8 t1", 8, 5.0),
        {**_row("ours int8 t1", 8, 1.0), "search": "beam4"},  # other cells are ignored
        {"label": "torch fp32 t1", "skipped": "budget", "search": "greedy", "stop": "fixed"},
    ]
    timer = _FlatTimer()
    (cell,) = ceiling_rows({"rows": rows}, MARIAN, timer)
    work: LinearWork = linear_work(MARIAN)
    per_token = macs(work.per_generated_token) + 2.0 * macs(work.per_source_token)
    assert cell["source_per_generated"] == 2.0 and cell["source_per_input"] == 64.0
    assert cell["macs_per_generated_token"] == per_token
    assert cell["bound_tokens_per_s"] == pytest.approx(1e9 / per_token)
    assert timer.rows_seen == {8, 8 * 64}  # decoder rows = batch, encoder rows = its sources
    table = markdown([cell], ["ours int8 t1", "ct2 int8 t1", "ours int8 t2"])
    share = 5.0 / cell["bound_tokens_per_s"]
    assert f"| 5 ({share:.0%}) |" in table and table.rstrip().endswith("| – |")


def test_cells_without_source_lengths_get_no_bound() -> None:
    row = _row("ours int8 t1", 1, 5.0)
    del row["source_tokens"]
    assert ceiling_rows({"rows": [row]}, MARIAN, _FlatTimer()) == []


def test_kernel_timer_times_the_real_int8_kernel(tmp_path: Path) -> None:
    timer = KernelTimer(tmp_path, repeats=3)
    one, many = timer.seconds_per_row((64, 256), 1), timer.seconds_per_row((64, 256), 64)
    assert 0 < many < one  # per row, a 64-row call amortises the fixed cost of a call
    assert timer.seconds({(64, 256): 2}, 64) == pytest.approx(2 * many)
