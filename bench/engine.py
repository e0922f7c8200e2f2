"""Offline decode benchmark: our runtime vs transformers (PyTorch) vs optimum ORTModel.

Same checkpoint, same inputs, same batches, greedy or beam search; prints one table row
per (engine, batch size) and, with ``--json``, writes the rows for reports.

    python -m bench.engine --family marian --size tiny --precision int8 --batch-sizes 1,16
    python -m bench.engine --checkpoint CKPT --package PKG --engines ours,optimum
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "multi30k" / "test_2016_flickr.en.gz"
FALLBACK_TEXTS = [
    "A man in an orange hat starring at something.",
    "A Boston Terrier is running on lush green grass in front of a white fence.",
    "A girl in karate uniform breaking a stick with a front kick.",
    "Five people wearing winter jackets and helmets stand in the snow.",
    "People are fixing the roof of a house.",
    "A man in light colored clothing photographs a group of men wearing dark suits and hats.",
    "A group of people standing in front of an igloo.",
    "A boy in a red uniform is attempting to avoid getting out at home plate.",
]
Generate = Callable[[list[list[int]]], list[list[int]]]


def load_texts(count: int) -> list[str]:
    """The first ``count`` Multi30k test sentences (built-in sentences if the data is absent)."""
    if DATA.is_file():
        with gzip.open(DATA, "rt", encoding="utf-8") as handle:
            texts = [line.strip() for line in handle if line.strip()]
    else:
        texts = FALLBACK_TEXTS
    return [texts[i % len(texts)] for i in range(count)]


def _pad(batch: Sequence[Sequence[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in batch)
    ids = np.full((len(batch), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(batch):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def _strip(rows: list[list[int]], eos: int) -> list[list[int]]:
    out = []
    for row in rows:
        row = row[1:]
        out.append(row[: row.index(eos) + 1] if eos in row else row)
    return out


def ours(package: Path, precision: str, threads: int, kwargs: dict[str, Any]) -> Generate:
    """Our runtime (service.runtime)."""
    from service.runtime import GenerationOptions, load_runtime

    rt = load_runtime(package, device="cpu", precision=precision, intra_op_threads=threads)
    opts = rt.resolve(GenerationOptions(**kwargs))
    return lambda batch: [seqs[0] for seqs in rt.generate(batch, opts)]


def torch_engine(
    checkpoint: Path, threads: int, kwargs: dict[str, Any], pad: int, eos: int
) -> Generate:
    """transformers generate() on the PyTorch checkpoint (fp32)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    torch.set_num_threads(threads)
    model = AutoModelForSeq2SeqLM.from_pretrained(checkpoint).eval()

    def run(batch: list[list[int]]) -> list[list[int]]:
        ids, mask = _pad(batch, pad)
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **kwargs
            )
        return _strip(out.tolist(), eos)

    return run


def optimum_engine(
    package: Path, precision: str, threads: int, kwargs: dict[str, Any], pad: int, eos: int
) -> Generate:
    """optimum's ORTModelForSeq2SeqLM + generate() on the package's own ONNX files."""
    import onnxruntime as ort
    import torch
    from optimum.onnxruntime import ORTModelForSeq2SeqLM

    from service.runtime.manifest import Manifest

    manifest = Manifest.load(package)
    encoder, decoder = manifest.variant_paths(package, precision)
    tmp = Path(tempfile.mkdtemp(prefix="bench-optimum-"))
    for name in ("config.json", "generation_config.json"):
        src = manifest.tokenizer_dir(package) / name
        if src.is_file():
            (tmp / name).symlink_to(src)
    (tmp / "encoder_model.onnx").symlink_to(encoder)
    (tmp / "decoder_model_merged.onnx").symlink_to(decoder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    torch.set_num_threads(threads)
    model = ORTModelForSeq2SeqLM.from_pretrained(
        tmp,
        use_cache=True,
        use_merged=True,
        session_options=options,
        provider="CPUExecutionProvider",
    )

    def run(batch: list[list[int]]) -> list[list[int]]:
        ids, mask = _pad(batch, pad)
        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **kwargs
            )
        return _strip(out.tolist(), eos)

    return run


