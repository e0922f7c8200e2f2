"""Work bound: how many tokens/s the int8 MatMuls alone allow on this CPU.

Builds the weight MatMuls of the model as two graphs of nothing else, with distinct
random weights of the model's shapes, quantized by the export's per-row int8
(``export.int8_per_row``: MatMuls reading one activation share its quantization, as in
the package):

- one decoder step: per layer self q/k/v/o, cross q/o and the FFN, then the output
  projection, on ``batch`` rows;
- the encoder plus the cross-attention keys/values: per layer q/k/v/o and the FFN, then
  every decoder layer's cross k/v of the encoder output, on the batch's source tokens.

The per-row weights are re-encoded as signed on VNNI CPUs, as the runtime loads them
(``service.runtime.int8_weights``), so the bound is the kernel the runtime really runs.

Each graph runs as one ``session.run``, as a decoder step does in the runtime, so weights
stream from memory as they do there and the per-call cost is paid once. Time per
generated token = decoder step / batch + (source tokens / generated tokens) x encoder /
source tokens. The inverse is the tokens/s a backend built on that kernel would reach if
attention, norms, the cache, search and Python cost nothing; measured with 1 and 2 ORT
threads, beside the engine run's rows of the same cells.

    python -m bench.ceiling --engine .cache/bench/engine.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.documents import command_line, write_document
from export.int8_per_row import quantize_per_row

THREADS = (1, 2)


@dataclass(frozen=True)
class Dims:
    """What shapes the weight MatMuls of an encoder-decoder."""

    d_model: int
    inner: int  # attention width (heads x head dim)
    ffn: int
    ffn_inputs: int  # 2 for gated FFNs (T5 gated-gelu), else 1
    encoder_layers: int
    decoder_layers: int
    vocab: int


def dims_of(config: dict[str, Any]) -> Dims:
    """Dims from a transformers config: T5-style (``d_ff``) or BART-like (Marian, BART,
    Pegasus, M2M100, ...)."""
    if "d_ff" in config:
        return Dims(
            d_model=config["d_model"],
            inner=config["d_kv"] * config["num_heads"],
            ffn=config["d_ff"],
            ffn_inputs=2 if str(config.get("feed_forward_proj", "relu")).startswith("gated") else 1,
            encoder_layers=config["num_layers"],
            decoder_layers=config.get("num_decoder_layers") or config["num_layers"],
            vocab=config["vocab_size"],
        )
    return Dims(
        d_model=config["d_model"],
        inner=config["d_model"],
        ffn=config["encoder_ffn_dim"],
        ffn_inputs=1,
        encoder_layers=config["encoder_layers"],
        decoder_layers=config["decoder_layers"],
        vocab=config["vocab_size"],
    )


class _Chain:
    """Builds a graph of MatMuls with fresh random weights."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[Any] = []
        self.weights: list[Any] = []
        self.macs = 0

    def matmul(self, x: str, k: int, n: int) -> str:
        from onnx import helper, numpy_helper

        name = f"mm{len(self.nodes)}"
        weight = (self.rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
        self.weights.append(numpy_helper.from_array(weight, f"{name}_w"))
        self.nodes.append(helper.make_node("MatMul", [x, f"{name}_w"], [name], name=name))
        self.macs += k * n
        return name

    def ffn(self, x: str, dims: Dims) -> str:
        hidden = [self.matmul(x, dims.d_model, dims.ffn) for _ in range(dims.ffn_inputs)]
        return self.matmul(hidden[-1], dims.ffn, dims.d_model)

    def save(self, path: Path, width: int, outputs: Sequence[str]) -> None:
        """Save the graph; ``outputs`` must name every MatMul whose result nothing reads
        (ORT's optimizer would drop it; every node runs, whichever outputs are fetched)."""
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes,
            path.stem,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["m", width])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
            self.weights,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx.save(model, str(path))


