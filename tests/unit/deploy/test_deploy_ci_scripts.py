"""The CI shell scripts pass shellcheck (the container check runs only in CI, so its
mistakes would otherwise surface late)."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_helpers import REPO, run, tool


@pytest.mark.parametrize("script", [".ci/container-check.sh", ".ci/run"])
def test_shellcheck_is_clean(script: str) -> None:
    result = run([tool("shellcheck"), "--shell=bash", script])
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_catches_a_bad_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $DIR/*\n")
    result = run([tool("shellcheck"), str(bad)], cwd=REPO)
    assert result.returncode != 0 and "SC2086" in result.stdout
