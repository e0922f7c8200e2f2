"""Batched translation with transformers' generate() and corpus BLEU (for validation)."""

from __future__ import annotations

import sacrebleu
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@torch.inference_mode()
def translate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    num_beams: int = 1,
    batch_size: int = 64,
    max_new_tokens: int = 128,
    forced_bos_token_id: int | None = None,
) -> list[str]:
    """Translate ``texts`` in length-sorted batches; returns outputs in input order.

    ``forced_bos_token_id`` is the target-language token of a multilingual model.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out: list[str] = [""] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True)
        gen = model.generate(  # type: ignore[operator]
            **enc,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            forced_bos_token_id=forced_bos_token_id,
        )
        for i, text in zip(idx, tokenizer.batch_decode(gen, skip_special_tokens=True), strict=True):
            out[i] = text
    return out


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """sacreBLEU (default 13a tokenization) of hypotheses against one reference each."""
    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)
