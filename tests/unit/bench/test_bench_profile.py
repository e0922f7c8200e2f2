"""bench.profile: ORT trace summaries by op type, node and model part."""

from __future__ import annotations

from typing import Any

from bench.profile import ort_summary


def _node(name: str, op: str, dur: int) -> dict[str, Any]:
    return {"cat": "Node", "name": f"{name}_kernel_time", "dur": dur, "args": {"op_name": op}}


def test_parts_cover_both_naming_schemes_and_skip_if_branches() -> None:
    trace = [
        _node("/model/decoder/layers.0/encoder_attn/MatMul", "MatMul", 30),
        _node("/decoder/block.0/layer.1/EncDecAttention/MatMul", "MatMul", 5),
        _node("/model/decoder/layers.0/self_attn/MatMul", "MatMul", 20),
        _node("/model/decoder/layers.0/fc1/MatMul_quant", "MatMulIntegerToFloat", 40),
        _node("/lm_head/MatMul", "MatMulIntegerToFloat", 50),
        _node("/model/decoder/Concat_3", "Concat", 7),
        _node("optimum::if", "If", 1_000),  # its time is its branch's nodes
        {"cat": "Session", "name": "model_run", "dur": 9_999},
    ]
    by_type, by_node, by_part = ort_summary(trace, top=2)
    assert by_part == {
        "cross-attention": 35,
        "self-attention": 20,
        "feed-forward": 40,
        "lm_head": 50,
        "other": 7,
    }
    assert by_type == {"MatMul": 55, "MatMulIntegerToFloat": 90, "Concat": 7}
    assert list(by_node) == ["/lm_head/MatMul", "/model/decoder/layers.0/fc1/MatMul_quant"]
