"""Generation options: what a request may ask for, and the fully resolved form the search uses.

Resolution follows transformers 4.57 ``generate()``: request value, else the package's
generation defaults (the checkpoint's generation_config), else ``GenerationConfig()``'s
default; lengths are prepared as ``_prepare_generated_length`` does for an encoder-decoder
(the decoder prompt is the one decoder start token).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from service.runtime.errors import InvalidOptionsError
from service.runtime.manifest import Manifest

EarlyStopping = bool | Literal["never"]

# transformers.GenerationConfig() defaults for the fields we support.
_HF_DEFAULT_MAX_LENGTH = 20
_HF_DEFAULT_TOP_K = 50


@dataclass(frozen=True)
class GenerationOptions:
    """Per-request generation options; ``None`` means "the package default"."""

    max_new_tokens: int | None = None
    max_length: int | None = None
    min_new_tokens: int | None = None
    min_length: int | None = None
    num_beams: int | None = None
    num_return_sequences: int | None = None
    length_penalty: float | None = None
    early_stopping: EarlyStopping | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    bad_words_ids: list[list[int]] | None = None
    suppress_tokens: list[int] | None = None
    begin_suppress_tokens: list[int] | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | list[int] | None = None


@dataclass(frozen=True)
class ResolvedOptions:
    """Concrete, validated options for one request (hashable: requests with equal options
    apart from the seed are decoded as one group).

    Lengths count decoder tokens including the decoder start token, as transformers does:
    at most ``max_length - 1`` tokens are generated.
    """

    max_length: int
    min_length: int
    num_beams: int
    num_return_sequences: int
    length_penalty: float
    early_stopping: EarlyStopping
    do_sample: bool
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    no_repeat_ngram_size: int
    bad_words_ids: tuple[tuple[int, ...], ...]
    suppress_tokens: tuple[int, ...]
    begin_suppress_tokens: tuple[int, ...]
    begin_suppress_index: int
    forced_bos_token_id: int | None
    forced_eos_token_ids: tuple[int, ...]
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    decoder_start_token_id: int
    vocab_size: int
    seed: int | None = None

    @property
    def is_beam(self) -> bool:
        """True for beam search (also beam sampling)."""
        return self.num_beams > 1

    @property
    def max_new_tokens(self) -> int:
        """The most tokens this request can generate."""
        return self.max_length - 1

    @property
    def group_key(self) -> ResolvedOptions:
        """These options without the seed: requests with equal keys share processing."""
        return replace(self, seed=None) if self.seed is not None else self


def _as_ids(value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def resolve_options(
    options: GenerationOptions,
    manifest: Manifest,
    forced_bos_token_id: int | None = None,
) -> ResolvedOptions:
    """Merge request options with the package defaults and validate them.

    ``forced_bos_token_id`` is the target-language token chosen by the caller (multilingual
    packages); an explicit ``options.forced_bos_token_id`` wins over it.
    Raises InvalidOptionsError (a RuntimeInputError) for invalid combinations.
    """
    defaults = manifest.generation
    model = manifest.model

    def pick(name: str, fallback: Any) -> Any:
        value = getattr(options, name)
        if value is None:
            value = getattr(defaults, name, None)
        return fallback if value is None else value

    max_positions = model.max_source_positions
    if options.max_new_tokens is not None:
        max_length = options.max_new_tokens + 1
    elif options.max_length is not None:
        max_length = options.max_length
    elif defaults.max_new_tokens is not None:
        max_length = defaults.max_new_tokens + 1
    elif defaults.max_length is not None and defaults.max_length != _HF_DEFAULT_MAX_LENGTH:
        max_length = defaults.max_length
    else:
        # transformers' "generate 20 new tokens by default", capped at the positions.
        max_length = _HF_DEFAULT_MAX_LENGTH + 1
        if max_positions is not None:
            max_length = min(max_length, max_positions)
    if max_positions is not None:
        # Learned decoder positions end here; transformers would fail with an index error.
        max_length = min(max_length, max_positions)
    if max_length < 2:
        raise InvalidOptionsError(f"max_length must allow at least one new token, got {max_length}")

    if options.min_new_tokens is not None:
        min_length = options.min_new_tokens + 1
    else:
        min_length = int(pick("min_length", 0))

    num_beams = int(pick("num_beams", 1))
    do_sample = bool(pick("do_sample", False))
    num_return_sequences = int(options.num_return_sequences or 1)
    if num_beams < 1:
        raise InvalidOptionsError(f"num_beams must be >= 1, got {num_beams}")
    if num_return_sequences < 1:
        raise InvalidOptionsError("num_return_sequences must be >= 1")
    if num_beams > 1 and num_return_sequences > num_beams:
        raise InvalidOptionsError(
            f"num_return_sequences ({num_return_sequences}) must be <= num_beams ({num_beams})"
        )
    if num_beams == 1 and not do_sample and num_return_sequences > 1:
        raise InvalidOptionsError("greedy search returns one sequence; use beams or sampling")

    temperature = float(pick("temperature", 1.0))
    top_k = int(pick("top_k", _HF_DEFAULT_TOP_K))
    top_p = float(pick("top_p", 1.0))
    if do_sample:
        if temperature <= 0.0:
            raise InvalidOptionsError("temperature must be > 0 when sampling")
        if top_k < 0:
            raise InvalidOptionsError("top_k must be >= 0")
        if not 0.0 < top_p <= 1.0:
            raise InvalidOptionsError("top_p must be in (0, 1]")
    repetition_penalty = float(pick("repetition_penalty", 1.0))
    if repetition_penalty <= 0.0:
        raise InvalidOptionsError("repetition_penalty must be > 0")
    no_repeat = int(pick("no_repeat_ngram_size", 0))
    if no_repeat < 0:
        raise InvalidOptionsError("no_repeat_ngram_size must be >= 0")
    early_stopping = pick("early_stopping", False)
    if early_stopping not in (True, False, "never"):
        raise InvalidOptionsError(
            f"early_stopping must be true, false or 'never': {early_stopping}"
        )

    eos_ids = (model.eos_token_id,)
    vocab = model.vocab_size
    # NoBadWordsLogitsProcessor drops bad "words" that are exactly an EOS token.
    bad_words = tuple(
        tuple(int(t) for t in word)
        for word in (pick("bad_words_ids", None) or [])
        if list(word) not in [[e] for e in eos_ids]
    )
    for word in bad_words:
        if not word or any(t < 0 or t >= vocab for t in word):
            raise InvalidOptionsError(f"bad_words_ids entry {list(word)} is outside the vocabulary")
    suppress = _as_ids(pick("suppress_tokens", None))
    begin_suppress = _as_ids(pick("begin_suppress_tokens", None))
    forced_bos = options.forced_bos_token_id
    if forced_bos is None:
        forced_bos = forced_bos_token_id
    if forced_bos is None:
        forced_bos = defaults.forced_bos_token_id
    forced_eos = _as_ids(pick("forced_eos_token_id", None))
    for token in (*suppress, *begin_suppress, *forced_eos, *([forced_bos] if forced_bos else [])):
        if not 0 <= token < vocab:
            raise InvalidOptionsError(f"token id {token} is outside the vocabulary ({vocab})")

    return ResolvedOptions(
        max_length=max_length,
        min_length=min_length,
        num_beams=num_beams,
        num_return_sequences=num_return_sequences,
        length_penalty=float(pick("length_penalty", 1.0)),
        early_stopping=early_stopping,
        do_sample=do_sample,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram_size=no_repeat,
        bad_words_ids=bad_words,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        # SuppressTokensAtBegin starts after the decoder start token (and the forced BOS).
        begin_suppress_index=1 if forced_bos is None else 2,
        forced_bos_token_id=forced_bos,
        forced_eos_token_ids=forced_eos,
        eos_token_ids=eos_ids,
        pad_token_id=model.pad_token_id,
        decoder_start_token_id=model.decoder_start_token_id,
        vocab_size=vocab,
        seed=options.seed,
    )


def option_names() -> list[str]:
    """Names of the request-level options (for API schemas and docs)."""
    return [f.name for f in fields(GenerationOptions)]
