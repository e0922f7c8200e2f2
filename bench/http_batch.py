"""The service over HTTP against its own engine offline: one request of 32 or 64 texts.

``python -m bench.http_batch --json .cache/bench/http-batch.json`` (in ``make bench-engine``).

A server runs the package in its default configuration (``dynamic`` mode, one shared
thread pool of ``--threads`` threads) and this process loads the same layout offline
(``share_thread_pool`` then ``load_runtime``). Each round
times, in alternating order, the offline ``generate_outputs`` of the first N WMT14
single sentences and one ``POST /translate`` carrying the same N texts (greedy, 32 forced
new tokens, so both sides generate N x 32 tokens). The ratio HTTP / offline is taken
within each round; the issue's target is >= 0.9 (the service within 10 % of its engine).
While one side runs the other is idle: the server's threads sleep between requests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

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
    package: Path, threads: int, batch_sizes: Sequence[int], rounds: int
) -> list[dict[str, object]]:
    """Every batch size, offline and over HTTP, in rounds."""
    from service.runtime import GenerationOptions, load_runtime, share_thread_pool

    share_thread_pool(threads)  # the service's layout (this process runs nothing else)
    runtime = load_runtime(package, "cpu", "int8", threads)
    texts = single_sentences(max(batch_sizes))
    ids = runtime.encode_texts(texts, source_lang=SOURCE_LANG, target_lang=TARGET_LANG)
    options = runtime.resolve(
        GenerationOptions(max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW, num_beams=1),
        target_lang=TARGET_LANG,
    )
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

        sides = {"offline": offline, "http": http}
        for size in batch_sizes:  # warm-up: first calls pay for lazy initialisation
            offline(size), http(size)
        for round_index in range(rounds):
            for size in batch_sizes:
                for side in round_order(list(sides), round_index):
                    seconds.setdefault((side, size), []).append(sides[side](size))
    rows = []
    for size in batch_sizes:
        tokens = size * MAX_NEW
        offline_tps = [tokens / s for s in seconds[("offline", size)]]
        http_tps = [tokens / s for s in seconds[("http", size)]]
        ratios = [h / o for h, o in zip(http_tps, offline_tps, strict=True)]
        rows.append(
            {
                "threads": threads,
                "batch": size,
                "offline_tokens_per_s": offline_tps,
                "http_tokens_per_s": http_tps,
                "ratios": ratios,
            }
        )
        print(
            f"  batch {size:>3}: offline {spread(offline_tps)} tok/s, "
            f"http {spread(http_tps)} tok/s, http/offline {spread(ratios, 2)}",
            file=sys.stderr,
            flush=True,
        )
    return rows


def markdown(document: dict[str, object]) -> str:
    """The docs/benchmarks.md section: one row per batch size."""
    rows = document["rows"]
    assert isinstance(rows, list)
    lines = [
        f"`{document['command']}` ({document['started']}, {document['rounds']} rounds)\n",
        "| threads | batch | offline tok/s | HTTP tok/s | HTTP / offline | target >= 0.9 |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratios = row["ratios"]
        met = "met" if min(ratios) >= TARGET_RATIO else f"missed (worst {min(ratios):.2f})"
        lines.append(
            f"| {row['threads']} | {row['batch']} | "
            f"{spread(row['offline_tokens_per_s'])} | {spread(row['http_tokens_per_s'])} | "
            f"{spread(ratios, 2)} | {met} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every batch size; write the document and print the table."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--package", type=Path, help="translation package (default: full Marian)")
    p.add_argument("--size", default="full", choices=["tiny", "full"])
    p.add_argument("--threads", type=int, default=2, help="the shared pool's threads")
    p.add_argument("--batch-sizes", default="32,64")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    package = args.package
    if package is None:
        from bench.engine import resolve_model

        package = resolve_model("marian", args.size, "translation")[1]
    started = time.time()
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    rows = measure(Path(package), args.threads, sizes, args.rounds)
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
