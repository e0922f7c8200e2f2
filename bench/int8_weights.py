"""Per-row int8 weights as exported (uint8) against re-encoded as signed (the runtime's
``S2S_INT8_WEIGHTS=auto`` on VNNI CPUs): same package, same WMT14 lines, tokens compared
and generation timed, the encodings alternated in rounds.

    python -m bench.int8_weights --package PKG --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from bench.openloop import wmt_lines
from service.runtime import GenerationOptions, load_runtime
from service.runtime.int8_weights import Int8Weights, cpu_has_vnni

ENCODINGS: tuple[Int8Weights, ...] = ("as_exported", "auto")


def main(argv: Sequence[str] | None = None) -> None:
    """Print seconds per encoding and search, their ratio, and whether tokens agree."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--package", type=Path, required=True)
    p.add_argument("--texts", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    print(f"VNNI: {cpu_has_vnni()}")
    texts = wmt_lines(args.texts)[0][: args.texts]
    runtimes = {
        enc: load_runtime(
            args.package,
            device="cpu",
            precision="int8",
            intra_op_threads=args.threads,
            int8_weights=enc,
        )
        for enc in ENCODINGS
    }
    seconds: dict[tuple[str, int], list[float]] = {}
    tokens: dict[tuple[str, int], list[list[list[int]]]] = {}
    for round_index in range(args.rounds):
        order = ENCODINGS if round_index % 2 == 0 else ENCODINGS[::-1]
        for beams in (1, 4):
            for enc in order:
                rt = runtimes[enc]
                ids = rt.encode_texts(texts)
                opts = rt.resolve(
                    GenerationOptions(num_beams=beams, max_new_tokens=args.max_new_tokens)
                )
                rt.generate(ids[:4], opts)  # warm-up
                start = time.perf_counter()
                tokens[(enc, beams)] = rt.generate(ids, opts, batch_size=args.batch_size)
                seconds.setdefault((enc, beams), []).append(time.perf_counter() - start)
    print("| search | as exported (u8) s | signed (s8) s | u8 / s8 per round | same tokens |")
    print("|---|---|---|---|---|")
    for beams in (1, 4):
        u8, s8 = seconds[("as_exported", beams)], seconds[("auto", beams)]
        ratios = ", ".join(f"{a / b:.2f}" for a, b in zip(u8, s8, strict=True))
        same = sum(
            a == b
            for a, b in zip(tokens[("as_exported", beams)], tokens[("auto", beams)], strict=True)
        )
        print(
            f"| beam {beams} | {statistics.median(u8):.2f} | {statistics.median(s8):.2f} "
            f"| {ratios} | {same}/{len(texts)} |"
        )


if __name__ == "__main__":
    main()
