"""Work bound: how many tokens/s the int8 MatMuls alone allow on this CPU.

Counts the multiply-adds of every weight MatMul that one generated token costs (its
decoder layers and output projection, plus its share of encoding the source and of the
cross-attention keys/values), times ORT's per-row int8 MatMul (the export's kernel,
activation quantization included) at the same shapes and row counts on one thread, and
divides: the tokens/s a backend built on that kernel would reach if attention, norms,
the cache and search cost nothing. Set beside the engine run's measured rows (same cells,
same source lengths), it says how far each backend is from the bound and whether a
target is reachable at all with this kernel.

    python -m bench.ceiling --engine .cache/bench/engine.json --checkpoint CKPT
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.matmul_kernels import matmul_model
from export.int8_per_row import quantize_per_row

Shape = tuple[int, int]  # (K, N) of one weight matrix


@dataclass(frozen=True)
class LinearWork:
    """Weight matrices (K, N) -> how many of them, per unit of work."""

    per_source_token: dict[Shape, int]  # encoder layers and cross-attention K/V
    per_generated_token: dict[Shape, int]  # decoder layers and the output projection


def _add(counts: dict[Shape, int], shape: Shape, times: int) -> None:
    counts[shape] = counts.get(shape, 0) + times


def linear_work(config: dict[str, Any]) -> LinearWork:
    """The weight MatMuls of a BART-like (Marian, BART, Pegasus, ...) or T5 config."""
    source: dict[Shape, int] = {}
    generated: dict[Shape, int] = {}
    if config.get("model_type") in ("t5", "mt5"):
        d, inner, ff = config["d_model"], config["d_kv"] * config["num_heads"], config["d_ff"]
        enc, dec = config["num_layers"], config.get("num_decoder_layers") or config["num_layers"]
        ffn_in = 2 if str(config.get("feed_forward_proj", "relu")).startswith("gated") else 1
    else:
        d, inner = config["d_model"], config["d_model"]
        ff, enc, dec = config["encoder_ffn_dim"], config["encoder_layers"], config["decoder_layers"]
        ffn_in = 1
    dec_ff = config.get("decoder_ffn_dim", ff)
    _add(source, (d, inner), enc * 3)  # encoder q, k, v
    _add(source, (inner, d), enc)  # encoder output projection
    _add(source, (d, ff), enc * ffn_in)
    _add(source, (ff, d), enc)
    _add(source, (d, inner), dec * 2)  # cross-attention k, v (once per source token)
    _add(generated, (d, inner), dec * 4)  # self q, k, v and cross q
    _add(generated, (inner, d), dec * 2)  # self and cross output projections
    _add(generated, (d, dec_ff), dec * ffn_in)
    _add(generated, (dec_ff, d), dec)
    _add(generated, (d, config["vocab_size"]), 1)  # output projection
    return LinearWork(source, generated)


def macs(counts: dict[Shape, int]) -> int:
    """Multiply-adds per row of all the matrices in ``counts``."""
    return sum(k * n * times for (k, n), times in counts.items())


class KernelTimer:
    """Seconds per row of ORT's per-row int8 MatMul, by (K, N) and row count (1 thread)."""

    def __init__(self, folder: Path, repeats: int = 7) -> None:
        self.folder, self.repeats = folder, repeats
        self.sessions: dict[Shape, Any] = {}
        self.cache: dict[tuple[Shape, int], float] = {}

    def _session(self, shape: Shape) -> Any:
        import onnxruntime as ort

        if shape not in self.sessions:
            fp32 = self.folder / f"{shape[0]}x{shape[1]}.onnx"
            int8 = fp32.with_suffix(".int8.onnx")
            matmul_model(fp32, *shape)
            quantize_per_row(fp32, int8)
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            self.sessions[shape] = ort.InferenceSession(
                str(int8), options, providers=["CPUExecutionProvider"]
            )
        return self.sessions[shape]

    def seconds_per_row(self, shape: Shape, rows: int) -> float:
        """Median time of one call with ``rows`` activation rows, divided by ``rows``."""
        key = (shape, rows)
        if key not in self.cache:
            session = self._session(shape)
            x = np.random.default_rng(rows).standard_normal((rows, shape[0]), dtype=np.float32)
            session.run(None, {"x": x})
            times = []
            for _ in range(self.repeats):
                start = time.perf_counter()
                session.run(None, {"x": x})
                times.append(time.perf_counter() - start)
            self.cache[key] = statistics.median(times) / rows
        return self.cache[key]

    def seconds(self, counts: dict[Shape, int], rows: int) -> float:
        """Time per row of all the matrices in ``counts`` at ``rows`` rows per call."""
        return sum(times * self.seconds_per_row(s, rows) for s, times in counts.items())


