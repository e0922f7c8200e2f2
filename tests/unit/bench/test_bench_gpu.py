"""GPU suite gating: without a usable GPU the suite records why it did not run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gpu


def test_gpu_suite_records_why_it_did_not_run(tmp_path: Path) -> None:
    missing = gpu.missing_requirements()
    if not missing:
        pytest.skip("this machine has a usable GPU: the suite would really run")
    out = tmp_path / "gpu.json"
    assert gpu.main(["--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["ran"] is False
    assert all(reason in document["reason"] for reason in missing)
