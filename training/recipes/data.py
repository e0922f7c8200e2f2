"""Parallel text loading and length-bucketed token batches for seq2seq training."""

from __future__ import annotations

import gzip
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


def read_lines(path: Path) -> list[str]:
    """Read one sentence per line from a plain or gzip text file (trailing whitespace stripped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\r\n").strip() for line in f]


def split_path(data_dir: Path, split: str, lang: str) -> Path:
    """The file of one split and language in a Multi30k-style folder (``train.en.gz``)."""
    for name in (f"{split}.{lang}.gz", f"{split}.{lang}"):
        if (data_dir / name).exists():
            return data_dir / name
    raise FileNotFoundError(f"no {split}.{lang}[.gz] in {data_dir}")


def read_parallel(
    data_dir: Path, split: str, src: str, tgt: str, limit: int | None = None
) -> tuple[list[str], list[str]]:
    """Aligned source/target sentences of one split, dropping pairs with an empty side."""
    sources = read_lines(split_path(data_dir, split, src))
    targets = read_lines(split_path(data_dir, split, tgt))
    if len(sources) != len(targets):
        raise ValueError(f"{split}: {len(sources)} {src} lines but {len(targets)} {tgt} lines")
    pairs = [(s, t) for s, t in zip(sources, targets, strict=True) if s and t]
    if limit is not None:
        pairs = pairs[:limit]
    return [s for s, _ in pairs], [t for _, t in pairs]


@dataclass(frozen=True)
class Example:
    """One tokenized training pair (ids end with EOS)."""

    src: list[int]
    tgt: list[int]


def token_batches(
    examples: list[Example], max_tokens: int, rng: random.Random
) -> Iterator[list[Example]]:
    """Yield shuffled batches of similar-length pairs holding at most ``max_tokens`` padded tokens.

    A batch's cost is counted as rows x (longest source + longest target), so padding is
    paid for; sorting by length with a little noise keeps padding low while the batch
    composition still changes from epoch to epoch.
    """
    order = sorted(
        range(len(examples)),
        key=lambda i: (len(examples[i].src) + rng.random() * 2, len(examples[i].tgt)),
    )
    batches: list[list[Example]] = []
    current: list[Example] = []
    max_src = max_tgt = 0
    for i in order:
        ex = examples[i]
        new_src, new_tgt = max(max_src, len(ex.src)), max(max_tgt, len(ex.tgt))
        if current and (len(current) + 1) * (new_src + new_tgt) > max_tokens:
            batches.append(current)
            current, new_src, new_tgt = [], len(ex.src), len(ex.tgt)
        current.append(ex)
        max_src, max_tgt = new_src, new_tgt
    if current:
        batches.append(current)
    rng.shuffle(batches)
    yield from batches
