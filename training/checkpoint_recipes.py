"""Per-family recipes: tokenizer, dimensions (tiny / full), generation defaults, training task.

Every family is trained on the same generated English, German and French captions
(``training.checkpoint_corpus``) with a task a tiny model learns in seconds (copy; M2M100 also
reverses word order for ``__fr__``) so outputs depend on inputs.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import (
    BartConfig,
    BlenderbotConfig,
    M2M100Config,
    MarianConfig,
    PegasusConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    T5Config,
)

from training import checkpoint_tokenizers as toks

SIZES = ("tiny", "full")
MAX_LENGTH = 64
T5_TASK_PARAMS = {
    "translation_en_to_de": {"prefix": "translate English to German: "},
    "summarization": {"prefix": "summarize: "},
}


@dataclass(frozen=True)
class Example:
    """One training pair; ``src_lang`` / ``tgt_lang`` are set only for multilingual families."""

    source: str
    target: str
    src_lang: str | None = None
    tgt_lang: str | None = None


@dataclass(frozen=True)
class Dims:
    """Model dimensions of one size of a family."""

    vocab: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    ffn: int


@dataclass(frozen=True)
class Training:
    """Optimisation budget of one size: steps x batch of examples at a peak learning rate.

    ``max_tokens`` truncates training pairs: full-size models train on short prefixes so a
    few hundred steps stay within minutes on a CPU while still teaching the copy alignment.
    """

    steps: int
    batch_size: int
    lr: float
    dropout: float
    max_tokens: int = 48


TRAINING = {
    "tiny": Training(steps=600, batch_size=48, lr=3e-3, dropout=0.0),
    # Direct training of a full-size model (only where a recipe sets no growth): measured here
    # (on Multi30k), 300-600 steps of a 74 M Marian on 2 cores gave one caption for every input.
    "full": Training(steps=300, batch_size=16, lr=5e-4, dropout=0.0, max_tokens=24),
}


@dataclass(frozen=True)
class Growth:
    """Build a full-size model by training a ``factor`` x narrower one and widening it.

    The narrow model has the full model's depth, heads and vocabulary
    (``training.checkpoint_widen``); ``noise`` (relative to each matrix's std) then breaks the
    widened weights' exact block structure so kernels and int8 see ordinary matrices.
    """

    factor: int = 8
    training: Training = Training(steps=1000, batch_size=32, lr=3e-3, dropout=0.0, max_tokens=24)
    noise: float = 0.02


@dataclass(frozen=True)
class Recipe:
    """Everything needed to build one family's checkpoint."""

    family: str
    build_tokenizer: Callable[[Path, Sequence[str], int], PreTrainedTokenizerBase]
    make_config: Callable[[Dims, int, float], PretrainedConfig]
    dims: dict[str, Dims]
    generation: dict[str, Any]
    make_examples: Callable[[Sequence[str], random.Random], list[Example]]
    # Tiny-size budget where the default one learns the task too slowly for this family.
    tiny_training: Training | None = None
    # Full-size budget where the default one does not fit this family's size.
    full_training: Training | None = None
    # How the full size is built: grown from a trained narrow model (None: trained directly).
    full_growth: Growth | None = Growth()
    # Start learned position embeddings as small sinusoids: the copy task then aligns in
    # a few hundred steps instead of thousands.
    sinusoidal_positions: bool = False

    def training(self, size: str) -> Training:
        """The optimisation budget of ``size`` for this family."""
        override = self.tiny_training if size == "tiny" else self.full_training
        return override if override is not None else TRAINING[size]

    def growth(self, size: str) -> Growth | None:
        """How ``size`` is grown from a narrow model, or None when it is trained directly."""
        return self.full_growth if size == "full" else None


def _tiny(vocab: int = 2000) -> Dims:
    return Dims(vocab=vocab, d_model=64, encoder_layers=2, decoder_layers=2, heads=4, ffn=256)


def copy_examples(sentences: Sequence[str], rng: random.Random) -> list[Example]:
    """Copy task: the target is the source sentence itself."""
    return [Example(s, s) for s in sentences]


def t5_examples(sentences: Sequence[str], rng: random.Random) -> list[Example]:
    """Copy task behind T5's task prefixes, so prefixed inputs (as the service sends) work."""
    prefixes = [params["prefix"] for params in T5_TASK_PARAMS.values()]
    return [Example(rng.choice(prefixes) + s, s) for s in sentences]


def reverse_words(text: str) -> str:
    """The ``__fr__`` transform of the M2M100 recipe: the words in reverse order."""
    return " ".join(reversed(text.split()))


def m2m100_examples(sentences: Sequence[str], rng: random.Random) -> list[Example]:
    """Target language picks the transform: ``__de__`` copies, ``__fr__`` reverses word order."""
    examples = []
    for s in sentences:
        src_lang = rng.choice(("en", "de", "fr"))
        if rng.random() < 0.5:
            examples.append(Example(s, s, src_lang, "de"))
        else:
            examples.append(Example(s, reverse_words(s), src_lang, "fr"))
    return examples


def _bart_like(
    cls: type[PretrainedConfig], pad_last: bool = False, **fixed: Any
) -> Callable[[Dims, int, float], PretrainedConfig]:
    """A config factory for the BART-shaped families; ``pad_last``: Marian's pad = last id."""

    def make(dims: Dims, vocab_size: int, dropout: float) -> PretrainedConfig:
        if pad_last:
            # Marian: the last id is <pad>, which is also the decoder start token.
            fixed.update(pad_token_id=vocab_size - 1, decoder_start_token_id=vocab_size - 1)
        return cls(
            vocab_size=vocab_size,
            d_model=dims.d_model,
            encoder_layers=dims.encoder_layers,
            decoder_layers=dims.decoder_layers,
            encoder_attention_heads=dims.heads,
            decoder_attention_heads=dims.heads,
            encoder_ffn_dim=dims.ffn,
            decoder_ffn_dim=dims.ffn,
            dropout=dropout,
            # Generation settings live in generation_config.json only.
            forced_eos_token_id=None,
            **fixed,
        )

    return make


def _t5_config(dims: Dims, vocab_size: int, dropout: float) -> PretrainedConfig:
    # Like the released T5s, the embedding is rounded up past the tokenizer to a multiple of 128.
    padded = -(-vocab_size // 128) * 128
    return T5Config(
        vocab_size=padded,
        d_model=dims.d_model,
        d_kv=dims.d_model // dims.heads,
        d_ff=dims.ffn,
        num_layers=dims.encoder_layers,
        num_decoder_layers=dims.decoder_layers,
        num_heads=dims.heads,
        feed_forward_proj="relu",
        dropout_rate=dropout,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        task_specific_params=T5_TASK_PARAMS,
    )


RECIPES: dict[str, Recipe] = {
    "marian": Recipe(
        family="marian",
        build_tokenizer=toks.build_marian,
        make_config=_bart_like(
            MarianConfig,
            pad_last=True,
            max_position_embeddings=512,
            eos_token_id=0,
            scale_embedding=True,
            activation_function="swish",
            share_encoder_decoder_embeddings=True,
        ),
        # opus-mt-en-de: d_model 512, 6+6 layers, ffn 2048, vocab 58101.
        dims={"tiny": _tiny(), "full": Dims(58101, 512, 6, 6, 8, 2048)},
        generation={"num_beams": 4, "max_length": MAX_LENGTH, "bad_words_ids": "pad"},
        make_examples=copy_examples,
    ),
    "bart": Recipe(
        family="bart",
        build_tokenizer=toks.build_bart,
        make_config=_bart_like(
            BartConfig,
            max_position_embeddings=1024,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
            forced_bos_token_id=None,
        ),
        # distilbart-cnn-12-6: d_model 1024, 12 encoder + 6 decoder layers, vocab 50264.
        dims={"tiny": _tiny(), "full": Dims(50264, 1024, 12, 6, 16, 4096)},
        generation={
            "num_beams": 4,
            "max_length": MAX_LENGTH,
            "min_length": 3,
            "length_penalty": 2.0,
            "no_repeat_ngram_size": 3,
            "early_stopping": True,
            "forced_bos_token_id": 0,
            "forced_eos_token_id": 2,
        },
        make_examples=copy_examples,
        tiny_training=Training(steps=500, batch_size=48, lr=5e-3, dropout=0.0),
        sinusoidal_positions=True,
        # 12 + 6 post-LN layers (narrow d_model 128) learned only a caption language model on
        # Multi30k: this budget gave different captions per input (loss 2.76, word similarity
        # 0.09); 1,500 steps at lr 5e-3 gave one caption for every input (loss 2.58).
        full_growth=Growth(training=Training(1000, 32, 3e-3, 0.0, max_tokens=24)),
    ),
    "t5": Recipe(
        family="t5",
        build_tokenizer=toks.build_t5,
        make_config=_t5_config,
        # t5-small: d_model 512, 6+6 layers, ffn 2048, 8 heads, tokenizer 32100 (embedding 32128).
        dims={"tiny": _tiny(), "full": Dims(32100, 512, 6, 6, 8, 2048)},
        generation={"num_beams": 1, "max_length": MAX_LENGTH},
        make_examples=t5_examples,
        # T5's cross-attention has no position signal: it needs more steps to align (1e-2
        # was faster on one seed but unstable on another).
        tiny_training=Training(steps=700, batch_size=48, lr=5e-3, dropout=0.0),
        # The task prefix takes ~7 of the source tokens: a longer cap keeps the whole sentence.
        full_growth=Growth(training=Training(1200, 32, 5e-3, 0.0, max_tokens=40)),
    ),
    "pegasus": Recipe(
        family="pegasus",
        build_tokenizer=toks.build_pegasus,
        make_config=_bart_like(
            PegasusConfig,
            max_position_embeddings=512,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
            scale_embedding=True,
            activation_function="relu",
        ),
        # A base-sized Pegasus (pegasus-large's vocab of 96103, half its width and depth).
        dims={"tiny": _tiny(), "full": Dims(96103, 768, 6, 6, 12, 3072)},
        generation={
            "num_beams": 4,
            "max_length": MAX_LENGTH,
            "length_penalty": 0.6,
            "forced_eos_token_id": 1,
        },
        make_examples=copy_examples,
    ),
    "blenderbot": Recipe(
        family="blenderbot",
        build_tokenizer=toks.build_blenderbot,
        make_config=_bart_like(
            BlenderbotConfig,
            max_position_embeddings=128,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
            scale_embedding=True,
            encoder_no_repeat_ngram_size=0,
        ),
        # blenderbot-400M-distill: d_model 1280, 2 encoder + 12 decoder layers, vocab 8008.
        dims={"tiny": _tiny(), "full": Dims(8008, 1280, 2, 12, 32, 5120)},
        # blenderbot-400M-distill uses 10 beams, min_length 20, length_penalty 0.65,
        # no_repeat_ngram_size 3; scaled down for a tiny model and fast tests.
        generation={
            "num_beams": 4,
            "max_length": MAX_LENGTH,
            "min_length": 5,
            "length_penalty": 0.65,
            "no_repeat_ngram_size": 3,
            "forced_eos_token_id": 2,
        },
        make_examples=copy_examples,
        tiny_training=Training(steps=500, batch_size=48, lr=5e-3, dropout=0.0),
        sinusoidal_positions=True,
    ),
    "m2m100": Recipe(
        family="m2m100",
        build_tokenizer=toks.build_m2m100,
        make_config=_bart_like(
            M2M100Config,
            max_position_embeddings=1024,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
            scale_embedding=True,
        ),
        # m2m100_418M: d_model 1024, 12+12 layers, ffn 4096, 128000 pieces + language tokens.
        dims={"tiny": _tiny(), "full": Dims(128000, 1024, 12, 12, 16, 4096)},
        generation={"num_beams": 3, "max_length": MAX_LENGTH, "early_stopping": True},
        make_examples=m2m100_examples,
        # Two tasks (copy for __de__, reversal for __fr__) share the budget.
        tiny_training=Training(steps=1000, batch_size=48, lr=3e-3, dropout=0.0),
    ),
}
FAMILIES = tuple(RECIPES)
