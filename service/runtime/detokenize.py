"""Streaming-safe detokenization: emit only text that later tokens cannot change."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

_REPLACEMENT = "\ufffd"


class _Decoder(Protocol):
    def decode(self, ids: Sequence[int]) -> str:
        """Text of ids (special tokens skipped)."""
        ...


class IncrementalDetokenizer:
    """Turn a token stream into text pieces whose concatenation is the full decode.

    Each push decodes a short window starting one token before the last emitted one and
    compares it with the same window without the new tokens (decoded once per emission and
    kept), so SentencePiece's leading-space rule and byte-level BPE merges apply the same
    way to both; the difference is emitted unless it ends in U+FFFD (an incomplete UTF-8
    character still waiting for bytes).
    """

    def __init__(self, tokenizer: _Decoder) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self._prefix_text = ""  # decode of ids[_prefix_offset:_read_offset]

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text (possibly empty)."""
        self.ids.append(int(token_id))
        return self._emit(final=False)

    def flush(self) -> str:
        """Return whatever is still held back (at the end of the stream)."""
        return self._emit(final=True)

    def _emit(self, final: bool) -> str:
        prefix_text = self._prefix_text
        new_text = self.tokenizer.decode(self.ids[self._prefix_offset :])
        if len(new_text) <= len(prefix_text):
            return ""
        if not final and new_text.endswith(_REPLACEMENT):
            return ""
        piece = new_text[len(prefix_text) :]
        self._prefix_offset = self._read_offset
        self._read_offset = len(self.ids)
        self._prefix_text = self.tokenizer.decode(self.ids[self._prefix_offset : self._read_offset])
        return piece
