"""Shipping a package with a subset of its variants."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.runtime import load_runtime
from service.runtime.manifest import Manifest
from training.recipes.ship import ship


@pytest.mark.slow
def test_ship_keeps_only_listed_variants(tiny_package: Callable[..., Path], tmp_path: Path) -> None:
    package = tiny_package("marian")
    out = tmp_path / "not-yet" / "shipped"  # missing parent folders are created
    manifest = ship(package, out, ["int8"], "a test package")
    assert list(manifest.variants) == ["int8"]
    assert not (out / "fp32").exists() and (out / "int8").is_dir()
    reloaded = Manifest.load(out)
    assert reloaded.description == "a test package"
    reloaded.verify_files(out)
    runtime = load_runtime(out)  # precision "auto" must land on the variant that is there
    assert runtime.info.precision == "int8"
    with pytest.raises(ValueError, match="no fp16 variant"):
        ship(package, tmp_path / "other", ["fp16"], None)
    assert not (tmp_path / "other").exists()