def time_engine(
    generate: Generate, inputs: list[list[int]], batch_size: int, repeats: int
) -> tuple[float, list[list[int]]]:
    """Median wall seconds to decode all inputs in batches of ``batch_size``, and the outputs."""
    batches = [inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size)]
    generate(batches[0])  # warm-up: allocations, thread pools, lazy initialisation
    times = []
    outputs: list[list[int]] = []
    for _ in range(repeats):
        outputs = []
        start = time.perf_counter()
        for batch in batches:
            outputs.extend(generate(batch))
        times.append(time.perf_counter() - start)
    return statistics.median(times), outputs


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="marian")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--checkpoint", type=Path, help="checkpoint dir (default: built locally)")
    parser.add_argument("--package", type=Path, help="package dir (default: exported locally)")
    parser.add_argument("--task", default="translation")
    parser.add_argument("--precision", default="int8", choices=["fp32", "int8"])
    parser.add_argument("--engines", default="ours,optimum,torch")
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    checkpoint = args.checkpoint
    if checkpoint is None:
        from models.checkpoints import ensure_checkpoint

        checkpoint = ensure_checkpoint(args.family, args.size)
    package = args.package
    if package is None:
        from export.pipeline import ensure_package

        package = ensure_package(
            checkpoint,
            task=args.task,
            name=f"{args.size}-{args.family}",
            precisions=("fp32", "int8"),
        )

    from service.runtime import RuntimeInputError, load_runtime

    probe = load_runtime(package, device="cpu", precision=args.precision, intra_op_threads=1)
    pad, eos = probe.manifest.model.pad_token_id, probe.manifest.model.eos_token_id
    inputs = []
    for text in load_texts(args.texts * 2):
        try:
            inputs += probe.encode_texts([text])
        except RuntimeInputError:  # longer than the model's positions: not benchmarkable
            continue
    inputs = inputs[: args.texts]
    kwargs = {
        "max_new_tokens": args.max_new_tokens,
        "num_beams": args.num_beams,
        "do_sample": False,
    }
    factories: dict[str, Callable[[], Generate]] = {
        "ours": lambda: ours(package, args.precision, args.threads, kwargs),
        "optimum": lambda: optimum_engine(package, args.precision, args.threads, kwargs, pad, eos),
        "torch": lambda: torch_engine(checkpoint, args.threads, kwargs, pad, eos),
    }
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    rows: list[dict[str, Any]] = []
    reference: dict[int, list[list[int]]] = {}
    print(
        f"{args.family}-{args.size} {args.precision} beams={args.num_beams} "
        f"texts={len(inputs)} max_new={args.max_new_tokens} threads={args.threads}"
    )
    widths = (-9, 5, 10, 8, 8, 12)
    header = ("engine", "batch", "total ms", "ms/text", "tok/s", "same as ours")
    print(
        " ".join(
            f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in zip(header, widths, strict=True)
        )
    )
    for name in engines:
        generate = factories[name]()
        precision = "fp32" if name == "torch" else args.precision
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            seconds, outputs = time_engine(generate, inputs, batch_size, args.repeats)
            tokens = sum(len(o) for o in outputs)
            if name == "ours":
                reference[batch_size] = outputs
            same = reference.get(batch_size)
            agree = (
                sum(a == b for a, b in zip(outputs, same, strict=True)) / len(outputs)
                if same is not None
                else float("nan")
            )
            row = {
                "engine": name,
                "precision": precision,
                "batch_size": batch_size,
                "num_beams": args.num_beams,
                "texts": len(inputs),
                "total_ms": round(seconds * 1000, 1),
                "ms_per_text": round(seconds * 1000 / len(inputs), 2),
                "tokens_per_s": round(tokens / seconds, 1),
                "identical_to_ours": round(agree, 4),
                "threads": args.threads,
            }
            rows.append(row)
            print(
                f"{name:<9} {batch_size:>5} {row['total_ms']:>10.1f} {row['ms_per_text']:>8.2f} "
                f"{row['tokens_per_s']:>8.1f} {agree:>12.0%}"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
