"""training.defaults builds only the default packages whose task nothing serves yet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training import defaults


def _package(root: Path, name: str, task: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "manifest.json").write_text(json.dumps({"task": task, "name": name}))


def test_served_tasks_reads_manifests(tmp_path: Path) -> None:
    _package(tmp_path, "demo-en-de", "translation")
    _package(tmp_path, "b-sum", "summarization")
    (tmp_path / "not-a-package").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{")
    assert defaults.served_tasks(tmp_path) == {
        "translation": "demo-en-de",
        "summarization": "b-sum",
    }


def test_ensure_defaults_skips_served_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _package(tmp_path, "demo-en-de", "translation")
    built: list[str] = []

    def fake_build(default: defaults.Default, models_dir: Path) -> Path:
        built.append(default.name)
        _package(models_dir, default.name, default.task)
        return models_dir / default.name

    monkeypatch.setattr(defaults, "build_default", fake_build)
    defaults.ensure_defaults(tmp_path)
    assert built == ["copy-summarizer", "copy-chat"]
    defaults.ensure_defaults(tmp_path)  # everything served now: nothing to build
    assert built == ["copy-summarizer", "copy-chat"]
