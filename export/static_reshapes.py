"""Constant ``Reshape`` targets where symbolic shape inference proves them.

optimum's exports compute most ``Reshape`` targets at run time (``view(bsz, tgt_len,
heads, head_dim)`` becomes ``Shape -> Gather -> Unsqueeze -> Concat``), because batch and
lengths are dynamic. ONNX Runtime cannot fold those chains, so a full Marian decoder step
at batch 1 runs about 40 % of its ~1,100 nodes only to rebuild shapes it ran the step
before, each costing a few microseconds. A ``Reshape`` target needs no run-time values
when every output dimension is either a constant, or the input's dimension at the same
position (``0``: copy it), or the one dimension left (``-1``: infer it). Symbolic shape
inference (ONNX Runtime's tool) gives both shapes as expressions; where they prove such a
target it becomes an initializer, and the shape chains nothing reads any more are removed.

The rewrite keeps every tensor's shape and value: it is exact, whatever the inputs.
(ORT's transformer optimizer has a fusion for this, ``fuse_reshape``, but it crashes on
optimum's exports: ``export/optimize.py``.)
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from service.runtime.int8_weights import iter_graphs

Dim = int | str | None
# A graph input's dimension that the model's contract ties to another one: name ->
# (base name, offset), meaning ``name == base + offset`` (the positioned decoder's
# attention mask covers its past plus the new step). Shape inference cannot know it from
# the graph, so a broadcast between the two stops it.
DimRelations = Mapping[str, tuple[str, int]]


def _dims(value_info: Any) -> list[Dim] | None:
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def reshape_target(data: list[Dim], out: list[Dim]) -> list[int] | None:
    """The constant target that turns a tensor of shape ``data`` into one of shape ``out``
    (``0`` copies a dimension, one ``-1`` is inferred), or None when the shapes do not
    prove one: an unknown dimension, a literal zero, or more than one dimension that is
    neither constant nor the input's at the same position."""
    if any(d is None for d in data) or any(d is None for d in out):
        return None
    target: list[int] = []
    for position, dim in enumerate(out):
        if isinstance(dim, int):
            if dim == 0:
                return None  # a literal 0 would mean "copy" (allowzero=0)
            target.append(dim)
        elif position < len(data) and data[position] == dim:
            target.append(0)
        else:
            target.append(-1)
    return target if target.count(-1) <= 1 else None


# Initializers above this many elements are shown to shape inference as typed inputs:
# their shapes are all it needs, and copying the weights would double the memory.
_SHAPE_ONLY_ELEMENTS = 4096


def _without_weights(model: Any, relations: DimRelations) -> Any:
    """A copy of ``model`` for shape inference: its large initializers become typed graph
    inputs, and each input with a related dimension is built from a base-sized input and
    an offset-sized one (a ``Concat``), so that its size is the base's expression."""
    from onnx import ModelProto, helper

    light = ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    graph = light.graph
    graph.name = model.graph.name
    graph.node.extend(_related_inputs(model.graph.input, relations, graph.input))
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    listed = {value.name for value in model.graph.input}
    for init in model.graph.initializer:
        elements = int(np.prod(init.dims)) if init.dims else 1
        if elements <= _SHAPE_ONLY_ELEMENTS:
            graph.initializer.append(init)
        elif init.name not in listed:
            graph.input.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    return light


def _related_inputs(inputs: Any, relations: DimRelations, into: Any) -> list[Any]:
    """Append ``inputs`` to ``into``, each one with a related dimension replaced by two
    parts joined on that axis; returns the joining nodes."""
    from onnx import helper

    joins: list[Any] = []
    for value in inputs:
        dims = _dims(value)
        axes = [i for i, d in enumerate(dims or []) if isinstance(d, str) and d in relations]
        if dims is None or len(axes) != 1:
            into.append(value)
            continue
        axis = axes[0]
        base, offset = relations[str(dims[axis])]
        elem_type = value.type.tensor_type.elem_type
        parts = []
        for suffix, size in (("base", base), ("offset", offset)):
            part = [*dims]
            part[axis] = size
            parts.append(helper.make_tensor_value_info(f"{value.name}__{suffix}", elem_type, part))
        into.extend(parts)
        joins.append(helper.make_node("Concat", [p.name for p in parts], [value.name], axis=axis))
    return joins


