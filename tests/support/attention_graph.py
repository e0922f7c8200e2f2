"""A small cross-attention graph laid out as optimum's eager attention exports it, for the
shared cross K/V tests (service.runtime.shared_cross_kv, service.runtime.model_source)."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

HEADS, HEAD_DIM, SOURCE_LEN = 2, 4, 5
KEY, VALUE = "past_key_values.0.encoder.key", "past_key_values.0.encoder.value"


def attention_model(fold_heads: bool = False, read_batch: bool = False) -> Any:
    """softmax(q @ (k^T * s) + mask) @ v, laid out as optimum's eager attention exports it.

    ``fold_heads``: the key goes through a Reshape that merges batch and heads (as older
    bmm-based exports did); ``read_batch``: a Shape of the key is gathered at axis 0."""
    scale = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "scale")
    nodes = [
        helper.make_node("Transpose", [KEY], ["key_t"], perm=[0, 1, 3, 2]),
        helper.make_node("Mul", ["key_t", "scale"], ["key_scaled"]),
        helper.make_node("MatMul", ["query", "key_scaled"], ["scores"]),
        helper.make_node("Add", ["scores", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", VALUE], ["context"]),
        helper.make_node("Shape", [KEY], ["key_shape"]),
        helper.make_node("Gather", ["key_shape", "axis"], ["key_dim"], axis=0),
    ]
    axis = numpy_helper.from_array(np.array(0 if read_batch else 2, dtype=np.int64), "axis")
    outputs = ["context", "key_dim"]
    if fold_heads:
        folded = numpy_helper.from_array(np.array([-1, SOURCE_LEN, HEAD_DIM], np.int64), "fold")
        nodes.append(helper.make_node("Reshape", [KEY, "fold"], ["key_folded"]))
        outputs.append("key_folded")
        initializers = [scale, axis, folded]
    else:
        initializers = [scale, axis]
    floats = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "attention",
        [
            helper.make_tensor_value_info("query", floats, ["rows", HEADS, 1, HEAD_DIM]),
            helper.make_tensor_value_info("mask", floats, ["rows", 1, 1, SOURCE_LEN]),
            helper.make_tensor_value_info(KEY, floats, ["sources", HEADS, SOURCE_LEN, HEAD_DIM]),
            helper.make_tensor_value_info(VALUE, floats, ["sources", HEADS, SOURCE_LEN, HEAD_DIM]),
        ],
        [helper.make_tensor_value_info(name, floats, None) for name in outputs[:1]]
        + [helper.make_tensor_value_info("key_dim", TensorProto.INT64, None)]
        + [helper.make_tensor_value_info(name, floats, None) for name in outputs[2:]],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
