"""training.defaults builds only the default packages whose task nothing serves yet, and
the summarization default it builds is a shipped, honest copy model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.runtime import GenerationOptions, Manifest, load_runtime
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


def test_the_summarization_default_is_a_shipped_copy_model(copy_summarizer: Path) -> None:
    """What tests/unit/models checked while ``copy-summarizer`` was committed, now on the
    package ``build_default`` ships (the ``copy_summarizer`` fixture): int8 only, no
    exporter's path, a description that says it copies, verified checksums, and it copies
    its input."""
    manifest = Manifest.load(copy_summarizer)
    assert (manifest.name, manifest.task, manifest.family) == (
        "copy-summarizer",
        "summarization",
        "bart",
    )
    assert list(manifest.variants) == list(defaults.SHIPPED)
    assert manifest.source.ref == "python -m training.checkpoints --family bart --size tiny"
    assert "/work/" not in manifest.description
    assert "Plumbing model" in manifest.description and "copy its input" in manifest.description
    assert "Licence" in manifest.description
    runtime = load_runtime(copy_summarizer, device="cpu", intra_op_threads=1, verify=True)
    text = "A man rides a bike down the street."
    [[summary]] = runtime.generate_texts([text], GenerationOptions(num_beams=1))
    words = set(text.lower().split())
    assert len(words & set(summary.lower().split())) >= len(words) // 2
