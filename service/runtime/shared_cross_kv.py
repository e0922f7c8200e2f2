"""One copy of the cross-attention keys/values per source, shared by its decoder rows.

Beam search (and sampling several sequences) runs ``k`` decoder rows per source sentence.
optimum's merged decoder takes the cross-attention K/V as inputs with one row per decoder
row, so a cohort used to hold ``k`` identical copies of every sentence's encoder K/V, and
each step's score and value MatMuls read all of them, with a single query row each:
41 % of the decoder's kernel time at beam 4, batch 32 on full Marian
(docs/benchmarks.md, "Why beam 4 at batch 32 still misses").

This load-time rewrite lets ``past_key_values.{i}.encoder.key`` / ``.value`` have ``B``
rows while the decoder runs ``R = B * r`` rows, rows ``b * r .. b * r + r - 1`` belonging
to source ``b``. Each cross-attention MatMul ``A [R, heads, T, X] @ KV [B, heads, X, Y]``
becomes

    A -> [B, r, heads, T, X] -> [B, heads, r * T, X]  (a transpose of the small operand)
    @ KV                                              (one GEMM per source and head)
    -> [B, heads, r, T, Y] -> [R, heads, T, Y]

which is the same arithmetic: each output element is the same dot product over ``X``, but
ORT's GEMM may sum it in another order for ``r`` query rows than for one, so logits move
by about 1e-6 (as padding does). In fp32 tokens are the same unless two logits are that
close (beam search on all six families equals transformers' in the parity tests); in int8
the next layer's per-row activation quantization can amplify it (full Marian int8: logits
up to 0.03 apart, the same beam-4 tokens for 64/64 WMT sentences with natural stopping;
docs/benchmarks.md, ``engine-shared-kv``). With ``r = 1`` (cross K/V with one row per
decoder row, as before) it computes what it did. ``r`` is taken from the shapes at run
time (``R / B``), so one graph serves both layouts.

The rewrite is all or nothing: it changes a model only when every layer's cross K/V feed
nothing but batch-preserving ops (``Transpose`` keeping axis 0, a scalar ``Mul``/``Div``)
into a rank-4 ``MatMul`` as its second operand, and shape reads of axes other than the
batch; anything else (a ``Reshape`` folding heads into the batch, as older exports do)
leaves the model untouched and unmarked. A rewritten model carries the metadata entry
:data:`MARKER`, which :func:`session_shares_cross_kv` reads back from the ORT session.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from service.runtime.int8_weights import iter_graphs

log = logging.getLogger(__name__)

MARKER = "s2s.shared_cross_kv"
_CROSS_INPUT = re.compile(r"^past_key_values\.(\d+)\.encoder\.(key|value)$")
_BATCH_PRESERVING = {"Transpose", "Mul", "Div"}


@dataclass(frozen=True)
class _Site:
    """One cross-attention MatMul whose second operand comes from a cross K/V input."""

    graph: Any
    matmul: Any
    source: str  # the cross K/V input name: its axis 0 is the source batch


def session_shares_cross_kv(session: Any) -> bool:
    """True when the ORT session's model was rewritten by :func:`share_cross_kv`."""
    return session.get_modelmeta().custom_metadata_map.get(MARKER) == "1"


def share_cross_kv(model: Any) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``, in place) so its cross-attention K/V
    inputs may hold one row per source; returns the number of MatMuls rewritten, 0 when
    the model was left as it was (no cross K/V inputs, or a layout this does not know)."""
    if any(prop.key == MARKER for prop in model.metadata_props):
        return 0
    constants = _constant_values(model)
    sites: list[_Site] = []
    for graph in iter_graphs(model.graph):
        found = _sites_in(graph, constants)
        if found is None:
            log.info("cross K/V layout not recognised in %s: left per decoder row", graph.name)
            return 0
        sites.extend(found)
    if not sites:
        return 0
    for site in sites:
        _group_matmul(site)
    entry = model.metadata_props.add()
    entry.key, entry.value = MARKER, "1"
    return len(sites)


def _constant_values(model: Any) -> dict[str, Any]:
    """Names of the model's one-element constant tensors (initializers, ``Constant``
    outputs, in any graph) -> their values as numpy arrays. Only those: the checks accept
    nothing else (a scalar factor, one gathered axis), and converting every weight of a
    decoder would copy hundreds of MB at load for nothing."""
    from onnx import numpy_helper

    tensors: dict[str, Any] = {}
    for scope in iter_graphs(model.graph):
        tensors.update((init.name, init) for init in scope.initializer)
        for node in scope.node:
            if node.op_type == "Constant":
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    tensors[node.output[0]] = value
    return {
        name: numpy_helper.to_array(tensor)
        for name, tensor in tensors.items()
        if all(dim == 1 for dim in tensor.dims)
    }


def _sites_in(graph: Any, constants: dict[str, Any]) -> list[_Site] | None:
    """The cross-attention MatMuls fed by cross K/V inputs used in ``graph``; None when a
    use of a cross K/V input is one this rewrite cannot keep correct."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    used = sorted(name for name in consumers if _CROSS_INPUT.match(name))
    if not used:
        return []
    sites: list[_Site] = []
    for source in used:
        matmuls = _trace(source, consumers, constants)
        if not matmuls:  # None (a use it cannot keep correct) or no MatMul at all
            return None
        sites.extend(_Site(graph, matmul, source) for matmul in matmuls)
    return sites


