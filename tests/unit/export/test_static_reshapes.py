"""export.static_reshapes: Reshape targets become constants only where shapes prove them,
the shape chains behind them go, and every output stays bit-equal at any input shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.static_reshapes import (
    constant_reshape_targets_file,
    reshape_target,
    try_constant_reshape_targets,
)

HEADS, HEAD_DIM = 2, 4
HIDDEN = HEADS * HEAD_DIM


def _save_graph(
    path: Path,
    nodes: list[onnx.NodeProto],
    inputs: list[onnx.ValueInfoProto],
    outputs: list[str],
    const: dict[str, np.ndarray] | None = None,
) -> None:
    """Save a one-graph opset-17 model: ``outputs`` are float tensors of unknown shape,
    ``const`` its initializers."""
    graph = helper.make_graph(
        nodes,
        "g",
        inputs,
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
        [numpy_helper.from_array(v, k) for k, v in (const or {}).items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.mark.parametrize(
    ("data", "out", "target"),
    [
        (["b", "s", 8], ["b", "s", 2, 4], [0, 0, 2, 4]),  # view(bsz, len, heads, head_dim)
        (["b", "s", 2, 4], ["b", "s", 8], [0, 0, 8]),
        (["b", 2, "s", 4], ["b", 2, "s", 4], [0, 2, 0, 4]),  # constants stay constants
        (["b", "s", 8], ["b*s", 8], [-1, 8]),  # one dimension left to infer
        (["b", "s", 8], ["s", "b", 8], None),  # two moved dimensions: not provable
        (["b", None, 8], ["b", 8], None),  # an unknown input dimension
        (["b", "s"], ["b", 0], None),  # a literal zero would read as "copy"
    ],
)
def test_reshape_target(
    data: list[int | str | None], out: list[int | str | None], target: list[int] | None
) -> None:
    assert reshape_target(data, out) == target


def _attention_like(path: Path) -> None:
    """x [b, s, HIDDEN] -> split heads with a target built from Shape(x) -> Relu -> merge
    heads with a target from Shape(x) again -> y; plus z reshaped to the shape of w (a
    target nothing proves: it must stay dynamic)."""
    const = {
        "heads": np.array([HEADS, HEAD_DIM], np.int64),
        "hidden": np.array([HIDDEN], np.int64),
        "i0": np.array(0, np.int64),
        "i1": np.array(1, np.int64),
        "axes0": np.array([0], np.int64),
    }
    nodes = [
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Gather", ["x_shape", "i0"], ["batch"], axis=0),
        helper.make_node("Gather", ["x_shape", "i1"], ["length"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"]),
        helper.make_node("Unsqueeze", ["length", "axes0"], ["length1"]),
        helper.make_node("Concat", ["batch1", "length1", "heads"], ["split_shape"], axis=0),
        helper.make_node("Reshape", ["x", "split_shape"], ["split"]),
        helper.make_node("Relu", ["split"], ["relu"]),
        helper.make_node("Concat", ["batch1", "length1", "hidden"], ["merge_shape"], axis=0),
        helper.make_node("Reshape", ["relu", "merge_shape"], ["y"]),
        helper.make_node("Shape", ["w"], ["w_shape"]),
        helper.make_node("Reshape", ["z", "w_shape"], ["z_as_w"]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", HIDDEN]),
        helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n"]),
        helper.make_tensor_value_info("w", TensorProto.FLOAT, ["p", "q"]),
    ]
    _save_graph(path, nodes, inputs, ["y", "z_as_w"], const)


def test_proven_targets_become_constants_and_outputs_stay_equal(tmp_path: Path) -> None:
    original, static = tmp_path / "dynamic.onnx", tmp_path / "static.onnx"
    _attention_like(original)
    _attention_like(static)
    rewritten, removed = constant_reshape_targets_file(static)
    assert rewritten == 2  # split and merge; z -> shape of w stays dynamic
    assert removed == 7  # Shape(x), 2 Gathers, 2 Unsqueezes, 2 Concats

    model = onnx.load(str(static))
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("Shape") == 1  # Shape(w) only
    targets = {init.name: numpy_helper.to_array(init).tolist() for init in model.graph.initializer}
    assert sorted(v for k, v in targets.items() if k.endswith("__static_target")) == [
        [0, 0, 2, 4],
        [0, 0, 8],
    ]

    before = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(static), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch, length in [(1, 1), (3, 5), (2, 17)]:
        feeds = {
            "x": rng.standard_normal((batch, length, HIDDEN), dtype=np.float32),
            "z": rng.standard_normal(batch * length, dtype=np.float32),
            "w": np.zeros((batch, length), np.float32),
        }
        for expected, actual in zip(before.run(None, feeds), after.run(None, feeds), strict=True):
            np.testing.assert_array_equal(actual, expected)


def test_nothing_provable_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    nodes = [
        helper.make_node("Shape", ["w"], ["w_shape"]),
        helper.make_node("Reshape", ["z", "w_shape"], ["y"]),
    ]
    inputs = [
        helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n"]),
        helper.make_tensor_value_info("w", TensorProto.FLOAT, ["p", "q"]),
    ]
    _save_graph(path, nodes, inputs, ["y"])
    before = path.read_bytes()
    assert constant_reshape_targets_file(path) == (0, 0)
    assert path.read_bytes() == before


def _masked_attention(path: Path) -> None:
    """The positioned decoder's pattern: present = Concat(past [b, HEADS, p, HEAD_DIM], the
    new step); scores over present plus a bias from the mask input [b, m] (the contract:
    m == p + 1, which the graph itself does not say); the heads merged with a target built
    from Shape(x)."""
    const = {
        "i0": np.array(0, np.int64),
        "axes0": np.array([0], np.int64),
        "axes12": np.array([1, 2], np.int64),
        "split": np.array([1, HEADS, HEAD_DIM], np.int64),
        "rest": np.array([1, HIDDEN], np.int64),
    }
    nodes = [
        helper.make_node("Shape", ["x"], ["x_shape"]),
        helper.make_node("Gather", ["x_shape", "i0"], ["batch"], axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"]),
        helper.make_node("Concat", ["batch1", "split"], ["split_shape"], axis=0),
        helper.make_node("Reshape", ["x", "split_shape"], ["x_heads"]),
        helper.make_node("Transpose", ["x_heads"], ["query"], perm=[0, 2, 1, 3]),
        helper.make_node("Concat", ["past", "query"], ["present"], axis=2),
        helper.make_node("Transpose", ["present"], ["keys_t"], perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["query", "keys_t"], ["scores"]),
        helper.make_node("Cast", ["mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axes12"], ["bias"]),
        helper.make_node("Add", ["scores", "bias"], ["biased"]),
        helper.make_node("Softmax", ["biased"], ["weights"], axis=-1),
        helper.make_node("MatMul", ["weights", "present"], ["context"]),
        helper.make_node("Transpose", ["context"], ["context_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Concat", ["batch1", "rest"], ["merge_shape"], axis=0),
        helper.make_node("Reshape", ["context_t", "merge_shape"], ["y"]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 1, HIDDEN]),
        helper.make_tensor_value_info("past", TensorProto.FLOAT, ["b", HEADS, "p", HEAD_DIM]),
        helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "m"]),
    ]
    _save_graph(path, nodes, inputs, ["y", "present"], const)


def test_a_dimension_relation_lets_inference_cross_the_masked_softmax(tmp_path: Path) -> None:
    original, unrelated, related = (tmp_path / f"{n}.onnx" for n in ("a", "b", "c"))
    for path in (original, unrelated, related):
        _masked_attention(path)
    rewritten, why = try_constant_reshape_targets(unrelated)
    assert rewritten == 0 and why is not None and "Incomplete" in why  # stops at the Add
    assert unrelated.read_bytes() == original.read_bytes()
    assert try_constant_reshape_targets(related, {"m": ("p", 1)}) == (2, None)
    ops = [node.op_type for node in onnx.load(str(related)).graph.node]
    assert "Shape" not in ops and "Gather" not in ops

    before = ort.InferenceSession(str(original), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(related), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    for batch, past in [(1, 0), (3, 4), (5, 11)]:
        feeds = {
            "x": rng.standard_normal((batch, 1, HIDDEN), dtype=np.float32),
            "past": rng.standard_normal((batch, HEADS, past, HEAD_DIM), dtype=np.float32),
            "mask": rng.integers(0, 2, (batch, past + 1)),
        }
        for expected, actual in zip(before.run(None, feeds), after.run(None, feeds), strict=True):
            np.testing.assert_array_equal(actual, expected)
