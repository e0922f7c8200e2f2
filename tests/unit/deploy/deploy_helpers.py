"""Shared helpers for the deployment checks: paths, tools, metric and setting names."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
METRIC_NAME = re.compile(r"\bs2s_[a-z0-9_]+")


def tool(name: str) -> str:
    """Path of a command-line tool: the venv's own (pip-installed) first, then PATH."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        if name == "promtool":
            pytest.skip("promtool is not installed (`make system-deps` installs it)")
        pytest.fail(f"{name} is not installed (it is in the test extra of pyproject.toml)")
    return found


def run(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a tool and capture its output (never raises on a non-zero exit)."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def load_yaml(path: Path) -> Any:
    """The single YAML document in ``path``."""
    return yaml.safe_load(path.read_text())


def exported_series() -> set[str]:
    """Every series name the service exports, from service/api/metrics.py itself.

    Counters are exposed as ``<name>_total`` and histograms as ``_bucket``/``_sum``/
    ``_count``; families with labels have no samples until used, so names come from the
    family types rather than from a scrape.
    """
    from service.api.metrics import Metrics

    names: set[str] = set()
    for family in Metrics().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}_{s}" for s in ("bucket", "sum", "count"))
        else:
            names.add(family.name)
    return names


def setting_env_names() -> set[str]:
    """The ``S2S_`` environment variable of every field of service/settings.py."""
    from service.settings import Settings

    return {f"S2S_{name.upper()}" for name in Settings.model_fields}
