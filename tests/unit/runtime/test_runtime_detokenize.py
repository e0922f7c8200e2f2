"""Incremental detokenization: never half a character, pieces add up to the full text."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rt_helpers import TEXTS

from service.runtime import GenerationOptions, IncrementalDetokenizer, Seq2SeqRuntime

TRICKY = "Müller's café — naïve 🙂 über 日本 straße, 42 % «quoted» ñandú."


@pytest.mark.parametrize("family", ["marian", "bart", "t5", "blenderbot", "m2m100"])
def test_stream_pieces_concatenate_to_full_decode(
    family: str, fp32_runtime: Callable[[str], Seq2SeqRuntime]
) -> None:
    rt = fp32_runtime(family)
    sequences = [rt.tokenizer.hf(text)["input_ids"] for text in [TRICKY, *TEXTS]]
    opts = rt.resolve(GenerationOptions(max_new_tokens=16))
    sequences += [seq for per in rt.generate(rt.encode_texts(TEXTS[:2]), opts) for seq in per]
    held_back = 0
    for ids in sequences:
        detok = IncrementalDetokenizer(rt.tokenizer)
        pieces = []
        for token in ids:
            piece = detok.push(token)
            assert "\ufffd" not in piece
            held_back += piece == ""
            pieces.append(piece)
        pieces.append(detok.flush())
        assert "".join(pieces) == rt.decode(ids)
    assert held_back > 0  # special tokens / partial characters were held back at least once


def test_byte_level_holds_back_partial_characters(
    fp32_runtime: Callable[[str], Seq2SeqRuntime],
) -> None:
    rt = fp32_runtime("bart")
    ids = rt.tokenizer.hf("🙂🙂", add_special_tokens=False)["input_ids"]
    assert len(ids) > 2  # byte-level BPE splits the emoji into byte tokens
    detok = IncrementalDetokenizer(rt.tokenizer)
    pieces = [detok.push(t) for t in ids] + [detok.flush()]
    assert "".join(pieces) == "🙂🙂"
    assert all(p in ("", "🙂", "🙂🙂") for p in pieces)
