"""The thread count the service's pool gets from the cores the process may use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.runtime import sessions
from service.runtime.sessions import cgroup_cpu_limit, default_intra_op_threads


def test_cgroup_v2_quota_and_no_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota_and_no_cgroup(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 3.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux CPU affinity")
def test_threads_are_the_allowed_cores_capped_by_the_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(sessions, "cgroup_cpu_limit", lambda: None)
    assert default_intra_op_threads() == 4
    monkeypatch.setattr(sessions, "cgroup_cpu_limit", lambda: 2.5)
    assert default_intra_op_threads() == 2
    monkeypatch.setattr(sessions, "cgroup_cpu_limit", lambda: 0.5)
    assert default_intra_op_threads() == 1