def decoder_step_graph(path: Path, dims: Dims) -> int:
    """One decoder step's weight MatMuls into ``path``; returns multiply-adds per row."""
    chain = _Chain(seed=1)
    x = "x"
    for _ in range(dims.decoder_layers):
        q, _k, _v = (chain.matmul(x, dims.d_model, dims.inner) for _ in range(3))
        attended = chain.matmul(q, dims.inner, dims.d_model)
        cross_q = chain.matmul(attended, dims.d_model, dims.inner)
        x = chain.ffn(chain.matmul(cross_q, dims.inner, dims.d_model), dims)
    logits = chain.matmul(x, dims.d_model, dims.vocab)
    outputs = [logits] + [n.output[0] for n in chain.nodes if n.output[0] != logits]
    chain.save(path, dims.d_model, outputs)
    return chain.macs


def encoder_graph(path: Path, dims: Dims) -> int:
    """The encoder's weight MatMuls and every decoder layer's cross k/v into ``path``;
    returns multiply-adds per source token."""
    chain = _Chain(seed=2)
    x = "x"
    for _ in range(dims.encoder_layers):
        q, _k, _v = (chain.matmul(x, dims.d_model, dims.inner) for _ in range(3))
        x = chain.ffn(chain.matmul(q, dims.inner, dims.d_model), dims)
    for _ in range(dims.decoder_layers):
        chain.matmul(x, dims.d_model, dims.inner)
        chain.matmul(x, dims.d_model, dims.inner)
    chain.save(path, dims.d_model, [n.output[0] for n in chain.nodes])
    return chain.macs


class StepTimer:
    """Seconds per row of the two graphs, by thread count and row count."""

    def __init__(
        self, folder: Path, dims: Dims, repeats: int = 9, signed_weights: bool = False
    ) -> None:
        self.dims, self.repeats = dims, repeats
        self.paths: dict[str, Path] = {}
        self.macs: dict[str, int] = {}
        for name, build in (("decoder", decoder_step_graph), ("encoder", encoder_graph)):
            fp32 = folder / f"{name}.onnx"
            self.macs[name] = build(fp32, dims)
            self.paths[name] = folder / f"{name}.int8.onnx"
            quantize_per_row(fp32, self.paths[name])
            fp32.unlink()
            if signed_weights:
                _sign_weights(self.paths[name])
        self.sessions: dict[tuple[str, int], Any] = {}

    def _session(self, name: str, threads: int) -> Any:
        import onnxruntime as ort

        if (name, threads) not in self.sessions:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            self.sessions[name, threads] = ort.InferenceSession(
                str(self.paths[name]), options, providers=["CPUExecutionProvider"]
            )
        return self.sessions[name, threads]

    def seconds_per_row(self, name: str, rows: int, threads: int) -> float:
        """Fastest of ``repeats`` runs of graph ``name`` on ``rows`` rows, over ``rows``
        (the fastest, not the median: a bound should hold against a lucky engine run on
        this noisy machine)."""
        session = self._session(name, threads)
        x = np.random.default_rng(rows).standard_normal((rows, self.dims.d_model))
        feed = {"x": x.astype(np.float32)}
        only_first = [session.get_outputs()[0].name]
        session.run(only_first, feed)
        times = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            session.run(only_first, feed)
            times.append(time.perf_counter() - start)
        return min(times) / rows


def _sign_weights(path: Path) -> None:
    """Re-encode ``path``'s per-row weights as signed, as the runtime does on VNNI CPUs."""
    import onnx

    from service.runtime.int8_weights import signed_weights

    model = onnx.load(str(path))
    if signed_weights(model):
        onnx.save(model, str(path))