def _inferred_shapes(model: Any, relations: DimRelations) -> dict[str, list[Dim]]:
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    # On failure the tool writes its partial model into the working directory.
    with tempfile.TemporaryDirectory() as scratch, contextlib.chdir(scratch):
        inferred = SymbolicShapeInference.infer_shapes(
            _without_weights(model, relations), auto_merge=False
        )
    graph = inferred.graph
    shapes: dict[str, list[Dim]] = {}
    for value_info in [*graph.input, *graph.value_info, *graph.output]:
        dims = _dims(value_info)
        if dims is not None:
            shapes[value_info.name] = dims
    return shapes


def _remove_dead_nodes(graph: Any) -> int:
    """Drop nodes none of whose outputs is read (ONNX ops have no side effects)."""
    needed = {output.name for output in graph.output}
    kept: list[Any] = []
    for node in reversed(list(graph.node)):
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(_node_reads(node))
    removed = len(graph.node) - len(kept)
    if removed:
        del graph.node[:]
        graph.node.extend(reversed(kept))
        unused = [init for init in graph.initializer if init.name not in needed]
        for init in unused:
            graph.initializer.remove(init)
    return removed


def _node_reads(node: Any) -> set[str]:
    """The values ``node`` reads, with those its subgraphs (If branches) read from the
    outer scope."""
    from onnx import helper

    alone = helper.make_graph([node], "reads", [], [])
    return {name for graph in iter_graphs(alone) for n in graph.node for name in n.input if name}


def constant_reshape_targets(model: Any, relations: DimRelations | None = None) -> tuple[int, int]:
    """Rewrite ``model`` (an ``onnx.ModelProto`` without subgraphs to rewrite: an unmerged
    encoder or decoder) in place; returns (Reshapes given a constant target, nodes
    removed). ``relations`` are the input dimensions the model's contract ties together
    (:data:`DimRelations`); the targets are then exact for inputs that keep it. Raises what
    symbolic shape inference raises on a graph it cannot follow."""
    from onnx import numpy_helper

    graph = model.graph
    shapes = _inferred_shapes(model, relations or {})
    constants = {init.name for init in graph.initializer}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] in constants:
            continue
        if any(a.name == "allowzero" and a.i == 1 for a in node.attribute):
            continue
        data, out = shapes.get(node.input[0]), shapes.get(node.output[0])
        target = reshape_target(data, out) if data is not None and out is not None else None
        if target is None:
            continue
        name = f"{node.output[0]}__static_target"
        graph.initializer.append(numpy_helper.from_array(np.array(target, np.int64), name))
        constants.add(name)
        node.input[1] = name
        rewritten += 1
    return rewritten, _remove_dead_nodes(graph) if rewritten else 0


def constant_reshape_targets_file(
    path: Path, relations: DimRelations | None = None
) -> tuple[int, int]:
    """:func:`constant_reshape_targets` on the model file at ``path``, saved in place when
    anything changed."""
    import onnx

    model = onnx.load(str(path))
    counts = constant_reshape_targets(model, relations)
    if counts[0]:
        onnx.save(model, str(path))
    return counts


def try_constant_reshape_targets_model(
    model: Any, relations: DimRelations | None = None
) -> tuple[int, str | None]:
    """:func:`constant_reshape_targets`, best effort: (Reshapes given a constant target,
    None), or (0, why) where shape inference cannot follow the graph (``model`` is then
    unchanged: inference runs before any rewrite)."""
    try:
        rewritten, _removed = constant_reshape_targets(model, relations)
    except Exception as exc:  # shape inference raises many types; the graph stays valid
        return 0, f"Reshape targets left dynamic: {type(exc).__name__}: {exc}"
    return rewritten, None


def try_constant_reshape_targets(
    path: Path, relations: DimRelations | None = None
) -> tuple[int, str | None]:
    """:func:`try_constant_reshape_targets_model` on the model file at ``path``, saved in
    place when anything changed."""
    import onnx

    model = onnx.load(str(path))
    rewritten, failure = try_constant_reshape_targets_model(model, relations)
    if rewritten:
        onnx.save(model, str(path))
    return rewritten, failure
