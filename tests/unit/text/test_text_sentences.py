"""Sentence splitting and re-joining keep the text's layout exactly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from service.text.sentences import join, split

LAYOUTS = [
    "One sentence.",
    "Hello there.  Dr. Smith went home. He was tired!\n\nNew paragraph here.\r\nLast line\n",
    "  leading and trailing spaces.   \n\n\n",
    "No final punctuation\nSecond line? Yes.",
    "Ein Satz. Noch ein Satz, z. B. dieser.",
]


@pytest.mark.parametrize("text", LAYOUTS)
def test_join_of_split_is_identity(text: str) -> None:
    seg = split(text)
    assert join(seg, seg.sentences) == text
    assert len(seg.gaps) == len(seg.sentences) + 1
    assert all(not g.strip() for g in seg.gaps)
    assert all(s == s.strip() and "\n" not in s for s in seg.sentences)


def test_sentences_and_abbreviations() -> None:
    seg = split("Dr. Smith went home. He was tired! Was he?")
    assert seg.sentences == ["Dr. Smith went home.", "He was tired!", "Was he?"]
    assert split("Er kam z. B. spät. Dann ging er.", "de").sentences == [
        "Er kam z. B. spät.",
        "Dann ging er.",
    ]


def test_translations_go_back_in_place() -> None:
    text = "A b.  C d!\n\nE f."
    seg = split(text)
    assert join(seg, ["1", "2", "3"]) == "1  2\n\n3"


def test_unknown_language_falls_back_and_count_mismatch_raises() -> None:
    seg = split("One. Two.", "xx")
    assert seg.sentences == ["One.", "Two."]
    with pytest.raises(ValueError, match="2 sentences"):
        join(seg, ["only one"])


def test_split_is_thread_safe() -> None:
    # pysbd keeps per-call state on its Segmenter: threads sharing one lost sentences.
    texts = [f"Sentence number {i} is here. And a second one." for i in range(64)] * 16
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda t: split(t).sentences, texts))
    assert all(len(r) == 2 for r in results)
