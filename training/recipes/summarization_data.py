"""Dialogue summarization data: SAMSum and DialogSum in one input format, and the baselines.

The format (what the model trains on and what ``/summarize`` should be sent): one turn a
line, ``Name: text``, lines joined by ``"\\n"``. SAMSum already looks like that (after
``\\r\\n`` -> ``\\n``); DialogSum's ``#Person1#: text`` turns become ``Person1: text``, and
``#Person1#`` in its summaries becomes ``Person1`` (ROUGE's tokenizer drops the ``#``
anyway, so the references score the same). Runs of spaces collapse, and DialogSum's
split contractions (``I ' Ve``, ``haven ' t``) are joined again.

The tokenizer (SentencePiece, NFKC) turns the newline into an ordinary space, so the model
sees ``Anna: ... Ben: ...``: turn boundaries are marked by the ``Name:`` that starts each
turn, not by a separator piece. A newline piece was tried and dropped: after a
user-defined ``\\n`` piece the next word loses its word-start mark, so ``Ben`` starting a
turn and ``Ben`` inside a summary become different pieces, and names are what a summary
copies most (who did what). A plain paragraph (no speakers) is therefore also valid
input: the recipe trains a share of examples with the speaker names removed
(``as_paragraph``) so that it does not fall apart on one.

Baselines (SAMSum paper, Gliwa et al. 2019): Lead-3, the first three turns; Longest-3,
the three longest turns in dialogue order.

SAMSum is CC BY-NC-ND 4.0 and DialogSum CC BY-NC-SA 4.0: a model trained on them is for
non-commercial use.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path

SAMSUM_TRAIN = Path("samsum/train.csv.gz")
SAMSUM_TEST = Path("samsum/test.csv")
DIALOGSUM_TRAIN = Path("dialogsum/train.csv.gz")
DIALOGSUM_VALIDATION = Path("dialogsum/validation.csv.gz")

_PERSON_TAG = re.compile(r"#(Person\d+)#")
# "I ' Ve", "haven ' t", "it ' s": contractions split by DialogSum's tokenization.
_SPLIT_CONTRACTION = re.compile(r"(\w) ?['’] ?(s|t|ll|re|m|d|ve)\b", re.IGNORECASE)
# "Name: text" (a speaker is a few words before the first colon of the line).
_SPEAKER = re.compile(r"^([^:\n]{1,40}):\s*(.*)$")
_SPACES = re.compile(r"[ \t\u00a0]+")


@dataclass(frozen=True)
class Dialogue:
    """One normalised dialogue with its reference summary."""

    id: str
    dialogue: str
    summary: str


def _clean(text: str) -> str:
    text = _PERSON_TAG.sub(r"\1", text)
    text = _SPLIT_CONTRACTION.sub(lambda m: f"{m.group(1)}'{m.group(2).lower()}", text)
    return _SPACES.sub(" ", text).strip()


def normalize_dialogue(text: str) -> str:
    """The dialogue in the model's input format: ``Name: text`` turns, one a line.

    Empty lines are dropped; a line without a speaker is kept as it is (a plain paragraph
    stays a paragraph).
    """
    lines = (_clean(line) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def normalize_summary(text: str) -> str:
    """A reference summary with DialogSum's ``#Person1#`` tags as plain ``Person1``, one line."""
    return _clean(" ".join(text.split()))


def turns(dialogue: str) -> list[str]:
    """The turns (lines) of a normalised dialogue."""
    return [line for line in dialogue.split("\n") if line.strip()]


def speaker_and_text(turn: str) -> tuple[str | None, str]:
    """(speaker, text) of a ``Name: text`` turn; (None, turn) when it names nobody."""
    match = _SPEAKER.match(turn)
    if match is None:
        return None, turn
    return match.group(1).strip(), match.group(2).strip()


def as_paragraph(dialogue: str) -> str:
    """The dialogue's words without speaker names, as one paragraph (augmentation and the
    plain-paragraph check)."""
    return " ".join(text for _, text in map(speaker_and_text, turns(dialogue)) if text)


def lead_3(dialogue: str) -> str:
    """Baseline: the first three turns."""
    return " ".join(turns(dialogue)[:3])


def longest_3(dialogue: str) -> str:
    """Baseline: the three longest turns (by characters), in dialogue order."""
    lines = turns(dialogue)
    longest = sorted(range(len(lines)), key=lambda i: (-len(lines[i]), i))[:3]
    return " ".join(lines[i] for i in sorted(longest))


def _bigrams(text: str) -> set[tuple[str, str]]:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return set(itertools.pairwise(words))


def novel_bigram_share(summaries: list[str], sources: list[str]) -> float:
    """Share (0-1) of the summaries' distinct bigrams (lower-cased words) that are not in
    their source: 0 for pure extraction, higher for more abstractive output."""
    novel = total = 0
    for summary, source in zip(summaries, sources, strict=True):
        grams = _bigrams(summary)
        novel += len(grams - _bigrams(source))
        total += len(grams)
    return novel / total if total else 0.0


def read_csv(path: Path, limit: int | None = None) -> list[Dialogue]:
    """Normalised dialogues of a SAMSum or DialogSum CSV (``.gz`` or plain; columns id,
    dialogue, summary); rows with an empty dialogue or summary are dropped."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    rows = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
    out: list[Dialogue] = []
    for row in rows:
        dialogue = normalize_dialogue(row["dialogue"] or "")
        summary = normalize_summary(row["summary"] or "")
        if dialogue and summary:
            out.append(Dialogue(row["id"], dialogue, summary))
        if limit is not None and len(out) >= limit:
            break
    return out


def read_train(data_dir: Path, limit: int | None = None) -> list[Dialogue]:
    """SAMSum train + DialogSum train (each cut to its first ``limit`` rows when given)."""
    return read_csv(data_dir / SAMSUM_TRAIN, limit) + read_csv(data_dir / DIALOGSUM_TRAIN, limit)


def eval_sets(data_dir: Path, limit: int | None = None) -> dict[str, list[Dialogue]]:
    """The evaluation sets by name: SAMSum test and DialogSum validation."""
    return {
        "SAMSum test": read_csv(data_dir / SAMSUM_TEST, limit),
        "DialogSum validation": read_csv(data_dir / DIALOGSUM_VALIDATION, limit),
    }
