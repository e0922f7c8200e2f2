"""Experiment: dynamic vs weight-only int8 on one package, side by side.

Builds a weight-only int8 copy of the package (``export.quantize``, from its ``fp32/``
files), then for fp32, the package's own int8 and the weight-only copy measures: how many
probe sentences give the same greedy output alone as inside a padded batch of 16 real
sentences, how many equal fp32, and greedy latency at batch 1 and 16 (32 tokens forced),
timed interleaved so load changes hit every variant alike.

    python -m bench.int8_methods --package PKG \
        --sources /work/shared/data/wmt14/newstest2014-deen-src.en.txt

("package int8" is whatever int8 the package has: a package exported before weight-only
int8 became the default has dynamic int8.)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from export.quantize import Int8Options, quantize_file
from service.runtime import GenerationOptions, Seq2SeqRuntime, load_runtime
from service.runtime.manifest import DECODER_FILE, ENCODER_FILE

Ids = list[list[int]]


def weight_only_copy(package: Path, out: Path, block_size: int) -> Path:
    """A copy of ``package`` whose ``int8/`` files are weight-only int8 (sizes/hashes in the
    manifest are stale: load it without ``verify``)."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(package, out)
    (out / "int8").mkdir(exist_ok=True)
    options = Int8Options(method="weight_only", block_size=block_size)
    for name in (ENCODER_FILE, DECODER_FILE):
        quantize_file(package / "fp32" / name, out / "int8" / name, options)
    return out


def _encode(rt: Seq2SeqRuntime, texts: Sequence[str], src: str | None, tgt: str | None) -> Ids:
    return [ids[:128] for ids in rt.encode_texts(texts, source_lang=src, target_lang=tgt)]


def invariance(
    rt: Seq2SeqRuntime, probes: Ids, neighbours: Ids, max_new_tokens: int
) -> tuple[int, list[list[int]]]:
    """(probes whose output alone equals their output inside a batch of 16, outputs alone)."""
    options = rt.resolve(GenerationOptions(max_new_tokens=max_new_tokens, num_beams=1))
    alone = [rt.generate([row], options)[0][0] for row in probes]
    same = 0
    for k, row in enumerate(probes):
        slot = k % (len(neighbours) + 1)  # the probe moves through the batch
        batch = [*neighbours[:slot], row, *neighbours[slot:]]
        same += rt.generate(batch, options)[slot][0] == alone[k]
    return same, alone


def main(argv: Sequence[str] | None = None) -> int:
    """Print a markdown table: fp32, the package's int8, weight-only int8."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=Path, required=True)
    parser.add_argument("--sources", type=Path, required=True, help="one sentence a line")
    parser.add_argument("--source-lang")
    parser.add_argument("--target-lang")
    parser.add_argument("--probes", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path(".cache/bench/int8-weight-only"))
    args = parser.parse_args(argv)

    sents = [line.strip() for line in args.sources.read_text().splitlines() if line.strip()]
    copy = weight_only_copy(args.package, args.out / args.package.name, args.block_size)
    runtimes = {
        "fp32": load_runtime(args.package, precision="fp32", intra_op_threads=2),
        "package int8": load_runtime(args.package, precision="int8", intra_op_threads=2),
        f"weight-only block {args.block_size}": load_runtime(
            copy, precision="int8", intra_op_threads=2
        ),
    }
    lang = (args.source_lang, args.target_lang)
    rows: dict[str, list[str]] = {}
    reference: list[list[int]] = []
    for label, rt in runtimes.items():
        probes = _encode(rt, sents[: args.probes], *lang)
        same, alone = invariance(rt, probes, _encode(rt, sents[100:115], *lang), 48)
        reference = reference or alone
        agree = sum(a == b for a, b in zip(alone, reference, strict=True))
        rows[label] = [f"{same}/{len(probes)}", f"{agree}/{len(probes)}"]

    timed = GenerationOptions(max_new_tokens=32, min_new_tokens=32, num_beams=1)
    single: dict[str, list[float]] = {k: [] for k in runtimes}
    batched: dict[str, list[float]] = {k: [] for k in runtimes}
    for _ in range(args.rounds):
        for label, rt in runtimes.items():
            options = rt.resolve(timed)
            for row in _encode(rt, sents[200:204], *lang):
                start = time.perf_counter()
                rt.generate([row], options)
                single[label].append(time.perf_counter() - start)
            batch = _encode(rt, sents[300:316], *lang)
            start = time.perf_counter()
            rt.generate(batch, options)
            batched[label].append(time.perf_counter() - start)

    print(
        "| int8 method | alone == in batch | greedy == fp32 "
        "| batch 1 x 32 tok, median (ms) | batch 16 x 32 tok, best (ms) |"
    )
    print("|---|---|---|---|---|")
    for label, cells in rows.items():
        b1 = statistics.median(single[label]) * 1000
        b16 = min(batched[label]) * 1000
        print(f"| {label} | {cells[0]} | {cells[1]} | {b1:.0f} | {b16:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
