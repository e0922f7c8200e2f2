"""Where our runtime spends a decode: Python (cProfile) and ONNX Runtime ops (its profiler).

Runs ``rt.generate`` on real WMT14 sentences once to warm up, then once profiled, and
prints the top Python functions by own time and the ORT time per op type and per node
(the output projection ``lm_head`` shows up by name).

    python -m bench.profile --package PKG --precision int8 --batch-size 32 --num-beams 1
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Node-name fragments of the decoder's parts across the exported families (BART/Marian/
# Pegasus/M2M100 name them like the first, T5 like the second); first match wins.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cross-attention", ("encoder_attn", "EncDecAttention")),
    ("self-attention", ("self_attn", "SelfAttention")),
    ("feed-forward", ("fc1", "fc2", "DenseReluDense")),
    ("lm_head", ("lm_head",)),
)


def ort_summary(
    trace: list[dict[str, Any]], top: int = 12
) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """Microseconds per op type, per node name (the ``top`` ones) and per model part
    (``PARTS``; the rest is "other") from an ORT profile trace (node events)."""
    by_type: Counter[str] = Counter()
    by_node: Counter[str] = Counter()
    for event in trace:
        if event.get("cat") != "Node" or not str(event.get("name", "")).endswith("_kernel_time"):
            continue
        op = event.get("args", {}).get("op_name", "?")
        if op == "If":  # the merged decoder's branch node: its time is its subgraph's nodes
            continue
        by_type[op] += int(event.get("dur", 0))
        by_node[str(event["name"]).removesuffix("_kernel_time")] += int(event.get("dur", 0))
    by_part: Counter[str] = Counter()
    for node, us in by_node.items():
        part = next((label for label, names in PARTS if any(n in node for n in names)), "other")
        by_part[part] += us
    return by_type, Counter(dict(by_node.most_common(top))), by_part


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one generate call and print the summaries."""
    import onnxruntime as ort

    from bench.inputs import translation_texts
    from service.runtime import GenerationOptions, load_runtime
    from service.runtime import model as runtime_model
    from service.runtime.int8_weights import Int8Weights
    from service.runtime.model_source import model_source

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--package", type=Path, required=True)
    p.add_argument("--precision", default="int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--num-beams", type=int, default=1)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)

    profiled: list[ort.InferenceSession] = []
    original = runtime_model.make_session

    def make_session(
        path: Path,
        device: str,
        intra_op_threads: int,
        int8_weights: Int8Weights = "as_exported",
        shared_cross_kv: bool = False,
    ) -> ort.InferenceSession:
        # Same options as the runtime, plus ORT's profiler (a bench-only wrapper).
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        opts.enable_profiling = True
        opts.profile_file_prefix = f"/tmp/ort-profile-{path.stem}"
        with model_source(path, int8_weights, device, shared_cross_kv) as source:
            session = ort.InferenceSession(
                source, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        profiled.append(session)
        return session

    runtime_model.make_session = make_session
    try:
        rt = load_runtime(
            args.package, device="cpu", precision=args.precision, intra_op_threads=args.threads
        )
    finally:
        runtime_model.make_session = original
    opts = rt.resolve(
        GenerationOptions(
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=args.max_new_tokens,
            num_beams=args.num_beams,
        )
    )
    ids = rt.encode_texts(translation_texts(args.batch_size).texts)
    rt.generate(ids, opts)
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    rt.generate(ids, opts)
    profiler.disable()
    wall = time.perf_counter() - start
    print(
        f"wall {wall * 1000:.0f} ms for batch {args.batch_size}, beams {args.num_beams}, "
        f"{args.max_new_tokens} new tokens (two calls profiled by ORT: warm-up + this)"
    )
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())
    for session in profiled:
        trace_path = Path(session.end_profiling())
        trace = json.loads(trace_path.read_text())
        trace_path.unlink()
        by_type, by_node, by_part = ort_summary(trace, args.top)
        total = sum(by_type.values()) or 1
        name = trace_path.name.split("_")[0].removeprefix("ort-profile-")
        print(f"ORT {name}: {total / 1000:.0f} ms in kernels (two calls)")
        for op, us in by_type.most_common(args.top):
            print(f"  {op:<28} {us / 1000:>9.1f} ms {us / total:>6.1%}")
        print("  by part:")
        for part, us in by_part.most_common():
            print(f"    {part:<26} {us / 1000:>9.1f} ms {us / total:>6.1%}")
        print("  top nodes:")
        for node, us in by_node.most_common(args.top):
            print(f"    {node:<60} {us / 1000:>9.1f} ms {us / total:>6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
