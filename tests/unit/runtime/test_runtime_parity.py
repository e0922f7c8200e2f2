"""Token-exact parity of the ONNX runtime with transformers generate(), every family, fp32."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rt_helpers import TEXTS, hf_generate, languages

from service.runtime import GenerationOptions, Seq2SeqRuntime

pytest.importorskip("torch")

FAMILIES = ("marian", "bart", "t5", "pegasus", "blenderbot", "m2m100")
# Enough for real sentences of the tiny models, small enough to keep the suite fast.
MAX_NEW = 24


def _setup(
    family: str, fp32_runtime: Callable[[str], Seq2SeqRuntime], hf_model: Callable[[str], Any]
) -> tuple[Seq2SeqRuntime, Any, list[list[int]], str | None, dict[str, Any]]:
    rt = fp32_runtime(family)
    source, target = languages(rt)
    ids = rt.encode_texts(TEXTS, source_lang=source, target_lang=target)
    hf_kwargs: dict[str, Any] = {"max_new_tokens": MAX_NEW}
    if target is not None:
        hf_kwargs["forced_bos_token_id"] = rt.tokenizer.language_token_id(target)
    return rt, hf_model(family), ids, target, hf_kwargs


def _flat(result: list[list[list[int]]]) -> list[list[int]]:
    return [seq for per_input in result for seq in per_input]


@pytest.mark.parametrize("family", FAMILIES)
def test_greedy_batch_matches_transformers(
    family: str, fp32_runtime: Callable[[str], Seq2SeqRuntime], hf_model: Callable[[str], Any]
) -> None:
    rt, model, ids, target, hf_kwargs = _setup(family, fp32_runtime, hf_model)
    model_info = rt.manifest.model
    expected = hf_generate(
        model, ids, model_info.pad_token_id, model_info.eos_token_id, num_beams=1, **hf_kwargs
    )
    opts = rt.resolve(GenerationOptions(max_new_tokens=MAX_NEW, num_beams=1), target_lang=target)
    got = _flat(rt.generate(ids, opts))
    assert got == expected
    # The model must actually react to its input, or parity would prove little.
    assert len({tuple(s) for s in got}) > 1


@pytest.mark.parametrize("family", FAMILIES)
def test_beam_batch_matches_transformers(
    family: str, fp32_runtime: Callable[[str], Seq2SeqRuntime], hf_model: Callable[[str], Any]
) -> None:
    rt, model, ids, target, hf_kwargs = _setup(family, fp32_runtime, hf_model)
    model_info = rt.manifest.model
    expected = hf_generate(
        model,
        ids,
        model_info.pad_token_id,
        model_info.eos_token_id,
        num_beams=4,
        num_return_sequences=2,
        **hf_kwargs,
    )
    opts = rt.resolve(
        GenerationOptions(max_new_tokens=MAX_NEW, num_beams=4, num_return_sequences=2),
        target_lang=target,
    )
    got = rt.generate(ids, opts)
    assert all(len(per_input) == 2 for per_input in got)
    assert _flat(got) == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_alone_equals_padded_batch(
    family: str, fp32_runtime: Callable[[str], Seq2SeqRuntime], hf_model: Callable[[str], Any]
) -> None:
    rt, _, ids, target, _ = _setup(family, fp32_runtime, hf_model)
    for beams in (1, 4):
        opts = rt.resolve(
            GenerationOptions(max_new_tokens=MAX_NEW, num_beams=beams), target_lang=target
        )
        batched = rt.generate(ids, opts)
        alone = [rt.generate([row], opts)[0] for row in ids]
        assert alone == batched, f"num_beams={beams}"


BEAM_VARIANTS = [
    {"num_beams": 3, "early_stopping": True, "length_penalty": 0.6},
    {"num_beams": 4, "early_stopping": "never", "length_penalty": 2.0, "num_return_sequences": 4},
    {"num_beams": 2, "early_stopping": False, "length_penalty": -1.0},
]
PROCESSOR_VARIANTS = [
    {"repetition_penalty": 1.4, "no_repeat_ngram_size": 2},
    {"num_beams": 4, "no_repeat_ngram_size": 3, "min_new_tokens": 6},
    {"bad_words_ids": [[5], [9, 10]], "suppress_tokens": [6, 7], "begin_suppress_tokens": [8]},
    {"max_new_tokens": 5, "forced_eos_token_id": "eos"},
]


@pytest.mark.parametrize("family", ["marian", "bart"])
@pytest.mark.parametrize("kwargs", BEAM_VARIANTS + PROCESSOR_VARIANTS)
def test_options_match_transformers(
    family: str,
    kwargs: dict[str, Any],
    fp32_runtime: Callable[[str], Seq2SeqRuntime],
    hf_model: Callable[[str], Any],
) -> None:
    """Beam stopping rules and every logits processor, against generate() with the same kwargs."""
    rt, model, ids, target, hf_kwargs = _setup(family, fp32_runtime, hf_model)
    model_info = rt.manifest.model
    kwargs = {k: model_info.eos_token_id if v == "eos" else v for k, v in kwargs.items()}
    hf_kwargs = {**hf_kwargs, **kwargs}
    expected = hf_generate(
        model, ids, model_info.pad_token_id, model_info.eos_token_id, **hf_kwargs
    )
    options = GenerationOptions(**{"max_new_tokens": MAX_NEW, **kwargs})
    got = _flat(rt.generate(ids, rt.resolve(options, target_lang=target)))
    assert got == expected
