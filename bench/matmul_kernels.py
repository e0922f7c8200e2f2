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
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.int8_per_row import quantize_per_row
from export.quantize import Int8Options, quantize_file

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


def _variants(folder: Path, k: int, n: int) -> dict[str, Path]:
    fp32 = folder / "fp32.onnx"
    _matmul_model(fp32, k, n)
    paths = {"fp32": fp32}
    recipes = {
        "dynamic int8 per-channel": Int8Options(method="dynamic"),
        **{
            f"MatMulNBits 8-bit acc {level}": Int8Options(
                method="weight_only", accuracy_level=level
            )
            for level in LEVELS
        },
    }
    for label, options in recipes.items():
        paths[label] = folder / f"{len(paths)}.onnx"
        quantize_file(fp32, paths[label], options)
    # The export's method with its u8 weights, and the s8 alternative (not an export option).
    for signed in (False, True):
        path = folder / f"{len(paths)}.onnx"
        quantize_per_row(fp32, path, signed_weights=signed)
        paths[f"per-row int8, {'s8' if signed else 'u8'} weights"] = path
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
