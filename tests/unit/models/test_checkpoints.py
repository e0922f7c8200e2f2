"""Locally trained checkpoints: they load with transformers and their output depends on input."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from models.checkpoint_data import DataMissingError, read_sentences, resolve_data_dir
from models.checkpoint_recipes import FAMILIES, reverse_words
from models.checkpoints import ensure_checkpoint, fingerprint, main

pytest.importorskip("torch")


def test_fingerprint_is_stable_and_keyed_by_family_and_size() -> None:
    assert fingerprint("marian", "tiny") == fingerprint("marian", "tiny")
    keys = {fingerprint(family, size) for family in FAMILIES for size in ("tiny", "full")}
    assert len(keys) == 2 * len(FAMILIES)


def test_unknown_family_or_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown family"):
        ensure_checkpoint("gpt2")
    with pytest.raises(ValueError, match="unknown size"):
        ensure_checkpoint("marian", "huge")


def test_missing_data_dir_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataMissingError, match="S2S_DATA_DIR"):
        resolve_data_dir(tmp_path)


def test_reverse_words() -> None:
    assert reverse_words("A dog runs .") == ". runs dog A"
