"""Decode-loop tuning knobs: glibc malloc thresholds and ORT thread spinning.

Neither may change a single output token; the speed effect is measured in bench.engine
(variants ours-mallopt and ours-nospin), never asserted here.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

import pytest

from service.runtime import GenerationOptions, Seq2SeqRuntime, load_runtime
from service.runtime.memory import keep_freed_memory

SOURCES = ["A man rides a red bicycle.", "Two dogs play in the snow near a house."]


def _greedy(rt: Seq2SeqRuntime) -> list[list[int]]:
    opts = rt.resolve(GenerationOptions(max_new_tokens=12, num_beams=1))
    return [seqs[0] for seqs in rt.generate(rt.encode_texts(SOURCES), opts)]


@pytest.mark.skipif(platform.system() != "Linux", reason="mallopt is glibc's (Linux)")
def test_keep_freed_memory_is_accepted_by_glibc() -> None:
    assert keep_freed_memory(mmap_threshold_mb=64, trim_threshold_mb=256) is True


def test_spin_off_sessions_give_the_same_tokens(
    tiny_package: Callable[[str], Path], fp32_runtime: Callable[[str], Seq2SeqRuntime]
) -> None:
    spinning = fp32_runtime("marian")
    sleeping = load_runtime(tiny_package("marian"), device="cpu", precision="fp32", spin=False)
    expected = _greedy(spinning)
    assert expected[0] != expected[1]  # input-dependent model: the comparison means something
    assert _greedy(sleeping) == expected
