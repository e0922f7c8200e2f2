"""Experiment: one weight matrix, every int8 kernel ORT offers, timed on this CPU.

The engine suite showed the weight-only int8 package slower than fp32 at batch 32-64 on
an AVX2-only CPU. This isolates the kernel: a single ``MatMul`` with a Marian-sized weight
(FFN in / out, output projection), as fp32, as dynamic int8 (``quantize_dynamic``,
per-channel) and as weight-only int8 ``MatMulNBits`` at each ``accuracy_level``; each is
run with M activation rows (decoder rows in one step) on one intra-op thread, interleaved.

    python -m bench.matmul_kernels --rows 1,16,64
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# (name, K, N): Marian opus-mt-en-de shapes.
SHAPES = (("ffn fc1 512x2048", 512, 2048), ("lm_head 512x58101", 512, 58101))
LEVELS = (0, 1, 4)


def _matmul_model(path: Path, k: int, n: int, seed: int = 0) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(seed).standard_normal((k, n), dtype=np.float32) * 0.05
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")],
        "proj",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["m", n])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))


def _per_row_model(fp32: Path, path: Path) -> None:
    """The MatMul as per-row symmetric int8 activations x per-column int8 weights.

    Each row gets its own scale (max |x| / 127), stored as uint8 around a common zero point
    128 so the u8 x s8 ``MatMulIntegerToFloat`` kernel applies; the row scale multiplies the
    result afterwards. No scale is shared between rows, so results are batch-invariant.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(fp32))
    weight = numpy_helper.to_array(model.graph.initializer[0])
    col_scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127.0
    weight_q = np.clip(np.round(weight / col_scale), -127, 127).astype(np.int8)
    consts = [
        numpy_helper.from_array(weight_q, "w_q"),
        numpy_helper.from_array(col_scale.astype(np.float32), "w_scale"),
        numpy_helper.from_array(np.array(1.0 / 127.0, dtype=np.float32), "inv127"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "eps"),
        numpy_helper.from_array(np.array(128.0, dtype=np.float32), "shift"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "lo"),
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "hi"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "zp"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last"),
    ]
    node = helper.make_node
    nodes = [
        node("Abs", ["x"], ["ax"]),
        node("ReduceMax", ["ax", "last"], ["mx"], keepdims=1),
        node("Max", ["mx", "eps"], ["mxe"]),
        node("Mul", ["mxe", "inv127"], ["rs"]),
        node("Div", ["x", "rs"], ["xs"]),
        node("Round", ["xs"], ["xr"]),
        node("Add", ["xr", "shift"], ["xsh"]),
        node("Clip", ["xsh", "lo", "hi"], ["xc"]),
        node("Cast", ["xc"], ["xq"], to=TensorProto.UINT8),
        node(
            "MatMulIntegerToFloat",
            ["xq", "w_q", "one", "w_scale", "zp"],
            ["yq"],
            domain="com.microsoft",
        ),
        node("Mul", ["yq", "rs"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "proj", list(model.graph.input), list(model.graph.output), consts
    )
    onnx.save(
        helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.microsoft", 1)],
        ),
        str(path),
    )


def _variants(folder: Path, k: int, n: int) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    fp32 = folder / "fp32.onnx"
    _matmul_model(fp32, k, n)
    paths = {"fp32": fp32}
    dynamic = folder / "dynamic.onnx"
    quantize_dynamic(fp32, dynamic, per_channel=True, weight_type=QuantType.QInt8)
    paths["dynamic int8 per-channel"] = dynamic
    per_row = folder / "per-row.onnx"
    _per_row_model(fp32, per_row)
    paths["per-row int8 (MatMulIntegerToFloat)"] = per_row
    for level in LEVELS:
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(fp32)), bits=8, block_size=128, is_symmetric=True, accuracy_level=level
        )
        quantizer.process()
        out = folder / f"nbits-{level}.onnx"
        onnx.save(quantizer.model.model, str(out))
        paths[f"MatMulNBits 8-bit acc {level}"] = out
    return paths


def measure(k: int, n: int, rows: Sequence[int], repeats: int) -> dict[str, dict[int, float]]:
    """Median ms per call of every variant, per number of activation rows."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    result: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {
            label: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for label, path in _variants(Path(tmp), k, n).items()
        }
        for m in rows:
            x = np.random.default_rng(m).standard_normal((m, k), dtype=np.float32)
            times: dict[str, list[float]] = {label: [] for label in sessions}
            for session in sessions.values():
                session.run(None, {"x": x})
            for _ in range(repeats):
                for label, session in sessions.items():
                    start = time.perf_counter()
                    session.run(None, {"x": x})
                    times[label].append((time.perf_counter() - start) * 1000)
            for label, values in times.items():
                result.setdefault(label, {})[m] = statistics.median(values)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Print one markdown table per weight shape: ms per call and speed-up over fp32."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", default="1,16,64", help="activation rows per call")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    rows = [int(r) for r in args.rows.split(",")]
    for name, k, n in SHAPES:
        table = measure(k, n, rows, args.repeats)
        print(f"\n{name}: median ms per call, 1 thread (speed-up over fp32)\n")
        print("| kernel | " + " | ".join(f"M={m}" for m in rows) + " |")
        print("|---|" + "---:|" * len(rows))
        for label, cells in table.items():
            values = [f"{cells[m]:.3f} ({table['fp32'][m] / cells[m]:.2f}×)" for m in rows]
            print(f"| {label} | " + " | ".join(values) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
