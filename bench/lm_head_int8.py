"""Experiment: a package copy whose int8 decoder also runs the output projection in int8.

The export keeps ``lm_head`` in fp32 when the fully quantized decoder is not token-exact on
its validation inputs; on the full-size Marian that projection (d_model x 58k vocab) is the
largest MatMul of every decoder step. This tool rewrites the ``lm_head`` MatMul of both
merged-decoder branches into ``com.microsoft.DynamicQuantizeMatMul`` with per-column int8
weights (ORT's ``quantize_dynamic`` on the merged fused graph yields a model ORT refuses to
load), and links every other package file, so the engine benchmark can measure the gain.

    python -m bench.lm_head_int8 --package PKG --out .cache/bench/exp-lmhead-int8
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from service.runtime.manifest import DECODER_FILE


def quantize_columns(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-column int8 weights and float scales (``weight ≈ q * scale``)."""
    scale = np.abs(weight).max(axis=0) / 127.0
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    q = np.clip(np.rint(weight / scale), -127, 127).astype(np.int8)
    return q, scale


def rewrite(model: Any) -> int:
    """Replace every ``/lm_head/MatMul`` (in any subgraph) whose weight is a top-level
    initializer; returns how many nodes were replaced."""
    import onnx
    from onnx import helper, numpy_helper

    from export.quantize import iter_graphs

    inits = {i.name: i for i in model.graph.initializer}
    done: dict[str, tuple[str, str, str]] = {}
    replaced = 0
    for graph in iter_graphs(model.graph):
        for index, node in enumerate(list(graph.node)):
            if node.op_type != "MatMul" or not node.name.startswith("/lm_head/"):
                continue
            weight_name = node.input[1]
            if weight_name not in inits:
                continue
            if weight_name not in done:
                weight = numpy_helper.to_array(inits[weight_name])
                q, scale = quantize_columns(weight)
                names = (f"{weight_name}_q8", f"{weight_name}_scale", f"{weight_name}_zp")
                model.graph.initializer.extend(
                    [
                        numpy_helper.from_array(q, names[0]),
                        numpy_helper.from_array(scale, names[1]),
                        numpy_helper.from_array(np.zeros_like(q[0]), names[2]),
                    ]
                )
                done[weight_name] = names
            q_name, scale_name, zp_name = done[weight_name]
            new = helper.make_node(
                "DynamicQuantizeMatMul",
                [node.input[0], q_name, scale_name, zp_name],
                list(node.output),
                name=node.name + "_int8",
                domain="com.microsoft",
            )
            graph.node.remove(node)
            graph.node.insert(index, new)
            replaced += 1
    for weight_name in done:
        model.graph.initializer.remove(inits[weight_name])
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    return replaced


def main(argv: Sequence[str] | None = None) -> int:
    """Write the experimental package copy."""
    import onnx

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--package", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="folder to hold the package copy")
    args = p.parse_args(argv)
    src = args.package.resolve()
    dst = args.out / src.name
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "int8").mkdir(parents=True)
    for entry in src.iterdir():
        if entry.name != "int8":
            (dst / entry.name).symlink_to(entry)
    for entry in (src / "int8").iterdir():
        if entry.name != DECODER_FILE:
            (dst / "int8" / entry.name).symlink_to(entry)
    model = onnx.load(str(src / "int8" / DECODER_FILE))
    count = rewrite(model)
    onnx.save(model, str(dst / "int8" / DECODER_FILE))
    print(f"{dst}: {count} lm_head MatMul nodes now int8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
