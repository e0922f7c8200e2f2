"""Option resolution follows generate(): request > package defaults > transformers defaults."""

from __future__ import annotations

from typing import Any

import pytest

from service.runtime import GenerationOptions, RuntimeInputError
from service.runtime.logits import ForcedBOS, ForcedEOS, MinLength, TopK, build_processors
from service.runtime.manifest import (
    FileEntry,
    GenerationDefaults,
    Manifest,
    ModelInfo,
    SourceInfo,
    Variant,
)
from service.runtime.options import resolve_options

_FILE = FileEntry(path="x", bytes=0, sha256="0" * 64)


def _manifest(**generation: Any) -> Manifest:
    return Manifest(
        name="m",
        task="translation",
        family="marian",
        source=SourceInfo(ref="x", sha256="0", kind="local"),
        model=ModelInfo(
            vocab_size=100,
            d_model=8,
            num_decoder_layers=1,
            num_heads=2,
            head_dim=4,
            decoder_start_token_id=2,
            pad_token_id=2,
            eos_token_id=0,
            max_source_positions=64,
        ),
        generation=GenerationDefaults(**generation),
        variants={"fp32": Variant(encoder=_FILE, decoder=_FILE, device="cpu")},
    )


def test_lengths_like_generate() -> None:
    # transformers: 20 new tokens by default (max_length 20 + the start token).
    assert resolve_options(GenerationOptions(), _manifest()).max_length == 21
    assert resolve_options(GenerationOptions(), _manifest(max_length=40)).max_length == 40
    # max_new_tokens wins over max_length, from the request and from the defaults.
    assert (
        resolve_options(GenerationOptions(max_new_tokens=5), _manifest(max_length=40)).max_length
        == 6
    )
    assert resolve_options(GenerationOptions(), _manifest(max_new_tokens=7)).max_length == 8
    assert (
        resolve_options(GenerationOptions(max_length=9), _manifest(max_length=40)).max_length == 9
    )
    # Never beyond the model's positions.
    assert resolve_options(GenerationOptions(max_new_tokens=500), _manifest()).max_length == 64
    resolved = resolve_options(GenerationOptions(min_new_tokens=3), _manifest(min_length=1))
    assert resolved.min_length == 4


def test_defaults_and_request_override() -> None:
    manifest = _manifest(
        num_beams=4, length_penalty=0.8, no_repeat_ngram_size=3, bad_words_ids=[[2], [0]]
    )
    resolved = resolve_options(GenerationOptions(), manifest)
    assert (resolved.num_beams, resolved.length_penalty, resolved.no_repeat_ngram_size) == (
        4,
        0.8,
        3,
    )
    # NoBadWordsLogitsProcessor ignores a bad word that is exactly EOS.
    assert resolved.bad_words_ids == ((2,),)
    resolved = resolve_options(GenerationOptions(num_beams=1, no_repeat_ngram_size=0), manifest)
    assert (resolved.num_beams, resolved.no_repeat_ngram_size) == (1, 0)
    # Sampling uses transformers' top_k=50 unless told otherwise.
    assert resolve_options(GenerationOptions(do_sample=True), _manifest()).top_k == 50


def test_processor_order_follows_transformers() -> None:
    resolved = resolve_options(
        GenerationOptions(
            min_new_tokens=2, forced_bos_token_id=5, forced_eos_token_id=0, do_sample=True
        ),
        _manifest(),
    )
    kinds = [type(p) for p in build_processors(resolved)]
    assert kinds == [MinLength, ForcedBOS, ForcedEOS, TopK]
    assert resolved.begin_suppress_index == 2  # after the start token and the forced BOS
    # The seed does not split requests into different processing groups.
    a = resolve_options(GenerationOptions(do_sample=True, seed=1), _manifest())
    b = resolve_options(GenerationOptions(do_sample=True, seed=2), _manifest())
    assert a != b and a.group_key == b.group_key


@pytest.mark.parametrize(
    "options",
    [
        GenerationOptions(num_beams=2, num_return_sequences=3),
        GenerationOptions(num_return_sequences=2),  # greedy returns one sequence
        GenerationOptions(do_sample=True, temperature=0.0),
        GenerationOptions(do_sample=True, top_p=1.5),
        GenerationOptions(max_new_tokens=0),
        GenerationOptions(early_stopping="sometimes"),  # type: ignore[arg-type]
        GenerationOptions(suppress_tokens=[100]),
        GenerationOptions(bad_words_ids=[[-1]]),
        GenerationOptions(repetition_penalty=0.0),
    ],
)
def test_invalid_options_are_input_errors(options: GenerationOptions) -> None:
    with pytest.raises(RuntimeInputError):
        resolve_options(options, _manifest())
