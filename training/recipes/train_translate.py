"""Train the default translator: one multilingual MarianMT for en<->de and en<->fr.

``python -m training.recipes.train_translate --data-dir ../shared/data --work-dir DIR
--out DIR/checkpoint --time-budget-min 60 [--resume]``

Data: Tatoeba (everyday sentences; en-de, en-fr) and Multi30k (image captions, so the
caption domain is kept), each pair used in both directions. One joint SentencePiece
vocabulary over English, German and French with a language token per language
(``__en__``, ``__de__``, ``__fr__``): the decoder's first token is the target language's
token (forced BOS at inference, as M2M100 does), so one model serves every direction
and the runtime picks the direction per request.

The run is step-based and resumable, so it can be trained in phases that each fit in a
session: every ``--checkpoint-min`` minutes (and when the budget ends) the whole training
state (weights, optimizer, step, position in the epoch) goes to ``WORK/state.pt`` and a
weight snapshot to ``WORK/snapshots/``; ``--resume`` continues from the state exactly
where it stopped. Each phase ends by writing a Hugging Face checkpoint to ``--out``: the
best by greedy dev BLEU (mean over directions) of the last snapshot and the averages of
the last 3 and 5 snapshots, with ``task_specific_params`` naming each trained direction
and its language token (what ``python -m export`` reads as the package's pairs).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import MarianMTModel, MarianTokenizer

from training.recipes.checkpointing import (
    Position,
    load_state,
    save_state,
    select_snapshots,
    snapshot,
)
from training.recipes.data import Example, read_lines, token_batches
from training.recipes.decode import corpus_bleu, translate
from training.recipes.spm_vocab import train_sentencepiece, write_marian_tokenizer
from training.recipes.train_marian import (
    TrainConfig,
    Trainer,
    generation_config,
    log_to_console_and,
)

log = logging.getLogger("train_translate")

LANGUAGES = ("en", "de", "fr")
PAIRS = (("en", "de"), ("en", "fr"))


def language_token(lang: str) -> str:
    """The vocabulary piece that selects ``lang`` as the target."""
    return f"__{lang}__"


def language_token_id(tokenizer: MarianTokenizer, lang: str) -> int:
    """The id of ``lang``'s language token in ``tokenizer``'s vocabulary."""
    token_id = tokenizer.convert_tokens_to_ids(language_token(lang))
    if not isinstance(token_id, int) or token_id == tokenizer.unk_token_id:
        raise ValueError(f"{language_token(lang)} is not in the vocabulary")
    return token_id


@dataclass
class TranslateConfig:
    """Everything that determines the run (saved beside the checkpoint)."""

    data_dir: Path
    out: Path
    work_dir: Path = Path(".cache/train-translate")
    vocab_size: int = 12000
    spm_sample_lines: int = 400_000
    d_model: int = 256
    encoder_layers: int = 6
    decoder_layers: int = 3
    heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    label_smoothing: float = 0.1
    lr: float = 1e-3
    warmup_steps: int = 1000
    max_tokens: int = 4000
    max_len: int = 96
    max_epochs: int = 4
    # Optimizer steps after which the run is complete (None: max_epochs bounds it).
    max_steps: int | None = None
    time_budget_min: float = 60.0
    checkpoint_min: float = 15.0
    keep_snapshots: int = 5
    dev_per_direction: int = 200
    threads: int = 2
    seed: int = 1234
    bf16: bool = False
    resume: bool = False
    limit_train: int | None = None


@dataclass(frozen=True)
class Direction:
    """One translation direction of the corpus."""

    source: str
    target: str

    @property
    def name(self) -> str:
        """``en->de`` style label."""
        return f"{self.source}->{self.target}"


DIRECTIONS = tuple(d for a, b in PAIRS for d in (Direction(a, b), Direction(b, a)))


def _tatoeba(data_dir: Path, split: str, pair: tuple[str, str]) -> tuple[list[str], list[str]]:
    a, b = pair
    folder = data_dir / "tatoeba"
    return (
        read_lines(folder / f"{split}.{a}-{b}.{a}.gz"),
        read_lines(folder / f"{split}.{a}-{b}.{b}.gz"),
    )


def _multi30k(data_dir: Path, split: str, pair: tuple[str, str]) -> tuple[list[str], list[str]]:
    a, b = pair
    folder = data_dir / "multi30k"
    return read_lines(folder / f"{split}.{a}.gz"), read_lines(folder / f"{split}.{b}.gz")


def read_train(data_dir: Path, limit: int | None) -> dict[Direction, list[tuple[str, str]]]:
    """Training pairs per direction: Tatoeba train + Multi30k train, empty sides dropped."""
    out: dict[Direction, list[tuple[str, str]]] = {}
    for pair in PAIRS:
        src: list[str] = []
        tgt: list[str] = []
        for reader in (_tatoeba, _multi30k):
            s, t = reader(data_dir, "train", pair)
            if len(s) != len(t):
                raise ValueError(f"{reader.__name__} {pair}: {len(s)} vs {len(t)} lines")
            src += s
            tgt += t
        pairs = [(s, t) for s, t in zip(src, tgt, strict=True) if s and t]
        if limit is not None:
            pairs = pairs[:limit]
        out[Direction(*pair)] = pairs
        out[Direction(pair[1], pair[0])] = [(t, s) for s, t in pairs]
    return out


def read_dev(data_dir: Path, per_direction: int) -> dict[Direction, tuple[list[str], list[str]]]:
    """The first ``per_direction`` Tatoeba dev pairs of each direction (one reference each)."""
    out: dict[Direction, tuple[list[str], list[str]]] = {}
    for pair in PAIRS:
        s, t = _tatoeba(data_dir, "dev", pair)
        s, t = s[:per_direction], t[:per_direction]
        out[Direction(*pair)] = (s, t)
        out[Direction(pair[1], pair[0])] = (t, s)
    return out


def build_or_load_tokenizer(
    config: TranslateConfig, train: dict[Direction, list[tuple[str, str]]]
) -> MarianTokenizer:
    """The run's tokenizer: trained once (joint unigram + language tokens), then reused."""
    folder = config.work_dir / "tokenizer"
    if (folder / "vocab.json").is_file():
        return MarianTokenizer.from_pretrained(str(folder))
    texts = sorted({text for d in DIRECTIONS[::2] for pair in train[d] for text in pair})
    random.Random(config.seed).shuffle(texts)
    tokens = [language_token(lang) for lang in LANGUAGES]
    model = train_sentencepiece(
        texts[: config.spm_sample_lines], config.vocab_size, user_symbols=tokens
    )
    return write_marian_tokenizer(model, folder, "en", "de", special_tokens=tokens)


