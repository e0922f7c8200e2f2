"""``python -m bench``: step selection (the steps themselves are tested in their modules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.__main__ import STEPS, engine_documents, main


def test_unknown_steps_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--skip", "engine,nonsense"])
    assert "nonsense" in capsys.readouterr().err


def test_skipping_every_step_only_rewrites_the_report(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nprose\n")
    args = ["--out", str(tmp_path), "--doc", str(doc), "--plots", str(tmp_path / "plots")]
    assert main([*args, "--skip", ",".join(STEPS)]) == 0
    text = doc.read_text()
    assert "prose" in text and "**Not run.** no GPU result document" in text
    assert not any(path.exists() for path in engine_documents(tmp_path))


def test_ceiling_needs_an_engine_document(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    args = ["--out", str(tmp_path), "--doc", str(doc), "--plots", str(tmp_path / "plots")]
    others = [step for step in STEPS if step != "ceiling"]
    assert main([*args, "--skip", ",".join(others)]) == 0
    assert not (tmp_path / "ceiling.json").exists()
