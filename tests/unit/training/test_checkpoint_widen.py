"""Replication widening: the wide model computes what the narrow one computes."""

from __future__ import annotations

from typing import Any

import pytest

from training.checkpoint_recipes import FAMILIES, RECIPES, Dims
from training.checkpoint_widen import (
    WideningError,
    fixed_position_tables,
    narrow_dims,
    narrow_positions,
    perturb,
    stream_scale,
    widen_into,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

FACTOR = 4
VOCAB = 300
WIDE = Dims(vocab=VOCAB, d_model=64, encoder_layers=2, decoder_layers=2, heads=4, ffn=128)
# Families whose positions are fixed sinusoids computed from the width (not a parameter).
FIXED_SINUSOIDS = {"marian", "pegasus", "m2m100"}


def _pair(family: str, seed: int = 0) -> tuple[Any, Any]:
    """A random narrow model (weights well away from init) and an untouched wide one."""
    recipe = RECIPES[family]
    torch.manual_seed(seed)
    wide = transformers.AutoModelForSeq2SeqLM.from_config(recipe.make_config(WIDE, VOCAB, 0.0))
    narrow = transformers.AutoModelForSeq2SeqLM.from_config(
        recipe.make_config(narrow_dims(WIDE, FACTOR), VOCAB, 0.0)
    )
    with torch.no_grad():
        for param in narrow.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.3)
    return narrow.eval(), wide.eval()


def _logits(model: Any, seed: int = 1) -> Any:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randint(3, VOCAB - 10, (3, 11), generator=generator)
    decoder_inputs = torch.randint(3, VOCAB - 10, (3, 7), generator=generator)
    mask = torch.ones_like(inputs)
    mask[0, 8:] = 0  # padding is exercised
    with torch.no_grad():
        return model(input_ids=inputs, attention_mask=mask, decoder_input_ids=decoder_inputs).logits


def _replicate_positions(narrow: Any, wide: Any) -> None:
    """Give the wide model the exact widening of the narrow fixed position tables."""
    scale = stream_scale(wide, FACTOR)
    wide_tables = fixed_position_tables(wide)
    for name, table in fixed_position_tables(narrow).items():
        with torch.no_grad():
            wide_tables[name].copy_(scale * table.detach().repeat_interleave(FACTOR, dim=1))


@pytest.mark.parametrize("family", FAMILIES)
def test_widening_preserves_logits_exactly(family: str) -> None:
    narrow, wide = _pair(family)
    assert bool(fixed_position_tables(wide)) == (family in FIXED_SINUSOIDS)
    if family in FIXED_SINUSOIDS:
        _replicate_positions(narrow, wide)
    widen_into(narrow, wide, FACTOR)
    assert wide.config.d_model == FACTOR * narrow.config.d_model
    expected, got = _logits(narrow), _logits(wide)
    assert expected.std() > 0.5  # not a degenerate model
    assert torch.allclose(got, expected, atol=2e-3 * float(expected.abs().max()), rtol=0)


@pytest.mark.parametrize("family", sorted(FIXED_SINUSOIDS))
def test_fixed_sinusoids_widen_close_with_block_mean_positions(family: str) -> None:
    narrow, wide = _pair(family)
    assert narrow_positions(narrow, wide, FACTOR)  # both position tables replaced
    widen_into(narrow, wide, FACTOR)
    expected, got = _logits(narrow), _logits(wide)
    agree = (expected.argmax(-1) == got.argmax(-1)).float().mean()
    assert agree >= 0.9
    # Close but not exact: only the normalisation statistics see the wide sinusoids.
    assert 0 < float((got - expected).abs().max()) < 0.2 * float(expected.abs().max())


def test_learned_positions_are_not_replaced() -> None:
    narrow, wide = _pair("bart")
    assert narrow_positions(narrow, wide, FACTOR) == []


def test_tied_embeddings_stay_tied() -> None:
    narrow, wide = _pair("marian")
    widen_into(narrow, wide, FACTOR)
    output, embedding = wide.get_output_embeddings(), wide.get_input_embeddings()
    assert output.weight.data_ptr() == embedding.weight.data_ptr()


def test_narrow_dims_divides_width_and_ffn_only() -> None:
    dims = narrow_dims(Dims(58101, 512, 6, 6, 8, 2048), 8)
    assert dims == Dims(58101, 64, 6, 6, 8, 256)
    with pytest.raises(WideningError, match="divisible"):
        narrow_dims(Dims(100, 96, 1, 1, 8, 256), 8)


def test_widening_rejects_mismatched_models() -> None:
    narrow, _ = _pair("marian")
    other = transformers.AutoModelForSeq2SeqLM.from_config(
        RECIPES["marian"].make_config(WIDE, VOCAB, 0.0)
    )
    with pytest.raises(WideningError, match="shape"):
        widen_into(narrow, other, 2)


def test_perturb_breaks_the_block_structure_but_keeps_the_function_close() -> None:
    narrow, wide = _pair("bart")
    widen_into(narrow, wide, FACTOR)
    before = _logits(wide)
    fc1 = wide.model.encoder.layers[0].fc1.weight
    assert torch.equal(fc1[0], fc1[1])  # replicated rows
    perturb(wide, 0.02, seed=3)
    assert not torch.equal(fc1[0], fc1[1])
    after = _logits(wide)
    assert (before.argmax(-1) == after.argmax(-1)).float().mean() >= 0.9


def test_widening_rejects_a_wide_model_with_weights_the_narrow_one_lacks() -> None:
    # Pegasus is Marian plus final encoder/decoder layer norms: those would stay random.
    narrow, _ = _pair("marian")
    _, pegasus = _pair("pegasus")
    with pytest.raises(WideningError, match="no weights for"):
        widen_into(narrow, pegasus, FACTOR)
