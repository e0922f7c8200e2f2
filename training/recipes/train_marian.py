"""Train a small MarianMT translation model from scratch on a parallel corpus (Multi30k).

``python -m training.recipes.train_marian --data-dir ../shared/data/multi30k --out DIR``

Recipe: joint SentencePiece unigram vocabulary trained on the training text, a MarianMT
transformer, label-smoothed cross entropy, Adam with linear warmup then inverse square
root decay, length-bucketed token batches, a checkpoint per epoch (the last few kept),
greedy validation BLEU after each epoch with early stopping, and at the end the best of
{best single epoch, average of the last k checkpoints} by validation BLEU is saved as a
normal Hugging Face checkpoint (MarianTokenizer files, generation_config with beam 4)
that ``python -m export`` takes. A wall-clock budget bounds the whole run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import GenerationConfig, MarianConfig, MarianMTModel, MarianTokenizer

from training.recipes.checkpointing import average_checkpoints, prune_checkpoints
from training.recipes.data import Example, read_parallel, token_batches
from training.recipes.decode import corpus_bleu, translate
from training.recipes.spm_vocab import build_tokenizer

log = logging.getLogger("train_marian")


@dataclass
class TrainConfig:
    """Everything that determines a training run (saved next to the checkpoint)."""

    data_dir: Path
    out: Path
    work_dir: Path = Path(".cache/train")
    src_lang: str = "en"
    tgt_lang: str = "de"
    vocab_size: int = 8000
    d_model: int = 256
    encoder_layers: int = 3
    decoder_layers: int = 3
    heads: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    label_smoothing: float = 0.1
    lr: float = 1e-3
    warmup_steps: int = 800
    max_tokens: int = 3000
    max_len: int = 128
    max_epochs: int = 40
    patience: int = 4
    keep_checkpoints: int = 5
    average_last: list[int] = field(default_factory=lambda: [3, 5])
    time_budget_min: float = 70.0
    final_reserve_min: float = 4.0
    threads: int = 2
    seed: int = 1234
    limit_train: int | None = None
    limit_val: int | None = None
    bf16: bool = False
    eval_batch_size: int = 100
    # Decoding defaults written into generation_config.json (chat models repeat themselves
    # without an n-gram block; translation needs none).
    no_repeat_ngram_size: int = 0
    # Beams of the checkpoint's serving default (generation_config): 4 for translation;
    # the chat recipe serves greedy (beam search picks the generic replies).
    serve_num_beams: int = 4
    # Continue from a checkpoint of an earlier run (its weights and its vocabulary).
    init_from: Path | None = None
    # Share of decoder input tokens replaced by <unk> while training: a decoder that cannot
    # lean on its own history has to read the encoder (a chat model otherwise collapses
    # into one generic reply for every context).
    decoder_input_dropout: float = 0.0
    # Steps trained on the corpus's warm-up pairs before its main pairs. A chat model's
    # weak context signal lets the encoder collapse into one constant output (every
    # context then gets one reply); copying first wires encoder and cross-attention to
    # the input while that is the only way to lower the loss.
    pair_warmup_steps: int = 0
    # Every this many steps, log how much the encoder output differs across a few held-out
    # inputs; stop the run with EncoderCollapsedError once it is below min_encoder_spread
    # (after the pair warm-up), rather than spend the budget on a model that ignores input.
    probe_every: int = 100
    min_encoder_spread: float = 0.0
    # Source and target positions of the model (sinusoidal: no trained parameters, but the
    # service refuses inputs longer than this with 413).
    max_positions: int = 256


class EncoderCollapsedError(RuntimeError):
    """The encoder's output no longer depends on the input (see ``encoder_spread``)."""


@dataclass(frozen=True)
class Corpus:
    """Aligned training and validation text of one run, plus pieces the vocabulary must keep."""

    train_src: list[str]
    train_tgt: list[str]
    val_src: list[str]
    val_tgt: list[str]
    user_symbols: tuple[str, ...] = ()
    # Pairs trained on for ``TrainConfig.pair_warmup_steps`` steps before the main pairs.
    warmup_src: tuple[str, ...] = ()
    warmup_tgt: tuple[str, ...] = ()


