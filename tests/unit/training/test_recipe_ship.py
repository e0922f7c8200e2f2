"""Shipping a package with a subset of its variants, and the committed demo package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from service.runtime import GenerationOptions, load_runtime
from service.runtime.manifest import Manifest
from training.recipes.ship import ship

REPO_ROOT = Path(__file__).resolve().parents[3]
DEMO = REPO_ROOT / "models" / "multi30k-en-de"


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


@pytest.mark.slow
@pytest.mark.skipif(not (DEMO / "manifest.json").exists(), reason="demo package not committed")
def test_committed_demo_package_translates_a_simple_sentence() -> None:
    manifest = Manifest.load(DEMO)
    manifest.verify_files(DEMO)
    assert manifest.task == "translation" and manifest.languages.target == ["de"]
    runtime = load_runtime(DEMO, device="cpu")
    sentence = ["A man is riding a bicycle."]
    greedy = runtime.generate_texts(sentence, GenerationOptions(num_beams=1), "en", "de")[0][0]
    # No options: the package defaults the server uses (beam 4).
    beam = runtime.generate_texts(sentence, source_lang="en", target_lang="de")[0][0]
    for text in (greedy, beam):
        assert "Mann" in text and "Fahrrad" in text, text
