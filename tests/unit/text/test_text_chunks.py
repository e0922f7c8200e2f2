"""service/text/chunks.py: a text longer than the model's window, cut into chunks that fit."""

from __future__ import annotations

import re
from collections.abc import Sequence

from service.text import chunks


def _characters(texts: Sequence[str]) -> list[int]:
    """A tokenizer that counts every character (spaces too) plus EOS: seams cost tokens."""
    return [len(t) + 1 for t in texts]


def _words(texts: Sequence[str]) -> list[int]:
    """A tokenizer that counts words plus EOS, like SentencePiece's word pieces."""
    return [len(t.split()) + 1 for t in texts]


def _covers(text: str, parts: list[str]) -> bool:
    """The parts are verbatim stretches of ``text``, in order, with every non-blank
    character in exactly one."""
    cursor = 0
    for part in parts:
        at = text.find(part, cursor)
        if at < 0 or text[cursor:at].strip():
            return False
        cursor = at + len(part)
    return not text[cursor:].strip()


DIALOGUE = "\n".join(
    f"{'Anna' if i % 2 else 'Ben'}: message number {i} about the plans for the weekend."
    for i in range(40)
)


def test_every_chunk_fits_and_the_chunks_cover_the_text_in_order() -> None:
    for count in (_characters, _words):
        parts = chunks.split(DIALOGUE, count, 64)
        assert len(parts) > 1
        assert max(count(parts)) <= 64
        assert _covers(DIALOGUE, parts)


def test_a_dialogue_is_cut_between_turns_not_inside_them() -> None:
    parts = chunks.split(DIALOGUE, _words, 64)
    turns = set(DIALOGUE.split("\n"))
    for part in parts:
        assert all(line in turns for line in part.split("\n")), part


def test_a_line_too_long_alone_is_cut_at_sentence_ends() -> None:
    line = " ".join(f"Sentence {i} has exactly six words." for i in range(30))
    parts = chunks.split(line, _words, 40)
    assert max(_words(parts)) <= 40 and _covers(line, parts)
    assert all(part.endswith("words.") for part in parts)


def test_a_run_without_spaces_is_cut_by_characters() -> None:
    text = "x" * 500
    parts = chunks.split(text, _characters, 64)
    assert max(_characters(parts)) <= 64
    assert "".join(parts) == text


def test_a_text_that_fits_stays_one_chunk() -> None:
    text = "Anna: are we still meeting at 5?\nBen: yes."
    assert chunks.split(text, _words, 64) == [text]
    assert re.fullmatch(r"\S.*\S", chunks.split("  padded  ", _words, 64)[0])