def read_corpus(config: TrainConfig) -> Corpus:
    """The Multi30k-style parallel corpus of ``config.data_dir`` (train and val splits)."""
    train_src, train_tgt = read_parallel(
        config.data_dir, "train", config.src_lang, config.tgt_lang, config.limit_train
    )
    val_src, val_tgt = read_parallel(
        config.data_dir, "val", config.src_lang, config.tgt_lang, config.limit_val
    )
    return Corpus(train_src, train_tgt, val_src, val_tgt)


def inverse_sqrt_lr(step: int, peak: float, warmup: int) -> float:
    """Linear warmup to ``peak`` over ``warmup`` steps, then decay with 1/sqrt(step)."""
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


def build_model(config: TrainConfig, tokenizer: MarianTokenizer) -> MarianMTModel:
    """A freshly initialised MarianMT with tied embeddings and opus-mt special-token ids."""
    pad = tokenizer.pad_token_id
    eos = tokenizer.eos_token_id
    model_config = MarianConfig(
        vocab_size=len(tokenizer),
        decoder_vocab_size=len(tokenizer),
        d_model=config.d_model,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.heads,
        decoder_attention_heads=config.heads,
        encoder_ffn_dim=config.ffn_dim,
        decoder_ffn_dim=config.ffn_dim,
        dropout=config.dropout,
        attention_dropout=0.0,
        activation_dropout=0.0,
        activation_function="swish",
        max_position_embeddings=config.max_positions,
        pad_token_id=pad,
        eos_token_id=eos,
        decoder_start_token_id=pad,
        forced_eos_token_id=eos,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
    )
    return MarianMTModel(model_config)


def generation_config(
    model: MarianMTModel, max_length: int, no_repeat_ngram_size: int = 0, num_beams: int = 4
) -> GenerationConfig:
    """Serving defaults: ``num_beams`` beams, never emit <pad> (the decoder start token)."""
    c = model.config
    return GenerationConfig(
        num_beams=num_beams,
        no_repeat_ngram_size=no_repeat_ngram_size or None,
        max_length=max_length,
        bad_words_ids=[[c.pad_token_id]],
        decoder_start_token_id=c.decoder_start_token_id,
        pad_token_id=c.pad_token_id,
        eos_token_id=c.eos_token_id,
        forced_eos_token_id=c.eos_token_id,
    )


def tokenize_pairs(
    tokenizer: MarianTokenizer, sources: list[str], targets: list[str], max_len: int
) -> list[Example]:
    """Tokenize aligned pairs (EOS appended, truncated to ``max_len``)."""
    enc = tokenizer(sources, text_target=targets, truncation=True, max_length=max_len)
    return [
        Example(src=list(s), tgt=list(t))
        for s, t in zip(enc["input_ids"], enc["labels"], strict=True)
    ]


def collate(batch: list[Example], pad: int, decoder_start: int) -> dict[str, torch.Tensor]:
    """Pad a batch; decoder inputs are the labels shifted right behind the start token."""
    n = len(batch)
    src_len = max(len(ex.src) for ex in batch)
    tgt_len = max(len(ex.tgt) for ex in batch)
    input_ids = torch.full((n, src_len), pad, dtype=torch.long)
    labels = torch.full((n, tgt_len), -100, dtype=torch.long)
    decoder_input_ids = torch.full((n, tgt_len), pad, dtype=torch.long)
    for i, ex in enumerate(batch):
        input_ids[i, : len(ex.src)] = torch.tensor(ex.src)
        labels[i, : len(ex.tgt)] = torch.tensor(ex.tgt)
        decoder_input_ids[i, 0] = decoder_start
        decoder_input_ids[i, 1 : len(ex.tgt)] = torch.tensor(ex.tgt[:-1])
    return {
        "input_ids": input_ids,
        "attention_mask": (input_ids != pad).long(),
        "decoder_input_ids": decoder_input_ids,
        "labels": labels,
    }