def bound_tokens_per_s(
    work: LinearWork,
    timer: KernelTimer,
    batch: int,
    source_per_generated: float,
    source_per_input: float,
    rows_cap: int,
) -> float:
    """Generated tokens/s if only the int8 MatMuls cost time: ``batch`` decoder rows per
    call, the batch's source tokens (at most ``rows_cap``) as encoder rows per call."""
    encoder_rows = max(1, min(rows_cap, round(batch * source_per_input)))
    per_token = timer.seconds(work.per_generated_token, batch)
    per_token += source_per_generated * timer.seconds(work.per_source_token, encoder_rows)
    return 1.0 / per_token


def ceiling_rows(
    document: dict[str, Any], config: dict[str, Any], timer: KernelTimer, rows_cap: int = 2048
) -> list[dict[str, Any]]:
    """One row per measured greedy fixed-length cell of ``document``: the bound, and each
    1-thread int8 backend's share of it."""
    work = linear_work(config)
    cells: dict[int, dict[str, Any]] = {}
    for row in document["rows"]:
        if "tokens_per_s" not in row or (row["search"], row["stop"]) != ("greedy", "fixed"):
            continue
        cell = cells.setdefault(row["batch_size"], {"batch": row["batch_size"]})
        if "source_tokens" in row:
            cell["source_per_generated"] = row["source_tokens"] / row["tokens"]
            cell["source_per_input"] = row["source_tokens"] / row["texts"]
        cell[row["label"]] = row["tokens_per_s"]
    out = []
    for batch, cell in sorted(cells.items()):
        ratio = cell.get("source_per_generated")
        if ratio is None:
            continue
        bound = bound_tokens_per_s(work, timer, batch, ratio, cell["source_per_input"], rows_cap)
        cell["bound_tokens_per_s"] = bound
        cell["macs_per_generated_token"] = macs(work.per_generated_token) + ratio * macs(
            work.per_source_token
        )
        out.append(cell)
    return out


def markdown(rows: Iterable[dict[str, Any]], labels: Sequence[str]) -> str:
    """The bound beside each measured backend (tokens/s and share of the bound)."""
    head = "| batch | source / generated tokens | MMACs per token | bound tok/s (1 thread) |"
    head += "".join(f" {label} |" for label in labels)
    lines = [head, "|---" * (4 + len(labels)) + "|"]
    for row in rows:
        cells = [
            str(row["batch"]),
            f"{row['source_per_generated']:.2f}",
            f"{row['macs_per_generated_token'] / 1e6:.0f}",
            f"{row['bound_tokens_per_s']:.0f}",
        ]
        for label in labels:
            value = row.get(label)
            share = (
                "–" if value is None else f"{value:.0f} ({value / row['bound_tokens_per_s']:.0%})"
            )
            cells.append(share)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the bound table for an engine document; ``--json`` keeps it."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--engine", type=Path, required=True, help="a bench.engine document")
    p.add_argument("--checkpoint", type=Path, help="its checkpoint (default: the document's)")
    p.add_argument("--labels", default="ours int8 t1,ct2 int8 t1,ours int8 t2,ct2 int8 t2")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    document = json.loads(args.engine.read_text())
    checkpoint = args.checkpoint or Path(document["checkpoint"])
    config = json.loads((checkpoint / "config.json").read_text())
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rows = ceiling_rows(document, config, KernelTimer(Path(tmp), args.repeats))
    labels = [label for label in args.labels.split(",") if any(label in r for r in rows)]
    print(markdown(rows, labels))
    if args.json:
        from bench.engine import machine

        result = {
            "kind": "ceiling",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "duration_s": round(time.time() - started, 1),
            "machine": machine(),
            "model": document["model"],
            "engine": str(args.engine),
            "package": document.get("package"),
            "command": " ".join(["python -m bench.ceiling", *(argv or sys.argv[1:])]),
            "labels": labels,
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
