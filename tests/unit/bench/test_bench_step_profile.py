"""bench.step_profile on a real tiny positioned package: both targets finish every request
and the components add up to the wall time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.step_profile import Stopwatch, main
from tests.support.positioned import positioned_package

pytestmark = pytest.mark.slow


def test_stopwatch_times_each_call_of_the_wrapped_method() -> None:
    class Worker:
        def work(self, value: int) -> int:
            return value * 2

    worker, watch = Worker(), Stopwatch()
    watch.wrap(worker, "work", "work")
    assert worker.work(3) == 6 and worker.work(4) == 8
    assert watch.seconds["work"] > 0


def test_profiles_both_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "profile.json"
    args = ["--package", str(positioned_package("marian")), "--threads", "1"]
    assert main([*args, "--clients", "3", "--requests", "7", "--json", str(out)]) == 0
    profiles = {p["target"]: p for p in json.loads(out.read_text())}
    assert set(profiles) == {"batched", "iteration"}
    for profile in profiles.values():
        assert profile["requests"] == 7
        parts = profile["components"]
        assert parts["decoder"] > 0 and parts["encoder"] > 0
        assert sum(parts.values()) == pytest.approx(profile["wall_s"], rel=0.01)
    assert profiles["iteration"]["steps"] > 0 and profiles["iteration"]["mean_slots"] <= 3
    assert "| decoder |" in capsys.readouterr().out
