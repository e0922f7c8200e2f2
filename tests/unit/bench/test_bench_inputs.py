"""bench.inputs reads the data folder the checkpoint builder reads, with a built-in fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.inputs import translation_texts


def test_inputs_follow_s2s_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wmt14").mkdir()
    source = tmp_path / "wmt14" / "newstest2014-deen-src.en.txt"
    source.write_text("First sentence.\n\nSecond sentence.\n", encoding="utf-8")
    monkeypatch.setenv("S2S_DATA_DIR", str(tmp_path))
    texts = translation_texts(3)
    assert texts.source == str(source)
    assert texts.texts == ["First sentence.", "Second sentence.", "First sentence."]

    monkeypatch.setenv("S2S_DATA_DIR", str(tmp_path / "missing"))
    fallback = translation_texts(2)
    assert fallback.source == "built-in" and len(fallback.texts) == 2
