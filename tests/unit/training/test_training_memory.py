"""glibc malloc thresholds for the checkpoint trainer (training.memory)."""

from __future__ import annotations

import platform

import pytest

from training.memory import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux", reason="mallopt is glibc's (Linux)")
def test_keep_freed_memory_is_accepted_by_glibc() -> None:
    assert keep_freed_memory(mmap_threshold_mb=64, trim_threshold_mb=256) is True
