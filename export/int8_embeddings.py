"""Per-row int8 token embeddings, stored once when the output projection is tied to them.

A token embedding is a ``Gather`` whose table is a constant 2-D float initializer and whose
indices are the graph's ``input_ids`` (through shape-only ops: ``Reshape``, ``Cast`` ...).
Its table ``E`` [vocab, d_model] is stored as int8 with one scale per row (per token),
the arithmetic of the per-row MatMul weights (``export.int8_per_row``, whose per-column
weight scales are the per-row scales of the transposed matrix)::

    s_v  = max(|E[v, :]|, 1e-12) / 127                       one scale per token
    E_q  = uint8(clip(round(E / s), -127, 127) + 128)        [vocab, d_model]
    x    = DequantizeLinear(Gather(E_q, ids), 1, 128) * Gather(s, ids)

Only the gathered rows are dequantized, each with its own scale: a row's embedding never
depends on the other tokens in the batch, and ``DequantizeLinear`` with scale 1 is exact
(integers), so ``x`` is ``(q - 128) * s_v`` rounded once, as a float dequantization.

Tied output projection: where an ``lm_head`` MatMul's weight is exactly ``E`` transposed
(Marian, BART, T5, ... tie them), the table is stored once: the per-row int8 ``lm_head``
(``MatMulIntegerToFloat``, uint8 [d_model, vocab], per-column scales) holds the same bytes
transposed, so it reads ``Transpose(E_q)`` of the one table, a constant ONNX Runtime folds
into an initializer when the session is built (before the weight is pre-packed; tested).
An fp32 ``lm_head`` tied to an fp32 table (the int8 recipe that keeps the ``lm_head`` in
fp32) reads ``Transpose(E)``, and the embedding stays fp32: exact and stored once.

``service.runtime.int8_weights`` re-encodes such a shared table as signed int8 on VNNI
CPUs, zero points of the ``lm_head`` and of the embedding's ``DequantizeLinear`` together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export.int8_per_row import ZERO_POINT, per_column_int8
from service.runtime.int8_weights import iter_graphs

TOKEN_INPUT = "input_ids"
# Ops between input_ids and the embedding Gather that only change the indices' shape/type.
_INDEX_OPS = frozenset({"Reshape", "Cast", "Identity", "Unsqueeze", "Squeeze", "Flatten"})
_PER_ROW_OP = "MatMulIntegerToFloat"
# MatMulIntegerToFloat inputs: A, B, a_scale, b_scale, a_zero_point, b_zero_point.
_WEIGHT, _WEIGHT_SCALE, _WEIGHT_ZERO_POINT = 1, 3, 5
ONE = "emb_one"
ZERO_POINT_NAME = "emb_zp"


@dataclass(frozen=True)
class EmbeddingReport:
    """What :func:`quantize_embeddings` did to one model."""

    quantized: int = 0  # tables now stored as int8 with per-row scales
    tied: int = 0  # lm_head weights dropped in favour of the (transposed) embedding table
    bytes_saved: int = 0  # initializer bytes removed, net of what was added

    @property
    def changed(self) -> bool:
        """True when the model was rewritten."""
        return bool(self.quantized or self.tied)

    def as_dict(self) -> dict[str, int]:
        """JSON-friendly form (validation.json)."""
        return {
            "tables_int8": self.quantized,
            "tied_lm_heads": self.tied,
            "bytes_saved": self.bytes_saved,
        }


@dataclass
class _Use:
    graph: Any
    node: Any
    index: int


class _Scope:
    """Initializers, producers and uses of every name over a model's graphs and subgraphs."""

    def __init__(self, model: Any) -> None:
        self.graphs = list(iter_graphs(model.graph))
        self.initializers: dict[str, tuple[Any, Any]] = {}  # name -> (graph, initializer)
        self.producers: dict[str, Any] = {}
        self.uses: dict[str, list[_Use]] = {}
        for graph in self.graphs:
            for init in graph.initializer:
                self.initializers[init.name] = (graph, init)
            for node in graph.node:
                for output in node.output:
                    self.producers[output] = node
                for index, name in enumerate(node.input):
                    if name:
                        self.uses.setdefault(name, []).append(_Use(graph, node, index))

    def array(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        found = self.initializers.get(name)
        return None if found is None else numpy_helper.to_array(found[1])

    def is_token_ids(self, name: str) -> bool:
        """``name`` is ``input_ids`` (not computed), or shape-only ops applied to it."""
        while name in self.producers:
            node = self.producers[name]
            if node.op_type not in _INDEX_OPS:
                return False
            name = node.input[0]
        return name == TOKEN_INPUT

    def remove_initializer(self, name: str) -> int:
        graph, init = self.initializers.pop(name)
        size = _nbytes(init)
        kept = [i for i in graph.initializer if i.name != name]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        return size


def _nbytes(init: Any) -> int:
    from onnx import numpy_helper

    return int(numpy_helper.to_array(init).nbytes)


def _axis(node: Any) -> int:
    return next((int(a.i) for a in node.attribute if a.name == "axis"), 0)


def _token_tables(scope: _Scope) -> dict[str, list[_Use]]:
    """Float 2-D initializers every use of which is a token-embedding Gather's table (a
    one-column table is a rewritten table's scales, not an embedding)."""
    from onnx import TensorProto

    tables: dict[str, list[_Use]] = {}
    for name, (_, init) in scope.initializers.items():
        uses = scope.uses.get(name, [])
        if init.data_type != TensorProto.FLOAT or len(init.dims) != 2 or init.dims[1] < 2:
            continue
        if not uses:
            continue
        if all(
            use.node.op_type == "Gather"
            and use.index == 0
            and _axis(use.node) == 0
            and scope.is_token_ids(use.node.input[1])
            for use in uses
        ):
            tables[name] = uses
    return tables


@dataclass(frozen=True)
class _Head:
    """An lm_head weight equal to a table transposed; ``signed``: int8, no zero point."""

    weight: str
    quantized: bool
    signed: bool = False


def _tied_heads(
    scope: _Scope, table_name: str, table: np.ndarray, q: np.ndarray, scale: np.ndarray
) -> list[_Head]:
    """lm_head weights (by name) in the table's graph that hold ``table`` transposed: fp32
    exactly, or per-row int8 with exactly ``q`` (int8 [d_model, vocab]) and ``scale``."""
    from onnx import TensorProto

    heads: list[_Head] = []
    vocab, width = table.shape
    home = scope.initializers[table_name][0]
    for name, (graph, init) in scope.initializers.items():
        uses = scope.uses.get(name, [])
        if graph is not home or list(init.dims) != [width, vocab] or not uses:
            continue
        if init.data_type == TensorProto.FLOAT:
            if all(u.node.op_type == "MatMul" and u.index == 1 for u in uses) and np.array_equal(
                _value(scope, name), table.T
            ):
                heads.append(_Head(name, quantized=False))
            continue
        if init.data_type not in (TensorProto.UINT8, TensorProto.INT8):
            continue
        signed = init.data_type == TensorProto.INT8
        if not all(_per_row_weight_use(scope, u, scale, signed) for u in uses):
            continue
        stored = _value(scope, name).astype(np.int16) - (0 if signed else ZERO_POINT)
        if np.array_equal(stored, q):
            heads.append(_Head(name, quantized=True, signed=signed))
    return heads


def _value(scope: _Scope, name: str) -> np.ndarray:
    value = scope.array(name)
    if value is None:
        raise KeyError(name)
    return value


def _per_row_weight_use(scope: _Scope, use: _Use, scale: np.ndarray, signed: bool) -> bool:
    node = use.node
    if node.op_type != _PER_ROW_OP or use.index != _WEIGHT or len(node.input) <= _WEIGHT_SCALE:
        return False
    node_scale = scope.array(node.input[_WEIGHT_SCALE])
    if node_scale is None or not np.array_equal(node_scale, scale):
        return False
    zero_point = node.input[_WEIGHT_ZERO_POINT] if len(node.input) > _WEIGHT_ZERO_POINT else ""
    if signed:
        return zero_point == ""
    value = scope.array(zero_point) if zero_point else None
    return value is not None and value.shape == () and int(value) == ZERO_POINT


def quantize_embeddings(model: Any) -> EmbeddingReport:
    """Rewrite ``model`` (an ``onnx.ModelProto``, in place): token-embedding tables as
    per-row int8, stored once with a tied lm_head; see the module docstring."""
    from onnx import numpy_helper

    scope = _Scope(model)
    tables = _token_tables(scope)
    quantized = tied = saved = 0
    scalars_needed = False
    head_transposes: list[tuple[Any, Any]] = []  # (graph, Transpose node) to prepend
    for name, gathers in tables.items():
        graph, init = scope.initializers[name]
        table = numpy_helper.to_array(init).astype(np.float32)
        q_t, scale = per_column_int8(table.T)  # [d_model, vocab]: the lm_head's layout
        heads = _tied_heads(scope, name, table, q_t, scale)
        fp32_heads = [h for h in heads if not h.quantized]
        if fp32_heads:
            # An fp32 lm_head: the embedding stays fp32 (exact), the lm_head reads it.
            for head in fp32_heads:
                saved += _retarget_head(scope, head.weight, name, head_transposes)
                tied += 1
            continue
        signed = any(h.signed for h in heads)
        q = q_t.T
        stored = q.astype(np.int8) if signed else (q.astype(np.int16) + ZERO_POINT).astype(np.uint8)
        q_name, scale_name = f"{name}_emb_q", f"{name}_emb_scale"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.ascontiguousarray(stored), q_name),
                numpy_helper.from_array(scale.reshape(-1, 1), scale_name),
            ]
        )
        saved -= stored.nbytes + scale.nbytes
        for use in gathers:
            _rewrite_gather(use, q_name, scale_name, signed)
        scalars_needed = True
        saved += scope.remove_initializer(name)
        quantized += 1
        for head in heads:
            saved += _retarget_head(scope, head.weight, q_name, head_transposes)
            tied += 1
    for graph, node in reversed(head_transposes):
        graph.node.insert(0, node)
    if scalars_needed:
        present = {init.name for init in model.graph.initializer}
        model.graph.initializer.extend(
            numpy_helper.from_array(value, key)
            for key, value in (
                (ONE, np.array(1.0, dtype=np.float32)),
                (ZERO_POINT_NAME, np.array(ZERO_POINT, dtype=np.uint8)),
            )
            if key not in present
        )
    return EmbeddingReport(quantized=quantized, tied=tied, bytes_saved=saved)