class Trainer:
    """Owns model, optimizer and bookkeeping of one run."""

    def __init__(self, config: TrainConfig, tokenizer: MarianTokenizer) -> None:
        self.config = config
        self.tokenizer = tokenizer
        self.model = build_model(config, tokenizer)
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9
        )
        self.step = 0
        pad, start = tokenizer.pad_token_id, self.model.config.decoder_start_token_id
        if pad is None or start is None:
            raise ValueError("the tokenizer needs a pad token (also the decoder start token)")
        self.pad, self.start = int(pad), int(start)
        self.unk = int(tokenizer.unk_token_id or 0)

    def train_step(self, batch: list[Example]) -> tuple[float, int]:
        """One optimizer update; returns (summed label-smoothed loss, target tokens)."""
        self.step += 1
        for group in self.optimizer.param_groups:
            group["lr"] = inverse_sqrt_lr(self.step, self.config.lr, self.config.warmup_steps)
        tensors = collate(batch, self.pad, self.start)
        labels = tensors.pop("labels")
        if self.config.decoder_input_dropout > 0:
            inputs = tensors["decoder_input_ids"]
            dropped = torch.rand(inputs.shape) < self.config.decoder_input_dropout
            dropped[:, 0] = False  # the start token stays
            inputs[dropped & (labels != -100)] = self.unk
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.bf16):
            logits = self.model(**tensors).logits
        loss = torch.nn.functional.cross_entropy(
            logits.float().view(-1, logits.size(-1)),
            labels.view(-1),
            ignore_index=-100,
            label_smoothing=self.config.label_smoothing,
            reduction="sum",
        )
        tokens = int((labels != -100).sum())
        self.optimizer.zero_grad(set_to_none=True)
        (loss / tokens).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        return float(loss.detach()), tokens


def encoder_spread(model: MarianMTModel, probe: dict[str, torch.Tensor]) -> float:
    """How much the mean-pooled encoder output varies across the probe inputs.

    The mean over model dimensions of the standard deviation across inputs: of the order
    of 0.1-1 for an encoder that reads its input, ~0 for a collapsed one.
    """
    was_training = model.training
    model.eval()
    with torch.no_grad():
        hidden = model.get_encoder()(**probe).last_hidden_state
    model.train(was_training)
    mask = probe["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return float(pooled.std(0).mean())


def validation_bleu(
    model: MarianMTModel,
    tokenizer: MarianTokenizer,
    sources: list[str],
    refs: list[str],
    config: TrainConfig,
) -> float:
    """Greedy-decode the validation sources and score them with sacreBLEU."""
    hyps = translate(
        model,
        tokenizer,
        sources,
        num_beams=1,
        batch_size=config.eval_batch_size,
        max_new_tokens=config.max_len,
    )
    return corpus_bleu(hyps, refs)


def load_weights(model: MarianMTModel, tokenizer: MarianTokenizer, checkpoint: Path) -> None:
    """Copy the weights of an earlier run's checkpoint into ``model`` (same vocabulary)."""
    earlier = MarianTokenizer.from_pretrained(str(checkpoint))
    if earlier.get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"{checkpoint} was trained with another vocabulary")
    model.load_state_dict(MarianMTModel.from_pretrained(str(checkpoint)).state_dict())
    log.info("continuing from %s", checkpoint)


