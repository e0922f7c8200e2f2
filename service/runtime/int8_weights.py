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
_DEQUANTIZE_OP = "DequantizeLinear"
_DEQUANTIZE_ZERO_POINT_INPUT = 2
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
    int8; returns how many were. A weight is re-encoded only when every use of it reads it
    around the exported zero point 128, which is then dropped: the weight of a per-row
    MatMul, directly or through a ``Transpose`` (an lm_head tied to the token embedding),
    or the table of a per-row int8 token embedding (``Gather`` into ``DequantizeLinear``,
    ``export.int8_embeddings``). No other op sees it."""
    from onnx import TensorProto, numpy_helper

    graphs = list(iter_graphs(model.graph))
    initializers = {init.name: init for graph in graphs for init in graph.initializer}
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for graph in graphs:
        for node in graph.node:
            for index, name in enumerate(node.input):
                if name:
                    consumers.setdefault(name, []).append((node, index))

    def is_exported_zero_point(name: str) -> bool:
        init = initializers.get(name)
        if init is None or init.data_type != TensorProto.UINT8 or list(init.dims):
            return False
        return int(numpy_helper.to_array(init)) == _EXPORTED_ZERO_POINT

    def zero_point_uses(name: str) -> list[tuple[Any, int]] | None:
        """The (node, zero point input) pairs to clear if ``name`` becomes int8, or None
        when some use of it is not a per-row one."""
        found: list[tuple[Any, int]] = []
        for node, index in consumers.get(name, []):
            if node.op_type == _PER_ROW_OP and index == _WEIGHT_INPUT:
                zero_point = _WEIGHT_ZERO_POINT_INPUT
            elif node.op_type == _DEQUANTIZE_OP and index == 0:
                zero_point = _DEQUANTIZE_ZERO_POINT_INPUT
            elif (node.op_type == "Transpose" and index == 0) or (
                node.op_type == "Gather" and index == 0
            ):
                # Same bytes, moved: every consumer of the result must qualify too.
                inner = zero_point_uses(node.output[0])
                if not inner:
                    return None
                found.extend(inner)
                continue
            else:
                return None
            if len(node.input) <= zero_point or not is_exported_zero_point(node.input[zero_point]):
                return None
            found.append((node, zero_point))
        return found

    converted = 0
    for name, init in initializers.items():
        if init.data_type != TensorProto.UINT8 or len(init.dims) != 2:
            continue
        uses = zero_point_uses(name)
        if not uses or not any(node.op_type == _PER_ROW_OP for node, _ in uses):
            continue
        weight = numpy_helper.to_array(init).astype(np.int16)
        init.CopyFrom(
            numpy_helper.from_array((weight - _EXPORTED_ZERO_POINT).astype(np.int8), name)
        )
        for node, zero_point in uses:
            node.input[zero_point] = ""  # int8 weights: zero point 0
        converted += 1
    return converted
