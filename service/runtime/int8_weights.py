"""Signed int8 weights for per-row int8 models on CPUs with VNNI, chosen at load time.

The export stores per-row int8 weights (``export.int8_per_row``) as uint8 around zero
point 128, because ORT's u8 x s8 kernel on AVX2-only CPUs sums pairs of products in
saturating int16 and would clip. CPUs with VNNI (AVX-512 VNNI, AVX-VNNI) accumulate
u8 x s8 products straight into int32, so there the same weights re-encoded as int8
(``w - 128``, no weight zero point) are exact and faster: ORT's u8 x s8 VNNI kernel beats
its u8 x u8 one (docs/benchmarks.md, "s8 weights"). The re-encoding is exact integer
arithmetic, so a package keeps one set of files and runs the fast way on each host.
``service.runtime.model_source`` applies it when a session loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

# "auto": signed where the CPU has VNNI, as exported elsewhere; "as_exported": never touch.
Int8Weights = Literal["auto", "as_exported"]

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
_PER_ROW_OP = "MatMulIntegerToFloat"
_WEIGHT_INPUT = 1
_WEIGHT_ZERO_POINT_INPUT = 5
_EXPORTED_ZERO_POINT = 128


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def cpu_has_vnni(flags: frozenset[str] | None = None) -> bool:
    """True when the CPU multiplies u8 x s8 into int32 without int16 saturation."""
    return bool(VNNI_FLAGS & (cpu_flags() if flags is None else flags))


def iter_graphs(graph: Any) -> Iterator[Any]:
    """The graph and, recursively, every subgraph of its nodes (If branches ...)."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_graphs(sub)


def signed_weights(model: Any) -> int:
    """Re-encode ``model``'s (an ``onnx.ModelProto``, in place) per-row uint8 weights as
    int8; returns how many were. A weight is re-encoded only when every use of it is the
    weight of a per-row MatMul with the exported zero point 128, so no other op sees it."""
    from onnx import TensorProto, numpy_helper

    graphs = list(iter_graphs(model.graph))
    initializers = {init.name: init for graph in graphs for init in graph.initializer}

    def is_exported_zero_point(name: str) -> bool:
        init = initializers.get(name)
        if init is None or init.data_type != TensorProto.UINT8 or list(init.dims):
            return False
        return int(numpy_helper.to_array(init)) == _EXPORTED_ZERO_POINT

    per_row_uses: dict[str, list[Any]] = {}
    other_uses: set[str] = set()
    for graph in graphs:
        for node in graph.node:
            for index, name in enumerate(node.input):
                init = initializers.get(name)
                if init is None or init.data_type != TensorProto.UINT8 or len(init.dims) != 2:
                    continue
                if (
                    node.op_type == _PER_ROW_OP
                    and index == _WEIGHT_INPUT
                    and len(node.input) > _WEIGHT_ZERO_POINT_INPUT
                    and is_exported_zero_point(node.input[_WEIGHT_ZERO_POINT_INPUT])
                ):
                    per_row_uses.setdefault(name, []).append(node)
                else:
                    other_uses.add(name)
    convertible = sorted(set(per_row_uses) - other_uses)
    for name in convertible:
        weight = numpy_helper.to_array(initializers[name]).astype(np.int16)
        signed = numpy_helper.from_array((weight - _EXPORTED_ZERO_POINT).astype(np.int8), name)
        initializers[name].CopyFrom(signed)
        for node in per_row_uses[name]:
            node.input[_WEIGHT_ZERO_POINT_INPUT] = ""  # int8 weights: zero point 0
    return len(convertible)
