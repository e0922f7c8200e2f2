"""Benchmark inputs: real sentences and dialogues read from ``../shared/data`` or
``$S2S_DATA_DIR`` (never copied).

Translation uses WMT newstest2014 English sources (real news length distribution);
summarization uses SAMSum test dialogues. Without the data folder, a few built-in
sentences keep the harness runnable (the report then says so through ``source``).
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

from training.checkpoint_data import data_dir_choice

FALLBACK_TEXTS = (
    "A man in an orange hat starring at something.",
    "A Boston Terrier is running on lush green grass in front of a white fence.",
    "A girl in karate uniform breaking a stick with a front kick.",
    "Five people wearing winter jackets and helmets stand in the snow.",
    "People are fixing the roof of a house.",
    "A man in light colored clothing photographs a group of men wearing dark suits and hats.",
    "A group of people standing in front of an igloo.",
    "A boy in a red uniform is attempting to avoid getting out at home plate.",
)


@dataclass(frozen=True)
class Texts:
    """Benchmark texts and where they came from (a file path or ``"built-in"``)."""

    texts: list[str]
    source: str


def _cycle(texts: list[str], count: int) -> list[str]:
    return [texts[i % len(texts)] for i in range(count)]


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a plain or gzip text file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def translation_texts(count: int, data_dir: Path | None = None) -> Texts:
    """The first ``count`` WMT14 English sources (cycled if fewer)."""
    path = data_dir_choice(data_dir) / "wmt14" / "newstest2014-deen-src.en.txt"
    if not path.is_file():
        return Texts(_cycle(list(FALLBACK_TEXTS), count), "built-in")
    return Texts(_cycle(read_lines(path), count), str(path))


def summarization_texts(count: int, data_dir: Path | None = None) -> Texts:
    """The first ``count`` SAMSum test dialogues (cycled if fewer)."""
    path = data_dir_choice(data_dir) / "samsum" / "test.csv"
    if not path.is_file():
        return Texts(_cycle([" ".join(FALLBACK_TEXTS)], count), "built-in")
    with path.open(newline="", encoding="utf-8") as handle:
        dialogues = [row["dialogue"].strip() for row in csv.DictReader(handle)]
    return Texts(_cycle([d for d in dialogues if d], count), str(path))


def texts_for_task(task: str, count: int, data_dir: Path | None = None) -> Texts:
    """Inputs for ``task`` (``translation`` or ``summarization``)."""
    if task == "summarization":
        return summarization_texts(count, data_dir)
    return translation_texts(count, data_dir)
