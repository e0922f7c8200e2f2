"""The work bound: dimensions from configs, the MatMul-only graphs, the bound formula."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.ceiling import (
    Dims,
    StepTimer,
    ceiling_rows,
    decoder_step_graph,
    dims_of,
    encoder_graph,
    markdown,
)

MARIAN = {
    "model_type": "marian",
    "d_model": 512,
    "encoder_ffn_dim": 2048,
    "decoder_ffn_dim": 2048,
    "encoder_layers": 6,
    "decoder_layers": 6,
    "vocab_size": 58101,
}
T5_GATED = {
    "model_type": "umt5",
    "d_model": 8,
    "d_kv": 2,
    "num_heads": 3,
    "d_ff": 10,
    "num_layers": 2,
    "num_decoder_layers": 1,
    "feed_forward_proj": "gated-gelu",
    "vocab_size": 100,
}


def test_dims_of_bart_like_and_t5_style_configs() -> None:
    assert dims_of(MARIAN) == Dims(512, 512, 2048, 1, 6, 6, 58101)
    assert dims_of(T5_GATED) == Dims(8, 6, 10, 2, 2, 1, 100)


def test_graphs_hold_every_weight_matmul(tmp_path: Path) -> None:
    import onnx

    dims = dims_of(T5_GATED)
    d, inner, ff = 8, 6, 10
    decoder = decoder_step_graph(tmp_path / "decoder.onnx", dims)
    # per decoder layer: self q k v, self o, cross q, cross o, 2 gated FFN inputs, FFN out
    assert decoder == 1 * (4 * d * inner + 2 * inner * d + 2 * d * ff + ff * d) + d * 100
    encoder = encoder_graph(tmp_path / "encoder.onnx", dims)
    # per encoder layer: q k v, o, FFN; then cross k v of each decoder layer
    assert encoder == 2 * (3 * d * inner + inner * d + 2 * d * ff + ff * d) + 1 * 2 * d * inner
    nodes = onnx.load(str(tmp_path / "decoder.onnx")).graph.node
    assert [n.op_type for n in nodes] == ["MatMul"] * 10


def test_step_timer_runs_the_per_row_int8_graphs(tmp_path: Path) -> None:
    timer = StepTimer(tmp_path, dims_of(T5_GATED), repeats=3)
    assert timer.macs["decoder"] > 0 and timer.macs["encoder"] > 0
    one = timer.seconds_per_row("decoder", 1, threads=1)
    many = timer.seconds_per_row("decoder", 64, threads=1)
    assert 0 < many < one  # one call for 64 rows: its fixed cost is shared


def test_step_timer_can_time_signed_weights(tmp_path: Path) -> None:
    import onnx

    timer = StepTimer(tmp_path, dims_of(T5_GATED), repeats=3, signed_weights=True)
    weights = [
        init
        for init in onnx.load(str(timer.paths["decoder"])).graph.initializer
        if len(init.dims) == 2
    ]
    assert weights and all(w.data_type == onnx.TensorProto.INT8 for w in weights)
    assert timer.seconds_per_row("decoder", 8, threads=1) > 0


class _FlatTimer(StepTimer):
    """1 ns per row of the decoder step, 10 ns per source token; half with 2 threads."""

    def __init__(self) -> None:
        self.macs = {"decoder": 1000, "encoder": 100}
        self.rows_seen: set[tuple[str, int]] = set()

    def seconds_per_row(self, name: str, rows: int, threads: int) -> float:
        self.rows_seen.add((name, rows))
        return (1e-9 if name == "decoder" else 1e-8) / threads


def _row(label: str, batch: int, tps: float) -> dict[str, Any]:
    texts = max(8, batch)
    return {
        "label": label,
        "search": "greedy",
        "stop": "fixed",
        "batch_size": batch,
        "texts": texts,
        "tokens": 32 * texts,
        "source_tokens": 64 * texts,
        "tokens_per_s": tps,
    }


def test_bound_is_kernel_time_per_token_inverted() -> None:
    rows = [
        _row("ct2 int8 t1", 8, 1e7),
        _row("ours int8 t2", 8, 1e8),
        {**_row("ours int8 t1", 8, 1.0), "search": "beam4"},  # other cells are ignored
        {"label": "torch fp32 t1", "skipped": "budget", "search": "greedy", "stop": "fixed"},
    ]
    timer = _FlatTimer()
    (cell,) = ceiling_rows({"rows": rows}, timer)
    assert cell["source_per_generated"] == 2.0 and cell["source_per_input"] == 64.0
    assert cell["macs_per_generated_token"] == 1000 + 2.0 * 100
    assert cell["bound_t1"] == pytest.approx(1 / (1e-9 + 2.0 * 1e-8))
    assert cell["bound_t2"] == pytest.approx(2 * cell["bound_t1"])
    assert timer.rows_seen == {("decoder", 8), ("encoder", 8 * 64)}
    table = markdown([cell], ["ct2 int8 t1", "ours int8 t2", "ours int8 t1"])
    # each backend against the bound at its own thread count
    assert f"| {1e7:.0f} ({1e7 / cell['bound_t1']:.0%}) |" in table
    assert f"| {1e8:.0f} ({1e8 / cell['bound_t2']:.0%}) |" in table
    assert table.rstrip().endswith("| – |")


def test_cells_without_source_lengths_get_no_bound() -> None:
    row = _row("ours int8 t1", 1, 5.0)
    del row["source_tokens"]
    assert ceiling_rows({"rows": [row]}, _FlatTimer()) == []
