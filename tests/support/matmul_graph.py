"""A small fp32 MatMul graph for the int8 tests (export.int8_per_row, runtime.int8_weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

K, N = 64, 96


def save_matmul_model(path: Path, opset: int = 18, dynamic_weight: bool = False) -> None:
    """Write x -> MatMul(w1) (``up``) -> Relu -> MatMul(w2) (``head``) -> y, plus MatMul(w1)
    on x again (``up_again`` -> h2: a shared activation and weight). ``dynamic_weight``:
    also x @ x^T (``dynamic_weight`` -> gram), a MatMul without a constant weight."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((K, N), dtype=np.float32) * 0.1
    w2 = rng.standard_normal((N, K), dtype=np.float32) * 0.1
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="up"),
        helper.make_node("MatMul", ["x", "w1"], ["h2"], name="up_again"),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"], name="head"),
    ]
    outputs = [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", K]),
        helper.make_tensor_value_info("h2", TensorProto.FLOAT, ["b", "s", N]),
    ]
    if dynamic_weight:
        nodes += [
            helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
            helper.make_node("MatMul", ["x", "xt"], ["gram"], name="dynamic_weight"),
        ]
        outputs.append(helper.make_tensor_value_info("gram", TensorProto.FLOAT, ["b", "s", "s"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", K])],
        outputs,
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
