"""Package writing end to end: CLI progress, --overwrite, atomicity on failure."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import export.pipeline
from export.__main__ import main
from export.errors import ConversionError, ValidationFailedError
from export.pipeline import export_package
from export.validate import Generate, ValidationSetup
from service.runtime.manifest import Manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def marian_dir(tiny_checkpoint: Callable[[str], Path]) -> Path:
    return tiny_checkpoint("marian")


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_cli_export_progress_and_overwrite(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, marian_dir: Path
) -> None:
    """``python -m export``: stages, validation and the positioned pair (``--positioned``,
    fp32 only), refusal to overwrite, then ``--overwrite --no-validate`` with int8 (one CLI
    export each way: the suite's other packages come from the cache)."""
    args = [str(marian_dir), "--task", "translation", "--name", "demo", "--out-dir", str(tmp_path)]
    assert main([*args, "--precision", "fp32", "--positioned"]) == 0
    captured = capsys.readouterr()
    for stage in ("export", "optimize", "validate", "positioned"):
        assert f"[{stage}] done in" in captured.err
    assert "fp32: greedy_exact=1.000 beam_exact=1.000" in captured.out
    assert "fp32 positioned: greedy_exact=1.000 beam_exact=1.000" in captured.out
    package = tmp_path / "demo"
    first = Manifest.load(package)
    assert set(first.variants) == {"fp32"} and first.variants["fp32"].validated
    positioned = first.variants["fp32"].positioned
    assert positioned is not None and positioned.validated
    assert first.source.kind == "local" and first.source.ref == str(marian_dir)
    assert (package / "validation.json").is_file()

    assert main([*args, "--precision", "fp32"]) != 0
    assert "already exists" in capsys.readouterr().err
    assert Manifest.load(package) == first

    assert (
        main([*args, "--precision", "fp32,int8", "--positioned", "--overwrite", "--no-validate"])
        == 0
    )
    capsys.readouterr()
    second = Manifest.load(package)
    assert set(second.variants) == {"fp32", "int8"}
    assert second.created_at != first.created_at
    assert not second.variants["int8"].validated  # validation was skipped, never "passed"
    for variant in second.variants.values():
        assert variant.positioned is not None and not variant.positioned.validated
    assert "skipped" in json.loads((package / "validation.json").read_text())
    assert _entries(tmp_path) == ["demo"]  # no temp or old copies left behind


def test_failed_export_leaves_nothing(tmp_path: Path, marian_dir: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(marian_dir, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="ONNX export"):
        export_package(broken, "translation", "x", out, ("fp32",))
    assert _entries(out) == []


def test_fp32_mismatch_fails_and_writes_nothing(
    tmp_path: Path, marian_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runner that disagrees with generate() must stop the export (fake runner: the real
    one agrees, which the family tests show)."""

    def factory(package_dir: Path, precision: str, setup: ValidationSetup) -> Generate:
        def generate(num_beams: int) -> list[list[int]]:
            return [[5, 6, 7] for _ in setup.texts]

        return generate

    monkeypatch.setattr(export.pipeline, "default_generator", lambda: (factory, "fake"))
    out = tmp_path / "out"
    with pytest.raises(ValidationFailedError, match=r"greedy_exact=0\.000"):
        export_package(marian_dir, "translation", "x", out, ("fp32",))
    assert _entries(out) == []
