"""export.int8_per_row: the rewritten MatMuls stay close to fp32 and rows never interact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from export.int8_per_row import quantize_per_row
from tests.support.matmul_graph import K, save_matmul_model


def _run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [np.asarray(out) for out in session.run(None, {"x": x})]


def test_rows_are_quantized_independently_and_stay_close(tmp_path: Path) -> None:
    for opset in (17, 18):  # ReduceMax takes its axes as attribute / as input
        fp32, int8 = tmp_path / f"fp32-{opset}.onnx", tmp_path / f"int8-{opset}.onnx"
        save_matmul_model(fp32, opset, dynamic_weight=True)
        assert quantize_per_row(fp32, int8) == 3  # the constant-weight MatMuls only

        ops = [node.op_type for node in onnx.load(str(int8)).graph.node]
        assert ops.count("MatMulIntegerToFloat") == 3
        assert ops.count("MatMul") == 1  # the x @ x^T one
        assert ops.count("QuantizeLinear") == 2  # x quantized once for both MatMuls reading it

        rng = np.random.default_rng(1)
        x = rng.standard_normal((3, 5, K), dtype=np.float32)
        x[1] *= 50.0  # one row batch far louder than the others
        reference, quantized = _run(fp32, x), _run(int8, x)
        for ref, out in zip(reference, quantized, strict=True):
            assert out.shape == ref.shape
            error = np.abs(out - ref).max() / np.abs(ref).max()
            assert error < 0.03, error
        # Each row alone gives exactly what it gives inside the batch, loud neighbour or not.
        for b in range(3):
            alone = _run(int8, x[b : b + 1])
            for together, single in zip(quantized, alone, strict=True):
                np.testing.assert_array_equal(together[b : b + 1], single)


def test_excluded_nodes_stay_fp32(tmp_path: Path) -> None:
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    save_matmul_model(fp32, 18, dynamic_weight=True)
    assert quantize_per_row(fp32, int8, exclude={"head"}) == 2
    model = onnx.load(str(int8))
    assert [n.name for n in model.graph.node if n.op_type == "MatMul"] == [
        "head",
        "dynamic_weight",
    ]
    assert "w2" in {init.name for init in model.graph.initializer}  # still used by head
    assert "w1" not in {init.name for init in model.graph.initializer}  # replaced by int8


def test_activation_bytes_are_round_half_even_around_128(tmp_path: Path) -> None:
    """The quantized activation is uint8(clip(round(x / s) + 128, 0, 255)) byte for byte,
    ties rounding to even, with s = max(|row|, 1e-12) / 127 (the graph's own formula)."""
    fp32, int8 = tmp_path / "fp32.onnx", tmp_path / "int8.onnx"
    save_matmul_model(fp32, 18)
    quantize_per_row(fp32, int8)
    model = onnx.load(str(int8))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info("up_prq_u8", onnx.TensorProto.UINT8, None)
    )
    onnx.save(model, str(int8))
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])

    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, K), dtype=np.float32) * np.float32(7.0)
    x[0, 0] = 0.0  # an all-zero row: the epsilon scale, every byte 128
    x[1, 0, :8] = [127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5]  # exact ties at scale 1
    x[1, 0, 8:] = 0.0
    quantized = session.run(["up_prq_u8"], {"x": x})[0]

    scale = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(1e-12))
    scale = scale * np.float32(1.0 / 127.0)
    expected = np.clip(np.round(x / scale) + 128.0, 0.0, 255.0).astype(np.uint8)
    np.testing.assert_array_equal(quantized, expected)
    assert list(quantized[1, 0, :8]) == [255, 128, 130, 130, 128, 126, 126, 254]
    assert (quantized[0, 0] == 128).all()
