"""The manifest's ``languages.pairs``: the directions a package serves (empty: every
source into every other target, as packages written before the field)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.runtime.manifest import Languages

CODES = ["de", "en", "fr"]


def test_listed_pairs_are_the_directions() -> None:
    langs = Languages(source=CODES, target=CODES, pairs=["de->en", "en->de", "en->fr", "fr->en"])
    assert langs.directions() == [("de", "en"), ("en", "de"), ("en", "fr"), ("fr", "en")]
    assert langs.serves("en", "fr") and langs.serves("fr", "en")
    assert not langs.serves("de", "fr") and not langs.serves("en", "en")


def test_no_pairs_means_every_combination() -> None:
    langs = Languages(source=["en", "fr"], target=["de"])
    assert langs.directions() == [("en", "de"), ("fr", "de")]
    assert langs.serves("fr", "de") and not langs.serves("de", "fr")
    assert Languages.model_validate({"source": ["en"], "target": ["de"]}).pairs == []


@pytest.mark.parametrize("pair", ["de-fr", "it->en", "en->it", "en"])
def test_a_pair_must_name_listed_languages(pair: str) -> None:
    with pytest.raises(ValidationError, match="pair"):
        Languages(source=CODES, target=CODES, pairs=[pair])
