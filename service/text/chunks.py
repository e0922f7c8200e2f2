"""Cut a text longer than a model's input window into consecutive chunks that fit.

A summarizer reads at most its source positions; a longer dialogue is summarized chunk by
chunk and the chunk summaries are joined in order (``ModelService.summarize``). Chunks
end at line ends (a dialogue's turns) where they can; a line too long on its own is cut
at sentence ends, and a sentence too long on its own at word boundaries. Every chunk is
a verbatim stretch of the text (its inner whitespace and line breaks kept), and together
the chunks cover every non-blank character in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from service.text import sentences

#: Tokenization is not additive at the seams between the units counted separately; the
#: packing leaves this share of the window free for it.
_SEAM_MARGIN = 0.9

# A line's text from its first to its last non-blank character.
_LINE = re.compile(r"\S(?:[^\n]*\S)?")
_WORD = re.compile(r"\S+")

TokenCounts = Callable[[Sequence[str]], list[int]]


def split(text: str, token_counts: TokenCounts, limit_tokens: int) -> list[str]:
    """Chunks of ``text`` in order, each encoding to at most ``limit_tokens`` tokens
    (``token_counts``: tokens per text, the model's special tokens included)."""
    overhead = token_counts([""])[0]
    budget = max(1, int(limit_tokens * _SEAM_MARGIN) - overhead)
    lines = [(m.start(), m.end()) for m in _LINE.finditer(text)]
    line_costs = [c - overhead for c in token_counts([text[a:b] for a, b in lines])]
    while True:
        units = _units(text, lines, line_costs, token_counts, overhead, budget)
        chunks = _pack(text, units, budget)
        longest = max(token_counts(chunks), default=0)
        if longest <= limit_tokens or budget == 1:
            return chunks
        # The seams cost more than the margin (a tokenizer that counts the spaces
        # between words): pack again into a proportionally smaller budget.
        budget = max(1, budget * limit_tokens // longest - 1)


def _pack(text: str, units: list[tuple[tuple[int, int], int]], budget: int) -> list[str]:
    """Consecutive units, as many as fit ``budget`` tokens per chunk."""
    chunks: list[str] = []
    start: int | None = None
    end = used = 0
    for (unit_start, unit_end), cost in units:
        if start is not None and used + cost > budget:
            chunks.append(text[start:end])
            start, used = None, 0
        if start is None:
            start = unit_start
        end, used = unit_end, used + cost
    if start is not None:
        chunks.append(text[start:end])
    return chunks


def _units(
    text: str,
    lines: list[tuple[int, int]],
    line_costs: list[int],
    token_counts: TokenCounts,
    overhead: int,
    budget: int,
) -> list[tuple[tuple[int, int], int]]:
    """The (start, end) spans to pack and their token costs: the lines (``line_costs``
    tokens each), or the sentences or word runs of a line over the budget."""
    units: list[tuple[tuple[int, int], int]] = []
    for (start, end), cost in zip(lines, line_costs, strict=True):
        if cost <= budget:
            units.append(((start, end), max(cost, 1)))
        else:
            units += _sentence_units(text, start, end, token_counts, overhead, budget)
    return units


def _sentence_units(
    text: str, start: int, end: int, token_counts: TokenCounts, overhead: int, budget: int
) -> list[tuple[tuple[int, int], int]]:
    line = text[start:end]
    spans: list[tuple[int, int]] = []
    cursor = 0
    for sentence in sentences.split(line).sentences:
        at = line.index(sentence, cursor)
        spans.append((start + at, start + at + len(sentence)))
        cursor = at + len(sentence)
    costs = [c - overhead for c in token_counts([text[a:b] for a, b in spans])]
    units: list[tuple[tuple[int, int], int]] = []
    for (a, b), cost in zip(spans, costs, strict=True):
        if cost <= budget:
            units.append(((a, b), max(cost, 1)))
            continue
        words = [(a + m.start(), a + m.end()) for m in _WORD.finditer(text[a:b])]
        word_costs = token_counts([text[x:y] for x, y in words])
        # A single word over the budget (no spaces in thousands of characters) is cut
        # by characters: one token per character at most.
        for (x, y), word_cost in zip(words, word_costs, strict=True):
            if word_cost - overhead <= budget:
                units.append(((x, y), max(word_cost - overhead, 1)))
            else:
                units += [((i, min(i + budget, y)), budget) for i in range(x, y, budget)]
    return units