def _retarget_head(
    scope: _Scope, weight: str, table: str, transposes: list[tuple[Any, Any]]
) -> int:
    """Point every use of the lm_head ``weight`` at ``Transpose(table)`` (a node in the
    weight's graph) and drop the weight; returns its bytes."""
    from onnx import helper

    graph, _ = scope.initializers[weight]
    transposed = f"{table}_transposed"
    if not any(n.output[0] == transposed for _, n in transposes):
        transposes.append(
            (
                graph,
                helper.make_node(
                    "Transpose", [table], [transposed], name=f"{table}_transpose", perm=[1, 0]
                ),
            )
        )
    for use in scope.uses.pop(weight):
        use.node.input[use.index] = transposed
    return scope.remove_initializer(weight)


def _rewrite_gather(use: _Use, q_name: str, scale_name: str, signed: bool) -> None:
    """Replace ``Gather(table, ids)`` by the dequantized rows, in place in its graph."""
    from onnx import helper

    node, graph = use.node, use.graph
    ids, out = node.input[1], node.output[0]
    prefix = node.name or out
    nodes = [
        helper.make_node("Gather", [q_name, ids], [f"{out}_emb_q"], name=f"{prefix}_emb_q"),
        helper.make_node(
            "DequantizeLinear",
            [f"{out}_emb_q", ONE, "" if signed else ZERO_POINT_NAME],
            [f"{out}_emb_int"],
            name=f"{prefix}_emb_dq",
        ),
        helper.make_node(
            "Gather", [scale_name, ids], [f"{out}_emb_scale"], name=f"{prefix}_emb_scale"
        ),
        helper.make_node(
            "Mul", [f"{out}_emb_int", f"{out}_emb_scale"], [out], name=f"{prefix}_emb_mul"
        ),
    ]
    if signed:
        nodes[1].input.pop()  # no zero point: int8 around 0
    position = list(graph.node).index(node)
    graph.node.remove(node)
    for offset, new in enumerate(nodes):
        graph.node.insert(position + offset, new)


def quantize_embeddings_file(src: Path, dst: Path) -> EmbeddingReport:
    """:func:`quantize_embeddings` on the ONNX file ``src``, saved to ``dst`` (which may be
    ``src``) when anything changed; returns what was done."""
    import onnx

    model = onnx.load(str(src))
    report = quantize_embeddings(model)
    if report.changed or src != dst:
        onnx.save(model, str(dst))
    return report