def _trace(
    source: str, consumers: dict[str, list[Any]], constants: dict[str, Any]
) -> list[Any] | None:
    """MatMuls reached from ``source`` through batch-preserving ops; None on any other use."""
    matmuls: list[Any] = []
    frontier = [source]
    while frontier:
        name = frontier.pop()
        for node in consumers.get(name, []):
            if node.op_type == "MatMul" and list(node.input).index(name) == 1:
                matmuls.append(node)
            elif node.op_type == "Shape":
                if not _reads_non_batch_axes(node, consumers, constants):
                    return None
            elif node.op_type in _BATCH_PRESERVING and _keeps_batch(node, name, constants):
                frontier.extend(node.output)
            else:
                return None
    return matmuls


def _keeps_batch(node: Any, name: str, constants: dict[str, Any]) -> bool:
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        return perm is not None and len(perm) == 4 and perm[0] == 0
    other = [x for x in node.input if x != name]
    return (
        list(node.input).index(name) == 0
        and len(other) == 1
        and other[0] in constants
        and constants[other[0]].size == 1
    )


def _reads_non_batch_axes(
    shape: Any, consumers: dict[str, list[Any]], constants: dict[str, Any]
) -> bool:
    """A ``Shape`` of a cross K/V whose every use gathers one constant axis other than 0."""
    if any(a.name in ("start", "end") for a in shape.attribute):
        return False
    for node in consumers.get(shape.output[0], []):
        if node.op_type != "Gather" or node.input[0] != shape.output[0]:
            return False
        index = constants.get(node.input[1])
        if index is None or index.size != 1 or int(index.reshape(-1)[0]) in (0, -4):
            return False
    return True


def _group_matmul(site: _Site) -> None:
    """Replace ``A @ KV`` (A [R, H, T, X], KV [B, H, X, Y]) by the grouped form, in place."""
    from onnx import TensorProto, helper

    graph, matmul = site.graph, site.matmul
    prefix = f"{matmul.name or matmul.output[0]}/shared_cross_kv"
    operand, original_out = matmul.input[0], matmul.output[0]
    nodes: list[Any] = []

    def out(suffix: str) -> str:
        return f"{prefix}/{suffix}"

    def constant(suffix: str, values: list[int]) -> str:
        tensor = helper.make_tensor(out(suffix), TensorProto.INT64, [len(values)], values)
        nodes.append(helper.make_node("Constant", [], [out(suffix)], value=tensor))
        return out(suffix)

    def dim(of: str, axis: int, suffix: str) -> str:
        nodes.append(helper.make_node("Shape", [of], [out(f"{suffix}_shape")]))
        index = constant(f"{suffix}_axis", [axis])
        nodes.append(helper.make_node("Gather", [out(f"{suffix}_shape"), index], [out(suffix)]))
        return out(suffix)

    def reshape(data: str, parts: list[str], suffix: str) -> str:
        nodes.append(helper.make_node("Concat", parts, [out(f"{suffix}_to")], axis=0))
        nodes.append(helper.make_node("Reshape", [data, out(f"{suffix}_to")], [out(suffix)]))
        return out(suffix)

    def swap_12(data: str, suffix: str) -> str:
        nodes.append(helper.make_node("Transpose", [data], [out(suffix)], perm=[0, 2, 1, 3, 4]))
        return out(suffix)

    rows, heads = dim(operand, 0, "rows"), dim(operand, 1, "heads")
    steps, inner = dim(operand, 2, "steps"), dim(operand, 3, "inner")
    sources = dim(site.source, 0, "sources")
    rest = constant("rest", [-1])
    split = reshape(operand, [sources, rest, heads, steps, inner], "operand_5d")
    grouped = reshape(swap_12(split, "operand_by_head"), [sources, heads, rest, inner], "operand")
    product = out("product")
    nodes.append(helper.make_node("MatMul", [grouped, matmul.input[1]], [product]))
    width = dim(product, 3, "width")
    product_5d = reshape(product, [sources, heads, rest, steps, width], "product_5d")
    by_row = swap_12(product_5d, "product_by_row")
    nodes.append(
        helper.make_node("Concat", [rows, heads, steps, width], [out("result_to")], axis=0)
    )
    nodes.append(helper.make_node("Reshape", [by_row, out("result_to")], [original_out]))
    position = list(graph.node).index(matmul)
    graph.node.remove(matmul)
    for offset, node in enumerate(nodes):
        graph.node.insert(position + offset, node)
