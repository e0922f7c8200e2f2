"""The generated corpus: deterministic, disjoint splits, three languages, sentence-shaped."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from training.checkpoint_corpus import (
    LANGUAGES,
    VAL_SIZE,
    CorpusError,
    Triple,
    sentences,
    triples,
)
from training.checkpoints import PROBE_SENTENCES, TRAIN_SENTENCES

WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_DIGEST = (
    "import hashlib; from training.checkpoint_corpus import triples; "
    "print(hashlib.sha256(repr(triples('train', 300) + triples('val', 50)).encode()).hexdigest())"
)


def _digest(items: list[Triple]) -> str:
    return hashlib.sha256(repr(items).encode()).hexdigest()


@pytest.fixture(scope="module")
def train() -> list[Triple]:
    return triples("train", TRAIN_SENTENCES)


@pytest.fixture(scope="module")
def val() -> list[Triple]:
    return triples("val", VAL_SIZE)


def test_same_seed_gives_the_same_sentences_in_any_process() -> None:
    expected = _digest(triples("train", 300) + triples("val", 50))
    for hash_seed in ("0", "4242"):
        # A fresh interpreter with another string-hash seed: no set or dict order leaks in.
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", _DIGEST], env=env, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == expected


def test_other_seeds_give_other_sentences() -> None:
    assert triples("train", 50, seed=1) != triples("train", 50, seed=2)
    assert triples("train", 50, seed=1) == triples("train", 50, seed=1)


def test_a_shorter_request_is_a_prefix_of_a_longer_one(train: list[Triple]) -> None:
    assert triples("train", 100) == train[:100]
    assert triples("train", 5000)[:TRAIN_SENTENCES] == train
    assert sentences("en", "val", PROBE_SENTENCES) == [t.en for t in triples("val", 8)]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_splits_are_disjoint_and_have_no_repeats(
    lang: str, train: list[Triple], val: list[Triple]
) -> None:
    train_texts = [t.text(lang) for t in train]
    val_texts = [t.text(lang) for t in val]
    assert len(set(train_texts)) == len(train_texts) == TRAIN_SENTENCES
    assert len(set(val_texts)) == len(val_texts) == VAL_SIZE
    # Not even a translation of a val sentence is in train (any language against any).
    every_val_text = {text for t in val for text in (t.en, t.de, t.fr)}
    assert not every_val_text & set(train_texts)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_enough_vocabulary_and_variety(lang: str, train: list[Triple]) -> None:
    texts = [t.text(lang) for t in train]
    words = Counter(w.lower() for text in texts for w in WORD.findall(text))
    assert len(words) >= 600, len(words)
    # Not a handful of words repeated: many appear more than a few times, none dominates
    # the way a stuck generator would.
    assert sum(1 for count in words.values() if count >= 5) >= 300
    lengths = [len(text.split()) for text in texts]
    assert 7 <= sum(lengths) / len(lengths) <= 15
    assert max(lengths) <= 40
    assert len({text.split()[0] for text in texts}) >= 50


@pytest.mark.parametrize("lang", LANGUAGES)
def test_sentences_look_like_sentences(lang: str, train: list[Triple], val: list[Triple]) -> None:
    texts = [t.text(lang) for t in train + val]
    for text in texts:
        assert text[0].isupper(), text
        assert text[-1] in ".!", text
        assert text == " ".join(text.split()), text
        assert not re.search(r" [,.;!]|[,;]\S|\.\.", text), text
    joined = "\n".join(texts)
    # Punctuation variety, numbers and proper names (Anna, Peter, ...).
    for mark in (",", ";", "!", "'", "-"):
        assert mark in joined, mark
    assert re.search(r"\d", joined)
    assert sum(text.endswith("!") for text in texts) >= 50
    assert re.search(r"\b(Anna|Peter|Maria|Thomas)\b", joined)


def test_the_three_languages_are_distinct_and_recognisable(train: list[Triple]) -> None:
    markers = {
        "en": {"the", "a", "is", "are", "and", "in", "on"},
        "de": {"der", "die", "das", "ein", "eine", "und", "im", "auf"},
        "fr": {"le", "la", "les", "un", "une", "et", "dans", "sur"},
    }
    for lang, words in markers.items():
        hits = sum(bool(words & set(t.text(lang).lower().split())) for t in train)
        assert hits >= 0.8 * len(train), lang
    assert all(len({t.en, t.de, t.fr}) == 3 for t in train)
    german = "\n".join(t.de for t in train)
    french = "\n".join(t.fr for t in train)
    assert re.search(r"[äöüß]", german) and re.search(r"[éèàç]", french)


def test_grammar_details(train: list[Triple]) -> None:
    german = "\n".join(t.de for t in train)
    french = "\n".join(t.fr for t in train)
    english = "\n".join(t.en for t in train)
    # German contracts "in dem" / "an dem"; French elides and contracts its articles.
    assert not re.search(r"\b[IiAa]n dem\b", german)
    assert " im " in german and " am " in german
    assert not re.search(r"\b(le|la|de|que) [aeiouéè]", french, re.IGNORECASE)
    assert not re.search(r"\b(de|à) le\b", french)
    assert "l'" in french and " du " in french and " au " in french
    assert not re.search(r"\ba [aeio]", english) and " an " in english


def test_bad_requests_are_refused() -> None:
    with pytest.raises(CorpusError, match="unknown language"):
        sentences("es", "train", 3)
    with pytest.raises(CorpusError, match="unknown split"):
        triples("test", 3)
    with pytest.raises(CorpusError, match="val split has"):
        triples("val", VAL_SIZE + 1)