def run(config: TrainConfig, corpus: Corpus | None = None) -> dict[str, object]:
    """Train, select and save; returns the run summary (also written as training.json).

    ``corpus`` defaults to the parallel corpus in ``config.data_dir`` (``read_corpus``).
    """
    t0 = time.monotonic()
    deadline = t0 + config.time_budget_min * 60
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    work = config.work_dir
    work.mkdir(parents=True, exist_ok=True)

    corpus = corpus or read_corpus(config)
    train_src, train_tgt = corpus.train_src, corpus.train_tgt
    val_src, val_tgt = corpus.val_src, corpus.val_tgt
    if config.init_from is not None:
        # A continuing run keeps the earlier run's vocabulary: its weights are tied to it,
        # and its corpus may differ (another chat history length, more data).
        tokenizer = MarianTokenizer.from_pretrained(str(config.init_from))
    else:
        tokenizer = build_tokenizer(
            train_src + train_tgt,
            config.vocab_size,
            work / "tokenizer",
            config.src_lang,
            config.tgt_lang,
            user_symbols=corpus.user_symbols,
        )
    examples = tokenize_pairs(tokenizer, train_src, train_tgt, config.max_len)
    log.info(
        "data: %d train pairs, %d val pairs, vocab %d (%.0fs)",
        len(examples),
        len(val_src),
        len(tokenizer),
        time.monotonic() - t0,
    )

    trainer = Trainer(config, tokenizer)
    if config.init_from is not None:
        load_weights(trainer.model, tokenizer, config.init_from)
    n_params = sum(p.numel() for p in trainer.model.parameters())
    log.info(
        "model: %.2fM parameters, config %s",
        n_params / 1e6,
        json.dumps(asdict(config), default=str),
    )
    rng = random.Random(config.seed)
    probe = {
        k: v
        for k, v in tokenizer(
            val_src[:16], return_tensors="pt", padding=True, truncation=True, max_length=64
        ).items()
        if k in ("input_ids", "attention_mask")
    }
    spreads: list[tuple[int, float]] = []

    def check_encoder() -> None:
        if trainer.step % config.probe_every:
            return
        spread = encoder_spread(trainer.model, probe)
        spreads.append((trainer.step, spread))
        log.info("step %d encoder spread %.2e", trainer.step, spread)
        if trainer.step > config.pair_warmup_steps and spread < config.min_encoder_spread:
            raise EncoderCollapsedError(
                f"step {trainer.step}: encoder output spread {spread:.2e} is below "
                f"{config.min_encoder_spread:.0e}: the encoder ignores its input"
            )

    if config.pair_warmup_steps and corpus.warmup_src:
        warm_examples = tokenize_pairs(
            tokenizer, list(corpus.warmup_src), list(corpus.warmup_tgt), config.max_len
        )
        trainer.model.train()
        loss_sum, tok_sum = 0.0, 0
        while trainer.step < config.pair_warmup_steps:
            for batch in token_batches(warm_examples, config.max_tokens, rng):
                loss, tokens = trainer.train_step(batch)
                loss_sum, tok_sum = loss_sum + loss, tok_sum + tokens
                check_encoder()
                if trainer.step >= config.pair_warmup_steps:
                    break
        log.info("pair warm-up: %d steps, loss %.3f", trainer.step, loss_sum / max(tok_sum, 1))
    history: list[dict[str, float]] = []
    checkpoints: list[Path] = []
    best_bleu, best_epoch, stale = -1.0, 0, 0
    eval_seconds = 60.0
    reserve = config.final_reserve_min * 60
    out_of_time = False
    for epoch in range(1, config.max_epochs + 1):
        trainer.model.train()
        loss_sum, tok_sum, ep_start = 0.0, 0, time.monotonic()
        for batch in token_batches(examples, config.max_tokens, rng):
            loss, tokens = trainer.train_step(batch)
            loss_sum += loss
            tok_sum += tokens
            check_encoder()
            if trainer.step % 100 == 0:
                log.info(
                    "epoch %d step %d loss %.3f lr %.2e %.0f tok/s",
                    epoch,
                    trainer.step,
                    loss_sum / tok_sum,
                    trainer.optimizer.param_groups[0]["lr"],
                    tok_sum / (time.monotonic() - ep_start),
                )
            if time.monotonic() > deadline - reserve - eval_seconds:
                out_of_time = True
                break
        train_seconds = time.monotonic() - ep_start
        path = work / f"epoch{epoch:03d}.pt"
        torch.save(trainer.model.state_dict(), path)
        checkpoints.append(path)
        checkpoints = prune_checkpoints(checkpoints, config.keep_checkpoints, keep=best_epoch)
        ev_start = time.monotonic()
        trainer.model.eval()
        bleu = validation_bleu(trainer.model, tokenizer, val_src, val_tgt, config)
        eval_seconds = time.monotonic() - ev_start
        history.append(
            {
                "epoch": epoch,
                "step": trainer.step,
                "loss": loss_sum / max(tok_sum, 1),
                "val_bleu": bleu,
                "train_s": train_seconds,
                "eval_s": eval_seconds,
                "partial": out_of_time,
            }
        )
        log.info(
            "epoch %d done: loss %.3f val BLEU %.2f (train %.0fs, eval %.0fs, total %.1f min)%s",
            epoch,
            loss_sum / max(tok_sum, 1),
            bleu,
            train_seconds,
            eval_seconds,
            (time.monotonic() - t0) / 60,
            " [partial: time budget]" if out_of_time else "",
        )
        if bleu > best_bleu:
            best_bleu, best_epoch, stale = bleu, epoch, 0
        else:
            stale += 1
        if out_of_time:
            break
        if stale >= config.patience:
            log.info("early stop: no val BLEU gain for %d epochs", stale)
            break
        # Stop when another epoch (judged by the last one) would not fit in the budget.
        if time.monotonic() + train_seconds + eval_seconds > deadline - reserve:
            log.info("stopping: another epoch does not fit in the time budget")
            break

    candidates: dict[str, tuple[float, dict[str, torch.Tensor]]] = {}
    best_state = torch.load(work / f"epoch{best_epoch:03d}.pt", weights_only=True)
    candidates[f"epoch {best_epoch}"] = (best_bleu, best_state)
    for k in config.average_last:
        if k > len(checkpoints) or time.monotonic() > deadline - eval_seconds:
            continue
        state = average_checkpoints(checkpoints[-k:])
        trainer.model.load_state_dict(state)
        bleu = validation_bleu(trainer.model, tokenizer, val_src, val_tgt, config)
        log.info("average of last %d checkpoints: val BLEU %.2f", k, bleu)
        candidates[f"average of last {k}"] = (bleu, state)
    chosen = max(candidates, key=lambda name: candidates[name][0])
    trainer.model.load_state_dict(candidates[chosen][1])
    log.info("selected %s (val BLEU %.2f)", chosen, candidates[chosen][0])

    config.out.mkdir(parents=True, exist_ok=True)
    trainer.model.generation_config = generation_config(
        trainer.model, config.max_len, config.no_repeat_ngram_size, config.serve_num_beams
    )
    trainer.model.save_pretrained(str(config.out))
    tokenizer.save_pretrained(str(config.out))
    summary: dict[str, object] = {
        "config": json.loads(json.dumps(asdict(config), default=str)),
        "parameters": n_params,
        "steps": trainer.step,
        "epochs": history,
        "candidates": {name: bleu for name, (bleu, _) in candidates.items()},
        "selected": chosen,
        "val_bleu_greedy": candidates[chosen][0],
        "wall_minutes": (time.monotonic() - t0) / 60,
        "torch": torch.__version__,
        "threads": config.threads,
        "init_from": None if config.init_from is None else str(config.init_from),
        "encoder_spread": spreads,
    }
    (config.out / "training.json").write_text(json.dumps(summary, indent=2))
    log.info("saved %s in %.1f min", config.out, (time.monotonic() - t0) / 60)
    return summary


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """Command-line flags mapped onto a TrainConfig."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="folder with train/val.{lang}.gz")
    p.add_argument("--out", type=Path, required=True, help="output Hugging Face checkpoint dir")
    p.add_argument(
        "--work-dir",
        type=Path,
        default=Path(".cache/train"),
        help="per-epoch checkpoints and tokenizer scratch",
    )
    defaults = TrainConfig(data_dir=Path(), out=Path())
    for name in (
        "src_lang",
        "tgt_lang",
        "vocab_size",
        "d_model",
        "encoder_layers",
        "decoder_layers",
        "heads",
        "ffn_dim",
        "dropout",
        "label_smoothing",
        "lr",
        "warmup_steps",
        "max_tokens",
        "max_len",
        "max_epochs",
        "patience",
        "keep_checkpoints",
        "time_budget_min",
        "final_reserve_min",
        "threads",
        "seed",
        "eval_batch_size",
        "no_repeat_ngram_size",
    ):
        value = getattr(defaults, name)
        p.add_argument(
            "--" + name.replace("_", "-"), type=type(value), default=value, help=f"default {value}"
        )
    p.add_argument(
        "--average-last",
        type=lambda s: [int(x) for x in s.split(",")],
        default=defaults.average_last,
        help="comma list of k (default 3,5)",
    )
    p.add_argument("--limit-train", type=int, default=None, help="use only the first N pairs")
    p.add_argument("--limit-val", type=int, default=None, help="validate on the first N pairs")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (CPUs with AMX)")
    args = p.parse_args(argv)
    return TrainConfig(**vars(args))


def log_to_console_and(work_dir: Path) -> None:
    """Log INFO to the console and to ``work_dir/log.txt`` (created), for a training run."""
    work_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(work_dir / "log.txt")],
    )


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    config = parse_args(argv)
    log_to_console_and(config.work_dir)
    run(config)


if __name__ == "__main__":
    main()
