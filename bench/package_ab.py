"""Two packages of one checkpoint (exported before and after an export change): the same
WMT14 lines, tokens compared and generation timed, the packages alternated in rounds.

    python -m bench.package_ab --a PKG_BEFORE --b PKG_AFTER --rounds 3

Greedy int8 on one thread per runtime: what one runtime lane runs (batch 1 is always
one lane), so the ratio is the graphs' own cost per step, not a threading effect.
``--mode iteration`` runs the positioned decoder pair instead (packages exported with
``--positioned``): a closed loop that keeps ``batch`` requests on one positioned batch,
the next request joining when one finishes (what ``S2S_BATCH_MODE=iteration`` runs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Hashable, Sequence
from pathlib import Path

from bench.openloop import wmt_lines
from service.runtime import GenerationOptions, Seq2SeqRuntime, load_runtime
from service.runtime.options import ResolvedOptions


def _options(stop: str, max_new_tokens: int) -> GenerationOptions:
    fixed = max_new_tokens if stop == "fixed" else None
    return GenerationOptions(num_beams=1, max_new_tokens=max_new_tokens, min_new_tokens=fixed)


def _timed(
    runtime: Seq2SeqRuntime, ids: list[list[int]], options: GenerationOptions, batch_size: int
) -> tuple[float, list[list[list[int]]]]:
    resolved = runtime.resolve(options)
    runtime.generate(ids[:batch_size], resolved, batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    tokens = runtime.generate(ids, resolved, batch_size=batch_size)
    return time.perf_counter() - start, tokens


def _timed_iteration(
    runtime: Seq2SeqRuntime, ids: list[list[int]], options: GenerationOptions, clients: int
) -> tuple[float, list[list[list[int]]]]:
    resolved = runtime.resolve(options)
    _iterate(runtime, ids[:clients], resolved, clients)  # warm-up
    start = time.perf_counter()
    tokens = _iterate(runtime, ids, resolved, clients)
    return time.perf_counter() - start, tokens


def _iterate(
    runtime: Seq2SeqRuntime, ids: list[list[int]], resolved: ResolvedOptions, clients: int
) -> list[list[list[int]]]:
    """Decode ``ids`` on one positioned batch, ``clients`` at a time, each finished request
    replaced by the next; each request's sequences, in input order."""
    batch = runtime.new_positioned_batch()
    waiting = list(enumerate(ids))
    out: dict[Hashable, list[list[int]]] = {}
    for key, row in waiting[:clients]:
        batch.add(key, row, resolved)
    waiting = waiting[clients:]
    while len(out) < len(ids):
        for event in batch.step():
            if event.finished:
                out[event.key] = [list(s) for s in event.sequences or []]
                if waiting:
                    key, row = waiting.pop(0)
                    batch.add(key, row, resolved)
    return [out[i] for i in range(len(ids))]


def main(argv: Sequence[str] | None = None) -> None:
    """Print a table: seconds per package, a / b per round, equal outputs."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--a", type=Path, required=True, help="package A (the baseline)")
    p.add_argument("--b", type=Path, required=True, help="package B")
    p.add_argument("--texts", type=int, default=48)
    p.add_argument("--batch-sizes", default="1,8,32")
    p.add_argument("--stops", default="fixed,natural")
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--mode",
        choices=["generate", "iteration"],
        default="generate",
        help="batched generate, or the positioned batch (batch = requests in flight)",
    )
    args = p.parse_args(argv)
    iteration = args.mode == "iteration"
    timed = _timed_iteration if iteration else _timed
    texts = wmt_lines(args.texts)[0][: args.texts]
    runtimes = {
        label: load_runtime(
            path,
            device="cpu",
            precision="int8",
            intra_op_threads=args.threads,
            positioned=iteration,
        )
        for label, path in (("a", args.a), ("b", args.b))
    }
    ids = runtimes["a"].encode_texts(texts)
    if runtimes["b"].encode_texts(texts) != ids:
        raise SystemExit("the packages tokenize differently: not one checkpoint")
    cells = [
        (stop, int(size)) for stop in args.stops.split(",") for size in args.batch_sizes.split(",")
    ]
    seconds: dict[tuple[str, str, int], list[float]] = {}
    same: dict[tuple[str, int], int] = {}
    for round_index in range(args.rounds):
        order = ("a", "b") if round_index % 2 == 0 else ("b", "a")
        for stop, size in cells:
            outputs = {}
            for label in order:
                elapsed, outputs[label] = timed(
                    runtimes[label], ids, _options(stop, args.max_new_tokens), size
                )
                seconds.setdefault((label, stop, size), []).append(elapsed)
            same[(stop, size)] = sum(
                x == y for x, y in zip(outputs["a"], outputs["b"], strict=True)
            )
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    print(f"A: {args.a}\nB: {args.b}\n{len(texts)} WMT14 lines, {args.threads} thread(s)")
    print(f"mode: {args.mode}")
    print("| stop | batch | A s | B s | A / B median [min–max] | same outputs |")
    print("|---|---|---|---|---|---|")
    for stop, size in cells:
        a, b = seconds[("a", stop, size)], seconds[("b", stop, size)]
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        print(
            f"| {stop} | {size} | {statistics.median(a):.2f} | {statistics.median(b):.2f} "
            f"| {statistics.median(ratios):.3f} [{min(ratios):.3f}–{max(ratios):.3f}] "
            f"| {same[(stop, size)]}/{len(texts)} |"
        )


if __name__ == "__main__":
    main()
