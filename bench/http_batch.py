"""The service over HTTP against its own engine offline and CTranslate2: one request of
32 or 64 texts.

``python -m bench.http_batch --json .cache/bench/http-batch.json`` (in ``make bench-engine``).

A server runs the package with the service's defaults (``dynamic`` mode, at most 16 decoder
rows a batch, so a request of 64 texts runs as four batches; one shared thread pool of
``--threads`` threads). This process loads the same layout offline
(``share_thread_pool`` then ``load_runtime``) and CTranslate2 int8 on the same checkpoint
at 1 and ``--threads`` intra-op threads. Each round times, in alternating order, one
``POST /translate`` carrying the first N WMT14 single sentences, the offline
``generate_outputs`` of the same N texts, and CTranslate2's ``translate_batch`` of them
(greedy, 32 forced new tokens, so every side generates N x 32 tokens). Ratios are taken
within each round: HTTP / offline (the service's overhead; the target is >= 0.9) and HTTP
/ the faster CTranslate2 setting of that round (what a client of the service gets against
the best self-hosted CTranslate2 in-process; the goal is >= 1.2). While one side runs the
others are idle, and each side starts after a pause that lets the previous one's
spinning threads go to sleep.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.documents import command_line, write_document
from bench.load import (
    SOURCE_LANG,
    TARGET_LANG,
    free_port,
    serve,
    service_command,
    single_sentences,
)
from bench.rounds import round_order

MAX_NEW = 32
TARGET_RATIO = 0.9
CT2_GOAL = 1.2
# Seconds between sides: ORT and CTranslate2 worker threads spin for a while after a call.
SETTLE_S = 0.3


def request_body(texts: Sequence[str]) -> dict[str, object]:
    """One ``/translate`` body with every text, 32 forced greedy tokens each."""
    return {
        "text": list(texts),
        "source_lang": SOURCE_LANG,
        "target_lang": TARGET_LANG,
        "options": {"max_new_tokens": MAX_NEW, "min_new_tokens": MAX_NEW, "num_beams": 1},
    }


def spread(values: Sequence[float], digits: int = 0) -> str:
    """``median [min-max]``."""
    return (
        f"{statistics.median(values):,.{digits}f} "
        f"[{min(values):,.{digits}f}-{max(values):,.{digits}f}]"
    )


def measure(
    package: Path,
    checkpoint: Path,
    ct2_dir: Path,
    threads: int,
    batch_sizes: Sequence[int],
    rounds: int,
) -> list[dict[str, object]]:
    """Every batch size over HTTP, offline and on CTranslate2, in rounds."""
    from bench.backends import Decode, ModelIds, Spec, ct2_backend
    from service.runtime import GenerationOptions, load_runtime, share_thread_pool

    share_thread_pool(threads)  # the service's layout (this process runs nothing else)
    runtime = load_runtime(package, "cpu", "int8", threads)
    texts = single_sentences(max(batch_sizes))
    ids = runtime.encode_texts(texts, source_lang=SOURCE_LANG, target_lang=TARGET_LANG)
    options = runtime.resolve(
        GenerationOptions(max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW, num_beams=1),
        target_lang=TARGET_LANG,
    )
    model = runtime.manifest.model
    special = ModelIds(model.pad_token_id, model.eos_token_id, model.decoder_start_token_id)
    decode = Decode(max_new_tokens=MAX_NEW)
    ct2_threads = sorted({1, threads})
    ct2 = {
        f"ct2 t{n}": ct2_backend(ct2_dir, checkpoint, Spec("ct2", "int8", n), decode, special)
        for n in ct2_threads
    }
    seconds: dict[tuple[str, int], list[float]] = {}
    port = free_port()
    command = service_command(port, package.parent, [package.name], "dynamic")
    with (
        serve(command, port, threads, 300.0) as base,
        httpx.Client(base_url=base, timeout=600.0) as client,
    ):

        def offline(size: int) -> float:
            started = time.perf_counter()
            runtime.generate_outputs(ids[:size], options)
            return time.perf_counter() - started

        def http(size: int) -> float:
            started = time.perf_counter()
            response = client.post("/translate", json=request_body(texts[:size]))
            response.raise_for_status()
            return time.perf_counter() - started

        def on_ct2(name: str) -> Callable[[int], float]:
            def run(size: int) -> float:
                started = time.perf_counter()
                outputs = ct2[name](ids[:size])
                elapsed = time.perf_counter() - started
                if any(len(row) < MAX_NEW - 1 for row in outputs):
                    raise RuntimeError(f"{name} stopped before {MAX_NEW} tokens")
                return elapsed

            return run

        sides: dict[str, Callable[[int], float]] = {"http": http, "offline": offline}
        sides.update({name: on_ct2(name) for name in ct2})
        for size in batch_sizes:  # warm-up: first calls pay for lazy initialisation
            for run_side in sides.values():
                run_side(size)
        for round_index in range(rounds):
            for size in batch_sizes:
                for side in round_order(list(sides), round_index):
                    time.sleep(SETTLE_S)
                    seconds.setdefault((side, size), []).append(sides[side](size))
    rows = []
    for size in batch_sizes:
        tokens = size * MAX_NEW
        per_side = {side: [tokens / s for s in seconds[(side, size)]] for side in sides}
        http_tps, offline_tps = per_side["http"], per_side["offline"]
        best_ct2 = [max(values) for values in zip(*(per_side[n] for n in ct2), strict=True)]
        rows.append(
            {
                "threads": threads,
                "batch": size,
                "offline_tokens_per_s": offline_tps,
                "http_tokens_per_s": http_tps,
                "ct2_tokens_per_s": {name: per_side[name] for name in ct2},
                "ratios": [h / o for h, o in zip(http_tps, offline_tps, strict=True)],
                "ct2_ratios": [h / c for h, c in zip(http_tps, best_ct2, strict=True)],
            }
        )
        print(markdown_row(rows[-1]), file=sys.stderr, flush=True)
    return rows


def markdown_row(row: dict[str, Any]) -> str:
    """One table row: tokens/s per side (median [min-max]) and both ratios."""
    ratios, ct2_ratios = row["ratios"], row["ct2_ratios"]
    met = "met" if min(ratios) >= TARGET_RATIO else f"missed (worst {min(ratios):.2f})"
    ct2_cells = " | ".join(spread(values) for values in row["ct2_tokens_per_s"].values())
    return (
        f"| {row['threads']} | {row['batch']} | {spread(row['http_tokens_per_s'])} | "
        f"{spread(row['offline_tokens_per_s'])} | {ct2_cells} | {spread(ratios, 2)} ({met}) | "
        f"{spread(ct2_ratios, 2)} |"
    )


def markdown(document: dict[str, Any]) -> str:
    """The docs/benchmarks.md section: one row per batch size."""
    rows = document["rows"]
    names = list(rows[0]["ct2_tokens_per_s"]) if rows else []
    ct2_heads = " | ".join(f"CTranslate2 int8 {name[4:]} tok/s" for name in names)
    lines = [
        f"`{document['command']}` ({document['started']}, {document['rounds']} rounds)\n",
        f"| threads | batch | HTTP tok/s | offline tok/s | {ct2_heads} | "
        f"HTTP / offline (target >= {TARGET_RATIO}) | "
        f"HTTP / best CTranslate2 (goal >= {CT2_GOAL}) |",
        "|---|---|---|---|" + "---|" * len(names) + "---|---|",
    ]
    lines += [markdown_row(row) for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every batch size; write the document and print the table."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--checkpoint", type=Path, help="Marian checkpoint (default: full, built)")
    p.add_argument("--package", type=Path, help="its package (default: exported, cached)")
    p.add_argument("--size", default="full", choices=["tiny", "full"])
    p.add_argument("--threads", type=int, default=2, help="the shared pool's threads")
    p.add_argument("--batch-sizes", default="32,64")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    from bench.backends import ct2_convert
    from bench.engine import ct2_model_dir, resolve_model

    checkpoint, package = resolve_model(
        "marian", args.size, "translation", args.checkpoint, args.package
    )
    ct2_dir = ct2_convert(checkpoint, ct2_model_dir(checkpoint))
    started = time.time()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    rows = measure(package, checkpoint, ct2_dir, args.threads, sizes, args.rounds)
    document: dict[str, object] = {
        "kind": "http_batch",
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "command": command_line("bench.http_batch", argv),
        "package": str(package),
        "rounds": args.rounds,
        "rows": rows,
    }
    print(markdown(document))
    write_document(args.json, document)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