def tokenize(
    tokenizer: MarianTokenizer, train: dict[Direction, list[tuple[str, str]]], max_len: int
) -> list[Example]:
    """Every direction's pairs as examples whose target starts with its language token."""
    examples: list[Example] = []
    for direction, pairs in train.items():
        lang_id = language_token_id(tokenizer, direction.target)
        enc = tokenizer(
            [s for s, _ in pairs],
            text_target=[t for _, t in pairs],
            truncation=True,
            max_length=max_len,
        )
        examples += [
            Example(src=list(s), tgt=[lang_id, *t])
            for s, t in zip(enc["input_ids"], enc["labels"], strict=True)
        ]
    return examples


def marian_config(config: TranslateConfig) -> TrainConfig:
    """The shared Marian trainer's view of this run."""
    return TrainConfig(
        data_dir=config.data_dir,
        out=config.out,
        work_dir=config.work_dir,
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        heads=config.heads,
        ffn_dim=config.ffn_dim,
        dropout=config.dropout,
        label_smoothing=config.label_smoothing,
        lr=config.lr,
        warmup_steps=config.warmup_steps,
        max_tokens=config.max_tokens,
        max_len=config.max_len,
        threads=config.threads,
        seed=config.seed,
        bf16=config.bf16,
    )


def dev_bleu(
    model: MarianMTModel,
    tokenizer: MarianTokenizer,
    dev: dict[Direction, tuple[list[str], list[str]]],
    max_len: int,
) -> dict[str, float]:
    """Greedy BLEU per direction on the dev subset (and their mean under ``mean``)."""
    model.eval()
    scores: dict[str, float] = {}
    for direction, (sources, refs) in dev.items():
        forced = language_token_id(tokenizer, direction.target)
        hyps = translate(
            model,
            tokenizer,
            sources,
            num_beams=1,
            batch_size=100,
            max_new_tokens=max_len,
            forced_bos_token_id=forced,
        )
        scores[direction.name] = corpus_bleu(hyps, refs)
    scores["mean"] = sum(scores.values()) / len(dev)
    model.train()
    return scores


def finalize(
    config: TranslateConfig,
    trainer: Trainer,
    tokenizer: MarianTokenizer,
    dev: dict[Direction, tuple[list[str], list[str]]],
    summary: dict[str, object],
) -> None:
    """Pick the best of the last snapshot and snapshot averages; save the HF checkpoint."""
    chosen, candidates = select_snapshots(
        config.work_dir,
        trainer.model,
        lambda: dev_bleu(trainer.model, tokenizer, dev, config.max_len),
        "BLEU",
    )
    model = trainer.model
    model.config.task_specific_params = {
        f"translation_{d.source}_to_{d.target}": {
            "forced_bos_token_id": language_token_id(tokenizer, d.target)
        }
        for d in DIRECTIONS
    }
    model.generation_config = generation_config(model, config.max_len)
    config.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(config.out))
    tokenizer.save_pretrained(str(config.out))
    summary["candidates"] = candidates
    summary["selected"] = chosen
    (config.out / "training.json").write_text(json.dumps(summary, indent=2, default=str))
    log.info("saved %s", config.out)


