"""How much a chat checkpoint listens to its context: held-out loss with and without it.

``python -m training.recipes.context_gain --checkpoint CKPT --data-dir ../shared/data/dailydialog``

The per-token negative log-likelihood (no label smoothing) of the real next turns of the
held-out dialogues (the last ``--val-dialogues`` of DailyDialog train, as the recipe holds
them out) is computed three times: with each turn's own context, with the contexts
shuffled among the examples, and with an empty context. A model that answers its input
scores much lower with the true context; a decoder that ignores the encoder (the generic
"I'm going to..." replies) scores about the same in all three. The gap ``shuffled - true``
(nats per token) is the number docs/quality.md reports. The contexts are rendered with the
checkpoint's own history length (``task_specific_params.conversational``).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from training.recipes.dailydialog import (
    MAX_HISTORY_TURNS,
    TRAIN_FILE,
    context_pairs,
    read_dialogues,
)

if TYPE_CHECKING:
    from transformers import MarianMTModel, MarianTokenizer


def history_turns(checkpoint: Path) -> int:
    """The history length the checkpoint was trained with (the recipe's default if absent)."""
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    rendering = (config.get("task_specific_params") or {}).get("conversational") or {}
    return int(rendering.get("max_history_turns", MAX_HISTORY_TURNS))


def mean_nll(
    model: MarianMTModel,
    tokenizer: MarianTokenizer,
    contexts: Sequence[str],
    replies: Sequence[str],
    batch: int = 50,
) -> float:
    """Per-token NLL of ``replies`` given ``contexts`` under ``model``."""
    import torch

    total = tokens = 0.0
    for start in range(0, len(contexts), batch):
        encoded = tokenizer(
            list(contexts[start : start + batch]),
            text_target=list(replies[start : start + batch]),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=96,
        )
        labels = encoded["labels"]
        labels[labels == tokenizer.pad_token_id] = -100
        with torch.no_grad():
            loss = model(
                input_ids=encoded["input_ids"],
                attention_mask=encoded["attention_mask"],
                labels=labels,
            ).loss
        count = int((labels != -100).sum())
        total += float(loss) * count
        tokens += count
    return total / tokens


def context_gain(
    checkpoint: Path, data_dir: Path, val_dialogues: int, limit: int
) -> dict[str, float]:
    """NLL with the true, shuffled and empty contexts, and the gap shuffled - true."""
    from transformers import MarianMTModel, MarianTokenizer

    tokenizer = MarianTokenizer.from_pretrained(str(checkpoint))
    model = MarianMTModel.from_pretrained(str(checkpoint)).eval()
    dialogues = read_dialogues(data_dir / TRAIN_FILE)[-val_dialogues:]
    pairs = context_pairs(dialogues, max_history_turns=history_turns(checkpoint))[:limit]
    contexts = [p.context for p in pairs]
    replies = [p.reply for p in pairs]
    shuffled = contexts[:]
    random.Random(0).shuffle(shuffled)
    scores = {
        name: mean_nll(model, tokenizer, given, replies)
        for name, given in (
            ("true", contexts),
            ("shuffled", shuffled),
            ("empty", [""] * len(replies)),
        )
    }
    return {**scores, "gain": scores["shuffled"] - scores["true"], "pairs": float(len(pairs))}


def main(argv: list[str] | None = None) -> int:
    """Print the three losses and the gain as one JSON line."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True, help="folder with " + TRAIN_FILE)
    p.add_argument("--val-dialogues", type=int, default=300)
    p.add_argument("--limit", type=int, default=300, help="held-out pairs scored")
    args = p.parse_args(argv)
    result = context_gain(args.checkpoint, args.data_dir, args.val_dialogues, args.limit)
    print(json.dumps({k: round(v, 3) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
