"""GPU suite gating and the int8 lm_head rewrite on a small ONNX graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import gpu
from bench.lm_head_int8 import quantize_columns, rewrite


def test_gpu_suite_records_why_it_did_not_run(tmp_path: Path) -> None:
    missing = gpu.missing_requirements()
    if not missing:
        pytest.skip("this machine has a usable GPU: the suite would really run")
    out = tmp_path / "gpu.json"
    assert gpu.main(["--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["ran"] is False
    assert all(reason in document["reason"] for reason in missing)


def test_quantize_columns_error_is_within_half_a_step() -> None:
    weight = np.random.default_rng(0).normal(size=(16, 5)).astype(np.float32)
    q, scale = quantize_columns(weight)
    assert q.dtype == np.int8 and scale.shape == (5,)
    assert np.all(np.abs(q * scale - weight) <= scale / 2 + 1e-6)


def test_rewrite_runs_the_projection_in_int8() -> None:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    weight = rng.normal(size=(8, 12)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"], name="/lm_head/MatMul")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 12])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    assert rewrite(model) == 1
    assert [n.op_type for n in model.graph.node] == ["DynamicQuantizeMatMul"]
    assert "w" not in {i.name for i in model.graph.initializer}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.normal(size=(3, 8)).astype(np.float32)
    (out,) = session.run(None, {"x": x})
    np.testing.assert_allclose(out, x @ weight, atol=0.1)