def bound_tokens_per_s(
    timer: StepTimer,
    batch: int,
    source_per_generated: float,
    source_per_input: float,
    threads: int,
    rows_cap: int = 4096,
) -> float:
    """Generated tokens/s if only the int8 MatMuls cost time: decoder steps of ``batch``
    rows, the encoder on the batch's source tokens (at most ``rows_cap``) in one call."""
    encoder_rows = max(1, min(rows_cap, round(batch * source_per_input)))
    per_token = timer.seconds_per_row("decoder", batch, threads)
    per_token += source_per_generated * timer.seconds_per_row("encoder", encoder_rows, threads)
    return 1.0 / per_token


def ceiling_rows(
    document: dict[str, Any], timer: StepTimer, threads: Sequence[int] = THREADS
) -> list[dict[str, Any]]:
    """One row per measured greedy fixed-length batch size of ``document``: the bound at
    each thread count and every backend's tokens/s. Source lengths come from the first
    row of a cell (every backend decodes the same inputs)."""
    cells: dict[int, dict[str, Any]] = {}
    for row in document["rows"]:
        if "tokens_per_s" not in row or (row["search"], row["stop"]) != ("greedy", "fixed"):
            continue
        cell = cells.setdefault(row["batch_size"], {"batch": row["batch_size"]})
        if "source_tokens" in row and "source_per_generated" not in cell:
            cell["source_per_generated"] = row["source_tokens"] / row["tokens"]
            cell["source_per_input"] = row["source_tokens"] / row["texts"]
        cell[row["label"]] = row["tokens_per_s"]
    out = []
    for batch, cell in sorted(cells.items()):
        if "source_per_generated" not in cell:
            continue
        ratio = cell["source_per_generated"]
        cell["macs_per_generated_token"] = timer.macs["decoder"] + ratio * timer.macs["encoder"]
        for t in threads:
            cell[f"bound_t{t}"] = bound_tokens_per_s(
                timer, batch, ratio, cell["source_per_input"], t
            )
        out.append(cell)
    return out


def _threads_of(label: str) -> int:
    return int(label.rsplit(" t", 1)[1]) if " t" in label else 1


def markdown(rows: Iterable[dict[str, Any]], labels: Sequence[str]) -> str:
    """The bounds beside each measured backend (tokens/s, share of the bound at the
    backend's own thread count)."""
    rows = list(rows)
    threads = sorted({int(k[7:]) for r in rows for k in r if k.startswith("bound_t")})
    head = "| batch | source / generated tokens | MMACs per token |"
    head += "".join(f" bound t{t} |" for t in threads) + "".join(f" {x} |" for x in labels)
    lines = [head, "|---" * (3 + len(threads) + len(labels)) + "|"]
    for row in rows:
        cells = [
            str(row["batch"]),
            f"{row['source_per_generated']:.2f}",
            f"{row['macs_per_generated_token'] / 1e6:.0f}",
        ]
        cells += [f"{row[f'bound_t{t}']:.0f}" for t in threads]
        for label in labels:
            value, bound = row.get(label), row.get(f"bound_t{_threads_of(label)}")
            cells.append(
                "–" if value is None or not bound else f"{value:.0f} ({value / bound:.0%})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the bound table for an engine document; ``--json`` keeps it."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--engine", type=Path, required=True, help="a bench.engine document")
    p.add_argument("--checkpoint", type=Path, help="its checkpoint (default: the document's)")
    p.add_argument("--labels", default="ours int8 t1,ct2 int8 t1,ours int8 t2,ct2 int8 t2")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    from service.runtime.int8_weights import cpu_has_vnni

    signed = cpu_has_vnni()
    document = json.loads(args.engine.read_text())
    checkpoint = args.checkpoint or Path(document["checkpoint"])
    dims = dims_of(json.loads((checkpoint / "config.json").read_text()))
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        rows = ceiling_rows(document, StepTimer(Path(tmp), dims, args.repeats, signed))
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
            "engine_started": document.get("started"),
            "package": document.get("package"),
            "signed_weights": signed,
            "command": command_line("bench.ceiling", argv),
            "labels": labels,
            "rows": rows,
        }
        write_document(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
