"""Runtime test fixtures: loaded runtimes and transformers references per family."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.runtime import Seq2SeqRuntime, load_runtime


@pytest.fixture(scope="session")
def fp32_runtime(tiny_package: Callable[..., Path]) -> Callable[[str], Seq2SeqRuntime]:
    """Return a function loading (once) the fp32 variant of a family's tiny package."""
    cache: dict[str, Seq2SeqRuntime] = {}

    def get(family: str) -> Seq2SeqRuntime:
        if family not in cache:
            cache[family] = load_runtime(tiny_package(family), device="cpu", precision="fp32")
        return cache[family]

    return get


@pytest.fixture(scope="session")
def hf_model(tiny_checkpoint: Callable[[str], Path]) -> Callable[[str], Any]:
    """Return a function loading (once) the transformers model of a family's checkpoint."""
    from transformers import AutoModelForSeq2SeqLM

    cache: dict[str, Any] = {}

    def get(family: str) -> Any:
        if family not in cache:
            cache[family] = AutoModelForSeq2SeqLM.from_pretrained(tiny_checkpoint(family)).eval()
        return cache[family]

    return get
