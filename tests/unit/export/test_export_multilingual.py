"""A multi-target Marian checkpoint (the default translator's format: one model, the
target chosen by forcing its language token first) exports to a validated multilingual
package whose runtime and service route every direction by that token.

The checkpoint is tiny and untrained (``training.checkpoint_multilingual``): its words
are arbitrary, so the tests check the forced first token and the routing, not quality.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from service.api import create_app
from service.runtime import GenerationOptions, UnknownLanguageError, load_runtime
from service.runtime.manifest import Manifest
from service.settings import Settings
from tests.support.artefacts import multi_target_package

pytestmark = pytest.mark.slow

PAIRS = ["de->en", "en->de", "en->fr", "fr->en"]
TEXT = "A man rides a bike."


@pytest.fixture(scope="module")
def package() -> Path:
    return multi_target_package()


def test_export_writes_languages_tokens_and_pairs(package: Path) -> None:
    manifest = Manifest.load(package)
    langs = manifest.languages
    assert langs.source == ["de", "en", "fr"] and langs.target == ["de", "en", "fr"]
    assert langs.tokens == {"de": "__de__", "en": "__en__", "fr": "__fr__"}
    assert langs.pairs == PAIRS
    assert manifest.task_prefix == ""
    assert all(v.validated for v in manifest.variants.values())
    validation = json.loads((package / "validation.json").read_text())
    assert (validation["inputs"]["source_lang"], validation["inputs"]["target_lang"]) == (
        "en",
        "de",
    )


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_every_direction_starts_with_its_target_token(package: Path, precision: str) -> None:
    rt = load_runtime(package, device="cpu", precision=precision)
    hf = rt.tokenizer.hf
    plain = hf([TEXT])["input_ids"]
    options = GenerationOptions(num_beams=1, max_new_tokens=4)
    for pair in PAIRS:
        source, target = pair.split("->")
        ids = rt.encode_texts([TEXT], source_lang=source, target_lang=target)
        assert ids == plain  # no source-language token: Marian reads the text as it is
        (sequences,) = rt.generate(ids, rt.resolve(options, target_lang=target))
        first = sequences[0][0]
        assert first == hf.convert_tokens_to_ids(f"__{target}__"), pair
        assert f"__{target}__" not in rt.decode(sequences[0])
    with pytest.raises(UnknownLanguageError, match="de->fr"):
        rt.encode_texts([TEXT], source_lang="de", target_lang="fr")


async def test_the_service_pivots_de_to_fr_through_english(package: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(package, models / "multi")
    app = create_app(Settings(models_dir=models, precision="fp32"))
    async with LifespanManager(app) as manager:
        await app.state.registry.wait_loaded()
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            direct = await client.post(
                "/translate", json={"text": TEXT, "source_lang": "en", "target_lang": "fr"}
            )
            pivot = await client.post(
                "/translate", json={"text": TEXT, "source_lang": "de", "target_lang": "fr"}
            )
            languages = await client.get("/libretranslate/languages")
    assert direct.status_code == 200, direct.text
    assert "pivot" not in direct.json()
    assert pivot.status_code == 200, pivot.text
    assert pivot.json()["pivot"] == "en" and pivot.json()["model"] == "multi"
    assert {"code": "de", "name": "German", "targets": ["en", "fr"]} in languages.json()
