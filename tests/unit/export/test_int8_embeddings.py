"""export.int8_embeddings: token embedding tables become per-row int8 (exact dequantized
values, the same rows gathered), a tied lm_head shares the one table, and the files shrink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.int8_embeddings import quantize_embeddings, quantize_embeddings_file
from export.int8_per_row import per_column_int8, quantize_per_row
from service.runtime.int8_weights import cpu_has_vnni, signed_weights

VOCAB, WIDTH, POSITIONS = 300, 48, 16


def _table() -> np.ndarray:
    rng = np.random.default_rng(7)
    table = rng.standard_normal((VOCAB, WIDTH), dtype=np.float32)
    table[3] *= 40.0  # one loud token: its scale must not touch the others
    table[5] = 0.0  # an all-zero row: the epsilon scale
    return table


def _save_model(path: Path, tied: bool = True) -> np.ndarray:
    """input_ids [b, s] -> Reshape -> Gather(table) (``emb``), Gather(positions, Range)
    (``pos``), and x [b, s, width] -> MatMul(head) (``logits``); ``head`` is the table
    transposed when ``tied``. Returns the table."""
    table = _table()
    head = (
        table.T.copy()
        if tied
        else np.random.default_rng(8).standard_normal((WIDTH, VOCAB), dtype=np.float32)
    )
    positions = np.random.default_rng(9).standard_normal((POSITIONS, WIDTH), dtype=np.float32)
    nodes = [
        helper.make_node("Reshape", ["input_ids", "ids_shape"], ["ids"], name="reshape"),
        helper.make_node("Gather", ["table", "ids"], ["emb"], name="embed_tokens"),
        helper.make_node("Shape", ["input_ids"], ["ids_dims"], start=1, end=2),
        helper.make_node("Squeeze", ["ids_dims"], ["length"]),
        helper.make_node("Range", ["zero", "length", "one"], ["steps"]),
        helper.make_node("Gather", ["positions", "steps"], ["pos"], name="embed_positions"),
        helper.make_node("MatMul", ["x", "head"], ["logits"], name="lm_head"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", WIDTH]),
        ],
        [
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["b", "s", WIDTH]),
            helper.make_tensor_value_info("pos", TensorProto.FLOAT, ["s", WIDTH]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", "s", VOCAB]),
        ],
        [
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(head, "head"),
            numpy_helper.from_array(positions, "positions"),
            numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "ids_shape"),
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
            numpy_helper.from_array(np.array(1, dtype=np.int64), "one"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return table


def _run(model: str | bytes, ids: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input_ids": ids, "x": x}), strict=True))


def _inputs(batch: int = 3, length: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(10)
    ids = rng.integers(0, VOCAB, size=(batch, length), dtype=np.int64)
    ids[0, :3] = [3, 5, VOCAB - 1]  # the loud row, the zero row, the last row
    return ids, rng.standard_normal((batch, length, WIDTH), dtype=np.float32)


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}


def _per_row_int8(tmp_path: Path, tied: bool = True, exclude: set[str] | None = None) -> Path:
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    _save_model(fp32, tied)
    quantize_per_row(fp32, int8, exclude)
    return int8


def test_dequantized_rows_are_exact_and_gathered_like_the_table(tmp_path: Path) -> None:
    int8 = _per_row_int8(tmp_path)
    before = _run(str(int8), *_inputs())
    out = tmp_path / "emb.onnx"
    report = quantize_embeddings_file(int8, out)
    assert (report.quantized, report.tied) == (1, 1)

    table = _table()
    q, scale = per_column_int8(table.T)
    # What DequantizeLinear(q + 128, 1, 128) * s computes: q - 128 exactly, one rounding.
    expected_table = q.T.astype(np.float32) * scale[:, None]
    assert np.abs(expected_table - table).max() <= scale.max() / 2 * 1.0001
    ids, x = _inputs()
    after = _run(str(out), ids, x)
    np.testing.assert_array_equal(after["emb"], expected_table[ids])  # bit for bit
    np.testing.assert_array_equal(after["emb"][0, 1], np.zeros(WIDTH, np.float32))
    # The positions table is not a token embedding: untouched, still exact.
    np.testing.assert_array_equal(after["pos"], before["pos"])
    # The tied lm_head reads the same bytes through Transpose: the same logits.
    np.testing.assert_array_equal(after["logits"], before["logits"])
    # A row's embedding does not depend on its neighbours (no shared scale).
    for b in range(ids.shape[0]):
        alone = _run(str(out), ids[b : b + 1], x[b : b + 1])
        np.testing.assert_array_equal(alone["emb"][0], after["emb"][b])


def test_the_tied_table_is_stored_once_as_int8(tmp_path: Path) -> None:
    int8 = _per_row_int8(tmp_path)
    out = tmp_path / "emb.onnx"
    quantize_embeddings_file(int8, out)
    weights = _initializers(out)
    big = {n: v for n, v in weights.items() if v.size >= VOCAB * WIDTH}
    assert [(v.dtype, v.shape) for v in big.values()] == [(np.uint8, (VOCAB, WIDTH))]
    assert "table" not in weights  # the fp32 table is gone
    nodes = onnx.load(str(out)).graph.node
    head = next(n for n in nodes if n.op_type == "MatMulIntegerToFloat")
    transpose = next(n for n in nodes if n.op_type == "Transpose")
    assert head.input[1] == transpose.output[0] and transpose.input[0] in big
    # fp32 table + int8 lm_head (about 5 bytes per entry) -> one int8 table + scales.
    assert out.stat().st_size < int8.stat().st_size - 4 * VOCAB * WIDTH + 8 * VOCAB + 2048


def test_ort_folds_the_transpose_into_a_constant_lm_head_weight(tmp_path: Path) -> None:
    int8 = _per_row_int8(tmp_path)
    out, optimized = tmp_path / "emb.onnx", tmp_path / "optimized.onnx"
    quantize_embeddings_file(int8, out)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    model = onnx.load(str(optimized))
    assert not [n for n in model.graph.node if n.op_type == "Transpose"]
    head = next(n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat")
    assert head.input[1] in {i.name for i in model.graph.initializer}


def test_an_untied_lm_head_keeps_its_own_weight(tmp_path: Path) -> None:
    int8 = _per_row_int8(tmp_path, tied=False)
    before = _run(str(int8), *_inputs())
    out = tmp_path / "emb.onnx"
    report = quantize_embeddings_file(int8, out)
    assert (report.quantized, report.tied) == (1, 0)
    after = _run(str(out), *_inputs())
    np.testing.assert_array_equal(after["logits"], before["logits"])
    assert not [n for n in onnx.load(str(out)).graph.node if n.op_type == "Transpose"]


def test_an_fp32_lm_head_tied_to_the_table_shares_it_in_fp32(tmp_path: Path) -> None:
    """The int8 recipe that keeps the lm_head fp32: the embedding stays exact, stored once."""
    int8 = _per_row_int8(tmp_path, exclude={"lm_head"})
    before = _run(str(int8), *_inputs())
    out = tmp_path / "emb.onnx"
    report = quantize_embeddings_file(int8, out)
    assert (report.quantized, report.tied) == (0, 1)
    weights = _initializers(out)
    assert "head" not in weights and weights["table"].dtype == np.float32
    after = _run(str(out), *_inputs())
    for name in ("emb", "pos", "logits"):
        np.testing.assert_array_equal(after[name], before[name])


def test_a_second_pass_changes_nothing(tmp_path: Path) -> None:
    int8 = _per_row_int8(tmp_path)
    model = onnx.load(str(int8))
    assert quantize_embeddings(model).changed
    serialized = model.SerializeToString()
    assert not quantize_embeddings(model).changed
    assert model.SerializeToString() == serialized


def test_a_table_read_by_another_op_stays_fp32(tmp_path: Path) -> None:
    fp32 = tmp_path / "fp32.onnx"
    _save_model(fp32, tied=False)
    model = onnx.load(str(fp32))
    model.graph.node.append(helper.make_node("ReduceSum", ["table"], ["total"], keepdims=0))
    model.graph.output.append(helper.make_tensor_value_info("total", TensorProto.FLOAT, []))
    assert not quantize_embeddings(model).changed


def _signed(path: Path) -> tuple[Any, int]:
    model = onnx.load(str(path))
    return model, signed_weights(model)


def test_signed_weights_re_encode_the_shared_table_with_its_zero_points(tmp_path: Path) -> None:
    int8 = _per_row_int8(tmp_path)
    out = tmp_path / "emb.onnx"
    quantize_embeddings_file(int8, out)
    model, converted = _signed(out)
    assert converted == 1  # the one table: the lm_head's weight and the embedding's
    table = next(i for i in model.graph.initializer if list(i.dims) == [VOCAB, WIDTH])
    assert table.data_type == TensorProto.INT8
    dequantize = next(n for n in model.graph.node if n.op_type == "DequantizeLinear")
    head = next(n for n in model.graph.node if n.op_type == "MatMulIntegerToFloat")
    assert len(dequantize.input) < 3 or dequantize.input[2] == ""
    assert head.input[5] == ""
    ids, x = _inputs()
    exported, signed = _run(str(out), ids, x), _run(model.SerializeToString(), ids, x)
    np.testing.assert_array_equal(signed["emb"], exported["emb"])
    if cpu_has_vnni():  # u8 x s8 is exact only where VNNI does not saturate
        np.testing.assert_array_equal(signed["logits"], exported["logits"])


def test_signed_weights_leave_an_embedding_only_table_alone(tmp_path: Path) -> None:
    int8 = _per_row_int8(tmp_path, tied=False)
    out = tmp_path / "emb.onnx"
    quantize_embeddings_file(int8, out)
    model, converted = _signed(out)
    assert converted == 1  # the lm_head's own weight, not the table
    table = next(i for i in model.graph.initializer if list(i.dims) == [VOCAB, WIDTH])
    assert table.data_type == TensorProto.UINT8


@pytest.mark.parametrize("tied", [True, False])
def test_the_file_shrinks_to_about_a_byte_per_table_entry(tmp_path: Path, tied: bool) -> None:
    int8 = _per_row_int8(tmp_path, tied=tied)
    out = tmp_path / "emb.onnx"
    report = quantize_embeddings_file(int8, out)
    table_bytes = 4 * VOCAB * WIDTH
    saved = int8.stat().st_size - out.stat().st_size
    expected = table_bytes - VOCAB * WIDTH - 4 * VOCAB + (VOCAB * WIDTH if tied else 0)
    assert abs(saved - expected) < 1024
    assert abs(report.bytes_saved - expected) < 64
