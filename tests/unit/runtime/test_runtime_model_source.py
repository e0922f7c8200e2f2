"""service.runtime.model_source: what ORT loads for a model file (a rewritten temporary
copy, removed after the load, or the file itself when nothing applies)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from service.runtime import model_source as source_module
from service.runtime.model_source import model_source
from tests.support.attention_graph import attention_model
from tests.support.matmul_graph import save_matmul_model


def _count_rewrites(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    original = source_module.load_bytes

    def counting(path: Path, *args: object, **kwargs: object) -> bytes | None:
        calls.append(path)
        return original(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(source_module, "load_bytes", counting)
    return calls


@pytest.fixture
def decoder(tmp_path: Path) -> Path:
    """A file the shared cross K/V rewrite applies to."""
    path = tmp_path / "decoder.onnx"
    onnx.save(attention_model(), path)
    return path


def test_each_load_rewrites_and_cleans_up(decoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_rewrites(monkeypatch)
    for _ in range(2):
        with model_source(decoder, "as_exported", "cpu", shared_cross_kv=True) as source:
            assert isinstance(source, str) and Path(source).is_file()
        assert not Path(source).exists()
    assert len(calls) == 2


def test_a_file_nothing_applies_to_loads_as_it_is(tmp_path: Path) -> None:
    plain = tmp_path / "plain.onnx"
    save_matmul_model(plain)
    with model_source(plain, "auto", "cpu", shared_cross_kv=True) as source:
        assert source == str(plain)
    with model_source(plain, "as_exported", "cpu", shared_cross_kv=False) as source:
        assert source == str(plain)
