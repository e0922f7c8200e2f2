"""Finish reasons come from the search: an EOS the model chose, or the length budget."""

from __future__ import annotations

from service.runtime import GenerationOptions
from service.runtime.options import resolve_options
from service.runtime.search import finish_reason
from tests.support.fake_runtime import EOS, fake_manifest


def test_eos_before_the_budget_is_eos_and_a_full_budget_is_length() -> None:
    opts = resolve_options(GenerationOptions(max_new_tokens=4), fake_manifest())
    assert finish_reason([5, 6, EOS], opts) == "eos"
    assert finish_reason([5, 6, 7, EOS], opts) == "eos"  # chosen on the last step
    assert finish_reason([5, 6, 7, 8], opts) == "length"


def test_a_forced_eos_at_the_budget_is_length() -> None:
    opts = resolve_options(
        GenerationOptions(max_new_tokens=3, forced_eos_token_id=EOS), fake_manifest()
    )
    assert finish_reason([5, 6, EOS], opts) == "length"
    assert finish_reason([5, EOS], opts) == "eos"
