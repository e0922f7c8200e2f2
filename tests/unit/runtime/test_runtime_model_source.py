"""service.runtime.model_source: what ORT loads for a model file, and reusing one
rewritten copy across the loads of a ``reused_rewrites`` block (runtime lanes)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from service.runtime import model_source as source_module
from service.runtime.model_source import model_source, reused_rewrites
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


def test_a_rewritten_file_is_rewritten_once_per_block_and_removed_after(
    decoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_rewrites(monkeypatch)
    with reused_rewrites():
        with model_source(decoder, "as_exported", "cpu", shared_cross_kv=True) as first:
            pass
        with model_source(decoder, "as_exported", "cpu", shared_cross_kv=True) as second:
            assert isinstance(second, str) and second == first != str(decoder)
            assert Path(second).is_file()  # still there for the later loads
        with model_source(decoder, "as_exported", "cpu", shared_cross_kv=False) as plain:
            assert plain == str(decoder)  # other rewrites asked for: its own entry
    assert calls == [decoder, decoder]
    assert not Path(first).exists()


def test_outside_a_block_each_load_rewrites_and_cleans_up(
    decoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_rewrites(monkeypatch)
    for _ in range(2):
        with model_source(decoder, "as_exported", "cpu", shared_cross_kv=True) as source:
            assert isinstance(source, str) and Path(source).is_file()
        assert not Path(source).exists()
    assert len(calls) == 2


def test_a_file_nothing_applies_to_is_parsed_once_per_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain.onnx"
    save_matmul_model(plain)
    calls = _count_rewrites(monkeypatch)
    with reused_rewrites():
        for _ in range(3):
            with model_source(plain, "auto", "cpu", shared_cross_kv=True) as source:
                assert source == str(plain)
    assert calls == [plain]
