"""Train a small chat model (MarianMT architecture) on DailyDialog: context -> next turn.

``python -m training.recipes.train_chat --data-dir ../shared/data/dailydialog --out DIR``

Same recipe as ``train_marian`` (joint SentencePiece vocabulary, label smoothing, inverse
square root schedule, token batches, checkpoint averaging, wall-clock budget), on the
(dialogue context -> next turn) pairs of ``training.recipes.dailydialog``. The last
``--val-dialogues`` training dialogues are held out for model selection (greedy BLEU
against the one real next turn: a weak but cheap signal); the DailyDialog test split stays
untouched for ``export.evaluate``. The checkpoint's config records the chat rendering
(``task_specific_params.conversational``) so the export writes the same into the package.

DailyDialog is CC BY-NC-SA 4.0: a model trained on it is for non-commercial use.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from training.recipes.dailydialog import (
    MAX_HISTORY_TURNS,
    SEPARATOR_SYMBOL,
    TRAIN_FILE,
    TURN_SEPARATOR,
    context_pairs,
    read_dialogues,
)
from training.recipes.train_marian import Corpus, TrainConfig, log_to_console_and, run

log = logging.getLogger("train_chat")
# A reply of DailyDialog is ~14 tokens, a 3-turn context ~45: budgets sized for that.
CHAT_DEFAULTS = {
    "src_lang": "en",
    "tgt_lang": "en",
    "vocab_size": 8000,
    "max_len": 96,
    "max_tokens": 4000,
    # 1.5e-3 with 300 warm-up steps collapsed the encoder (docs/quality.md#chat).
    "warmup_steps": 800,
    "lr": 1e-3,
    "pair_warmup_steps": 300,
    "min_encoder_spread": 1e-3,
    "patience": 3,
    "time_budget_min": 60.0,
    "eval_batch_size": 100,
    "no_repeat_ngram_size": 3,
    # Greedy replies are on topic more often than beam 4's (docs/quality.md#chat).
    "serve_num_beams": 1,
    "average_last": [2, 3],
}


def load_corpus(
    data_dir: Path,
    val_dialogues: int,
    limit: int | None,
    max_history_turns: int = MAX_HISTORY_TURNS,
) -> Corpus:
    """Context/reply pairs of DailyDialog train (contexts of at most ``max_history_turns``
    turns), the last ``val_dialogues`` held out."""
    dialogues = read_dialogues(data_dir / TRAIN_FILE, limit)
    if len(dialogues) <= val_dialogues:
        raise ValueError(f"{data_dir / TRAIN_FILE}: only {len(dialogues)} dialogues")
    train = context_pairs(dialogues[:-val_dialogues], max_history_turns=max_history_turns)
    val = context_pairs(dialogues[-val_dialogues:], max_history_turns=max_history_turns)
    return Corpus(
        train_src=[p.context for p in train],
        train_tgt=[p.reply for p in train],
        val_src=[p.context for p in val],
        val_tgt=[p.reply for p in val],
        user_symbols=(SEPARATOR_SYMBOL,),
        # Warm-up: repeat the context's last turn (see TrainConfig.pair_warmup_steps).
        warmup_src=tuple(p.context for p in train),
        warmup_tgt=tuple(p.context.rsplit(TURN_SEPARATOR, 1)[-1] for p in train),
    )


def record_chat_rendering(checkpoint: Path, max_history_turns: int = MAX_HISTORY_TURNS) -> None:
    """Write the turn separator and history length into the checkpoint's config.json."""
    path = checkpoint / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    params = config.get("task_specific_params") or {}
    params["conversational"] = {
        "turn_separator": TURN_SEPARATOR,
        "max_history_turns": max_history_turns,
    }
    config["task_specific_params"] = params
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class ChatRun:
    """A chat training run: the recipe's config, the held-out dialogues, the history length."""

    config: TrainConfig
    val_dialogues: int
    max_history_turns: int


def parse_args(argv: list[str] | None = None) -> ChatRun:
    """Flags mapped onto a TrainConfig with the chat defaults, plus the chat settings."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="folder with " + TRAIN_FILE)
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint dir")
    parser.add_argument("--work-dir", type=Path, default=Path(".cache/train-chat"))
    parser.add_argument("--val-dialogues", type=int, default=300)
    parser.add_argument("--limit-dialogues", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-budget-min", type=float, default=CHAT_DEFAULTS["time_budget_min"])
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--ffn-dim", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder layers each")
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--limit-val", type=int, default=400, help="val pairs decoded per epoch")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--max-tokens", type=int, default=CHAT_DEFAULTS["max_tokens"])
    parser.add_argument("--lr", type=float, default=CHAT_DEFAULTS["lr"])
    parser.add_argument("--warmup-steps", type=int, default=CHAT_DEFAULTS["warmup_steps"])
    parser.add_argument(
        "--decoder-input-dropout",
        type=float,
        default=0.0,
        help="share of the reply's input tokens replaced by <unk> (the decoder must lean on "
        "the context instead of only its own prefix)",
    )
    parser.add_argument(
        "--max-history-turns",
        type=int,
        default=MAX_HISTORY_TURNS,
        help="turns of context per example (recorded in the checkpoint: /chat renders as many)",
    )
    parser.add_argument(
        "--pair-warmup-steps",
        type=int,
        default=CHAT_DEFAULTS["pair_warmup_steps"],
        help="steps spent repeating the context's last turn before learning to reply",
    )
    parser.add_argument(
        "--init-from", type=Path, default=None, help="continue from an earlier run's checkpoint"
    )
    parser.add_argument(
        "--seed", type=int, default=1234, help="batch order (a continuing run needs another one)"
    )
    args = parser.parse_args(argv)
    settings: dict[str, object] = {
        **CHAT_DEFAULTS,
        "data_dir": args.data_dir,
        "out": args.out,
        "work_dir": args.work_dir,
        "threads": args.threads,
        "time_budget_min": args.time_budget_min,
        "d_model": args.d_model,
        "ffn_dim": args.ffn_dim,
        "encoder_layers": args.layers,
        "decoder_layers": args.layers,
        "max_epochs": args.max_epochs,
        "limit_val": args.limit_val,
        "limit_train": args.limit_dialogues,
        "bf16": args.bf16,
        "init_from": args.init_from,
        "max_tokens": args.max_tokens,
        "lr": args.lr,
        "warmup_steps": args.warmup_steps,
        "decoder_input_dropout": args.decoder_input_dropout,
        "pair_warmup_steps": args.pair_warmup_steps,
        "seed": args.seed,
    }
    config = TrainConfig(**settings)  # type: ignore[arg-type]
    return ChatRun(config, args.val_dialogues, args.max_history_turns)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    chat = parse_args(argv)
    config = chat.config
    log_to_console_and(config.work_dir)
    corpus = load_corpus(
        config.data_dir, chat.val_dialogues, config.limit_train, chat.max_history_turns
    )
    if config.limit_val is not None:
        corpus = dataclasses.replace(
            corpus,
            val_src=corpus.val_src[: config.limit_val],
            val_tgt=corpus.val_tgt[: config.limit_val],
        )
    log.info(
        "DailyDialog: %d train pairs, %d val pairs", len(corpus.train_src), len(corpus.val_src)
    )
    run(config, corpus)
    record_chat_rendering(config.out, chat.max_history_turns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
