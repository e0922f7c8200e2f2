"""Helpers shared by the runtime tests (inputs, languages, transformers reference)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.runtime import Seq2SeqRuntime

# Mixed lengths on purpose: batches are padded.
TEXTS = [
    "A man in a blue shirt is riding a bicycle down the street.",
    "Two dogs play.",
    "A group of children are sitting on the grass near a large tree in the park.",
    "A woman cooks.",
]


def languages(rt: Seq2SeqRuntime) -> tuple[str | None, str | None]:
    """(source, target) language to use for a package (None when not multilingual)."""
    langs = rt.manifest.languages
    if not langs.multilingual:
        return None, None
    source = langs.source[0] if langs.source else sorted(langs.tokens)[0]
    target = next(t for t in (langs.target or sorted(langs.tokens)) if t != source)
    return source, target


def hf_generate(
    model: Any, input_ids: Sequence[Sequence[int]], pad: int, eos: int, **kwargs: Any
) -> list[list[int]]:
    """transformers generate() on right-padded ids; rows without the decoder start token,
    cut after the first EOS (the rest must be padding)."""
    import torch

    width = max(len(r) for r in input_ids)
    ids = np.full((len(input_ids), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(input_ids):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    with torch.inference_mode():
        out = model.generate(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask), **kwargs
        )
    # generate() fills finished rows with its pad token, which is EOS when the pad id is
    # missing (or 0, in beam search: ``pad_token_id or eos_token_id``).
    fillers = {pad, eos, model.generation_config.pad_token_id}
    seqs = []
    for row in out.tolist():
        row = row[1:]
        if eos in row:
            end = row.index(eos) + 1
            assert all(t in fillers for t in row[end:]), row
            row = row[:end]
        seqs.append(row)
    return seqs