def run(config: TranslateConfig) -> None:
    """Train for one phase (resuming when asked), then write the checkpoint."""
    t0 = time.monotonic()
    deadline = t0 + config.time_budget_min * 60
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    state_path = config.work_dir / "state.pt"
    if state_path.exists() and not config.resume:
        raise SystemExit(f"{state_path} exists: pass --resume to continue it, or remove it")

    train = read_train(config.data_dir, config.limit_train)
    dev = read_dev(config.data_dir, config.dev_per_direction)
    tokenizer = build_or_load_tokenizer(config, train)
    examples = tokenize(tokenizer, train, config.max_len)
    tokens = sum(len(e.src) + len(e.tgt) for e in examples)
    log.info(
        "data: %d examples (%s), %.1fM tokens an epoch, vocab %d (%.0fs)",
        len(examples),
        ", ".join(f"{d.name} {len(p)}" for d, p in train.items()),
        tokens / 1e6,
        len(tokenizer),
        time.monotonic() - t0,
    )
    trainer = Trainer(marian_config(config), tokenizer)
    position, history = Position(), list[dict[str, float]]()
    if config.resume and state_path.exists():
        position, history = load_state(state_path, trainer)
        log.info("resumed at %s", position)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    log.info("model: %.2fM parameters, config %s", n_params / 1e6, asdict(config))

    trainer.model.train()
    next_save = time.monotonic() + config.checkpoint_min * 60
    loss_sum, tok_sum, window_start = 0.0, 0, time.monotonic()
    finished = False
    now = time.monotonic()
    while not finished and time.monotonic() < deadline:
        if position.epoch > config.max_epochs or (
            config.max_steps is not None and position.step >= config.max_steps
        ):
            finished = True
            break
        rng = random.Random(config.seed * 1000 + position.epoch)
        batches = list(token_batches(examples, config.max_tokens, rng))
        for index in range(position.batch, len(batches)):
            loss, n = trainer.train_step(batches[index])
            position.step, position.batch = trainer.step, index + 1
            loss_sum, tok_sum = loss_sum + loss, tok_sum + n
            if trainer.step % 100 == 0:
                log.info(
                    "epoch %d batch %d/%d step %d loss %.3f lr %.2e %.0f target tok/s",
                    position.epoch,
                    position.batch,
                    len(batches),
                    trainer.step,
                    loss_sum / tok_sum,
                    trainer.optimizer.param_groups[0]["lr"],
                    tok_sum / (time.monotonic() - window_start),
                )
                loss_sum, tok_sum, window_start = 0.0, 0, time.monotonic()
            now = time.monotonic()
            at_end = config.max_steps is not None and trainer.step >= config.max_steps
            if now >= next_save or now >= deadline or at_end:
                break
        else:
            position.epoch, position.batch = position.epoch + 1, 0
        scores = dev_bleu(trainer.model, tokenizer, dev, config.max_len)
        history.append({"step": trainer.step, "epoch": position.epoch, **scores})
        log.info("step %d dev BLEU %s", trainer.step, json.dumps(scores))
        snapshot(config.work_dir, trainer, config.keep_snapshots)
        save_state(state_path, trainer, position, history)
        log.info("state saved at %s (%.1f min into this phase)", position, (now - t0) / 60)
        next_save = time.monotonic() + config.checkpoint_min * 60
    summary: dict[str, object] = {
        "config": asdict(config),
        "parameters": n_params,
        "position": asdict(position),
        "finished": finished,
        "history": history,
        "torch": torch.__version__,
    }
    finalize(config, trainer, tokenizer, dev, summary)
    log.info("phase done in %.1f min", (time.monotonic() - t0) / 60)


def parse_args(argv: list[str] | None = None) -> TranslateConfig:
    """Command-line flags mapped onto a TranslateConfig."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="folder with tatoeba/, multi30k/")
    p.add_argument("--out", type=Path, required=True, help="output Hugging Face checkpoint dir")
    defaults = TranslateConfig(data_dir=Path(), out=Path())
    for name, value in asdict(defaults).items():
        if name in ("data_dir", "out", "bf16", "resume", "limit_train", "max_steps"):
            continue
        kind = Path if isinstance(value, Path) else type(value)
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=value)
    p.add_argument("--limit-train", type=int, default=None, help="first N pairs of each pair")
    p.add_argument("--max-steps", type=int, default=None, help="stop the run after N steps")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPUs with AMX)")
    p.add_argument("--resume", action="store_true", help="continue WORK_DIR/state.pt")
    return TranslateConfig(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    config = parse_args(argv)
    log_to_console_and(config.work_dir)
    run(config)


if __name__ == "__main__":
    main()
