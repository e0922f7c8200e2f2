"""Split text into sentences for translation and put the translations back in place.

Each line is split separately with pysbd (rule-based, per-language abbreviations), so
paragraph breaks, line breaks and the whitespace around sentences survive unchanged:
``join(split(text), [s for s in split(text).sentences]) == text``.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pysbd
from pysbd.languages import LANGUAGE_CODES

_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True)
class Segmented:
    """A text cut into sentences and the verbatim gaps around them.

    ``gaps`` has ``len(sentences) + 1`` entries: text before the first sentence, between
    each pair, and after the last (whitespace and line breaks only).
    """

    sentences: list[str]
    gaps: list[str]


_local = threading.local()


def _segmenter(language: str) -> pysbd.Segmenter:
    # One segmenter per thread and language: a pysbd.Segmenter keeps the text it is
    # segmenting on itself, so threads sharing one lose sentences (seen under 64
    # concurrent requests: a sentence came back as no sentence at all).
    cache: dict[str, pysbd.Segmenter] | None = getattr(_local, "segmenters", None)
    if cache is None:
        cache = _local.segmenters = {}
    code = language.split("_")[0].split("-")[0].lower()
    code = code if code in LANGUAGE_CODES else _FALLBACK_LANGUAGE
    segmenter = cache.get(code)
    if segmenter is None:
        segmenter = cache[code] = pysbd.Segmenter(language=code, clean=False)
    return segmenter


def split(text: str, language: str = "en") -> Segmented:
    """Cut ``text`` into sentences (no sentence contains a line break)."""
    sentences: list[str] = []
    gaps: list[str] = []
    pending_gap = ""
    for line in _LINE.findall(text):
        body = line.strip()
        if not body:
            pending_gap += line
            continue
        cursor = 0
        for piece in _segmenter(language).segment(line):
            sentence = piece.strip()
            if not sentence:
                continue
            start = line.index(sentence, cursor)
            pending_gap += line[cursor:start]
            gaps.append(pending_gap)
            sentences.append(sentence)
            pending_gap = ""
            cursor = start + len(sentence)
        pending_gap += line[cursor:]
    gaps.append(pending_gap)
    return Segmented(sentences, gaps)


def join(segmented: Segmented, translations: list[str]) -> str:
    """Put ``translations`` (one per sentence) back between the original gaps."""
    if len(translations) != len(segmented.sentences):
        raise ValueError(
            f"{len(translations)} translations for {len(segmented.sentences)} sentences"
        )
    parts = [segmented.gaps[0]]
    for translation, gap in zip(translations, segmented.gaps[1:], strict=True):
        parts += [translation, gap]
    return "".join(parts)
