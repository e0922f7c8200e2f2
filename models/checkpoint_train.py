"""A short, seeded training loop teaching a freshly initialised model its recipe task."""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import groupby

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from models.checkpoint_recipes import Example, Training

MAX_TRAIN_TOKENS = 48
Pair = tuple[list[int], list[int]]


def encode_examples(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example]) -> list[Pair]:
    """Tokenize examples the way the family's tokenizer frames them (specials, language tokens)."""
    pairs: list[Pair] = []

    def langs(example: Example) -> tuple[str, str]:
        return (example.src_lang or "", example.tgt_lang or "")

    for (src_lang, tgt_lang), group in groupby(sorted(examples, key=langs), key=langs):
        batch = list(group)
        if src_lang:
            tokenizer.src_lang = src_lang
            tokenizer.tgt_lang = tgt_lang
        encoded = tokenizer(
            [e.source for e in batch],
            text_target=[e.target for e in batch],
            truncation=True,
            max_length=MAX_TRAIN_TOKENS,
        )
        pairs.extend(zip(encoded["input_ids"], encoded["labels"], strict=True))
    return pairs


def init_sinusoidal_positions(model: PreTrainedModel, scale: float = 0.05) -> None:
    """Overwrite every learned ``embed_positions`` table with ``scale`` x sinusoids."""
    for name, module in model.named_modules():
        if name.endswith("embed_positions") and isinstance(module, torch.nn.Embedding):
            rows, width = module.weight.shape
            angles = torch.arange(rows).unsqueeze(1) / 10000 ** (torch.arange(0, width, 2) / width)
            table = torch.zeros(rows, width)
            table[:, 0::2] = torch.sin(angles)
            table[:, 1::2] = torch.cos(angles)
            with torch.no_grad():
                module.weight.copy_(table * scale)


def _pad(rows: Sequence[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def train(
    model: PreTrainedModel, pairs: Sequence[Pair], pad_id: int, training: Training, seed: int
) -> float:
    """Train ``model`` for ``training.steps`` steps; return the mean of the last 10 losses."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=0.01)
    warmup = max(1, training.steps // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.1, 1.0 - (step - warmup) / max(1, training.steps - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    losses: list[float] = []
    for _ in range(training.steps):
        # Random (not length-bucketed) batches: bucketing learned the copy task far slower.
        batch = rng.sample(range(len(pairs)), training.batch_size)
        input_ids = _pad([pairs[i][0] for i in batch], pad_id)
        labels = _pad([pairs[i][1] for i in batch], -100)
        loss = model(
            input_ids=input_ids, attention_mask=(input_ids != pad_id).long(), labels=labels
        ).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    tail = losses[-10:]
    return sum(tail) / len(tail)
