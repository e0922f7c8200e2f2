"""The Translator's routes over fake models: the manifest's pairs, a pair no model serves
translated through English (plan, run, stream, source "auto"), and the languages lists."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from service.engine import (
    CallContext,
    EngineObserver,
    GenerationOptions,
    LoadConfig,
    ModelRegistry,
    QueueFullError,
    UnsupportedLanguagePairError,
)
from service.engine.admission import WorkGroup
from service.engine.scheduler import EngineConfig
from service.engine.translation import PIVOT, Translator
from tests.support.fake_runtime import FakeRuntime

MULTI_PAIRS = ("de->en", "en->de", "en->fr", "fr->en")
GERMAN = "Der Hund läuft heute mit seinem Besitzer durch den Park."


def _multi() -> FakeRuntime:
    """One package like the default translator: en<->de, en<->fr, listed as pairs."""
    codes = ("de", "en", "fr")
    return FakeRuntime("multi", "translation", languages=(codes, codes), pairs=MULTI_PAIRS)


def _one(source: str, target: str) -> FakeRuntime:
    return FakeRuntime(f"{source}-{target}", "translation", languages=((source,), (target,)))


async def _translator(*runtimes: FakeRuntime) -> AsyncIterator[Translator]:
    registry = ModelRegistry(
        None,  # type: ignore[arg-type]  # runtimes given: no folder is read
        [],
        LoadConfig(warmup=False),
        lambda name: EngineObserver(),
        runtimes={r.manifest.name: r for r in runtimes},
    )
    await registry.start()
    await registry.wait_loaded()
    try:
        yield Translator(registry)
    finally:
        await registry.stop(1)


@pytest.fixture
async def multi() -> AsyncIterator[tuple[Translator, FakeRuntime]]:
    runtime = _multi()
    async for translator in _translator(runtime):
        yield translator, runtime


@pytest.fixture
async def singles() -> AsyncIterator[Translator]:
    async for translator in _translator(_one("de", "en"), _one("en", "fr"), _one("en", "de")):
        yield translator


def _call() -> CallContext:
    return CallContext.starting_now(30_000)


async def test_registry_serves_only_the_listed_pairs(
    multi: tuple[Translator, FakeRuntime],
) -> None:
    translator, _ = multi
    entry = translator.registry.entries["multi"]
    assert entry.pairs() == list(MULTI_PAIRS)
    assert entry.serves_pair("de", "en") and entry.serves_pair("en", "fr")
    assert not entry.serves_pair("de", "fr") and not entry.serves_pair("fr", "de")


async def test_languages_list_targets_reached_through_english(
    multi: tuple[Translator, FakeRuntime], singles: Translator
) -> None:
    translator, _ = multi
    assert translator.languages() == {"de": ["en", "fr"], "en": ["de", "fr"], "fr": ["de", "en"]}
    assert translator.sources_into("fr") == ["de", "en"]
    assert translator.sources_into("de", "multi") == ["en", "fr"]
    # Separate models: de reaches fr through de-en + en-fr; nothing translates into de but en.
    assert singles.languages() == {"de": ["en", "fr"], "en": ["de", "fr"]}
    assert singles.sources_into("de") == ["en"]
    assert singles.sources_into("fr", "de-en") == []  # a named model pivots only by itself


async def test_a_direct_pair_is_not_pivoted(multi: tuple[Translator, FakeRuntime]) -> None:
    translator, runtime = multi
    plan = await translator.plan(["Hello there."], "en", "fr")
    runtime.encoded.clear()
    (result,) = await plan.run(GenerationOptions(), _call())
    assert plan.pivot is None and result.pivot is None and result.model == "multi"
    assert runtime.encoded == [("en", "fr")]


async def test_a_pair_no_model_serves_goes_through_english(
    multi: tuple[Translator, FakeRuntime],
) -> None:
    translator, runtime = multi
    plan = await translator.plan(["Guten Morgen.", "Wie geht es?"], "de", "fr")
    assert plan.pivot == PIVOT and plan.models == ["multi"]
    runtime.encoded.clear()
    results = await plan.run(GenerationOptions(), _call())
    # The first hop, de->en, then its output, en->fr: one batch per hop.
    assert runtime.encoded == [("de", "en"), ("en", "fr")]
    english = await (await translator.plan(["Guten Morgen.", "Wie geht es?"], "de", "en")).run(
        GenerationOptions(), _call()
    )
    french = await (await translator.plan([e.text for e in english], "en", "fr")).run(
        GenerationOptions(), _call()
    )
    assert [r.text for r in results] == [f.text for f in french]
    assert all(r.pivot == "en" and r.model == "multi" and r.source_lang == "de" for r in results)


async def test_two_models_make_one_pivot_route(singles: Translator) -> None:
    plan = await singles.plan(["Guten Morgen."], "de", "fr")
    (result,) = await plan.run(GenerationOptions(), _call())
    assert plan.models == ["de-en", "en-fr"]
    assert result.model == "de-en+en-fr" and result.pivot == "en"


async def test_no_route_is_the_direct_pairs_error(singles: Translator) -> None:
    with pytest.raises(UnsupportedLanguagePairError, match="no model translates fr->de"):
        await singles.plan(["Bonjour."], "fr", "de")  # fr->en is missing
    with pytest.raises(UnsupportedLanguagePairError, match="no model translates ja->fr"):
        await singles.plan(["こんにちは"], "ja", "fr")
    with pytest.raises(UnsupportedLanguagePairError, match="'de-en' does not translate de->fr"):
        await singles.plan(["Guten Morgen."], "de", "fr", model="de-en")


async def test_a_named_multilingual_model_pivots_through_itself(
    multi: tuple[Translator, FakeRuntime],
) -> None:
    translator, _ = multi
    plan = await translator.plan(["Guten Morgen."], "de", "fr", model="multi")
    assert plan.pivot == "en"


async def test_auto_detects_a_source_reached_through_the_pivot(
    multi: tuple[Translator, FakeRuntime],
) -> None:
    translator, runtime = multi
    plan = await translator.plan([GERMAN], "auto", "fr")
    assert plan.detected[0] is not None and plan.detected[0].language == "de"
    runtime.encoded.clear()
    (result,) = await plan.run(GenerationOptions(), _call())
    assert result.pivot == "en" and runtime.encoded == [("de", "en"), ("en", "fr")]


async def test_streaming_a_pivot_streams_the_second_hop(
    multi: tuple[Translator, FakeRuntime],
) -> None:
    translator, runtime = multi
    texts = ["Guten Morgen.", "Wie geht es?"]
    expected = await (await translator.plan(texts, "de", "fr")).run(GenerationOptions(), _call())
    plan = await translator.plan(texts, "de", "fr")
    runtime.encoded.clear()
    deltas = await plan.stream(GenerationOptions(), _call())
    assert runtime.encoded[0] == ("de", "en")  # the first hop ran before the stream opened
    pieces = ["", ""]
    async for delta in deltas:
        pieces[delta.index] += delta.text
    assert pieces == [r.text for r in expected]
    assert runtime.encoded[-1] == ("en", "fr")


async def test_alternatives_of_a_pivot_come_from_the_second_hop(
    multi: tuple[Translator, FakeRuntime],
) -> None:
    translator, _ = multi
    options = GenerationOptions(num_beams=3, num_return_sequences=3)
    (result,) = await (await translator.plan(["Guten Morgen."], "de", "fr")).run(options, _call())
    single = GenerationOptions(num_beams=3)
    (english,) = await (await translator.plan(["Guten Morgen."], "de", "en")).run(single, _call())
    (french,) = await (await translator.plan([english.text], "en", "fr")).run(options, _call())
    assert len(result.alternatives) == 2
    assert [result.text, *result.alternatives] == [french.text, *french.alternatives]


async def test_the_general_package_serves_a_shared_pair_by_default() -> None:
    # A caption specialist named first alphabetically ("a-...") beside the general model:
    # en->de goes to the package serving the most directions unless a model is named.
    specialist = FakeRuntime("a-captions", "translation", languages=(("en",), ("de",)))
    async for translator in _translator(specialist, _multi()):
        registry = translator.registry
        assert registry.for_pair("en", "de", None).name == "multi"
        assert registry.for_pair("en", "de", "a-captions").name == "a-captions"


async def test_a_pivot_whose_second_hop_is_full_is_refused_before_the_first_runs() -> None:
    de_en, en_fr = _one("de", "en"), _one("en", "fr")
    registry = ModelRegistry(
        None,  # type: ignore[arg-type]  # runtimes given: no folder is read
        [],
        LoadConfig(warmup=False, engine=EngineConfig(max_queue=1)),
        lambda name: EngineObserver(),
        runtimes={r.manifest.name: r for r in (de_en, en_fr)},
    )
    await registry.start()
    await registry.wait_loaded()
    translator = Translator(registry)
    second = registry.for_pair("en", "fr", None)
    held = WorkGroup(cost=1)
    second.engine.reserve(held)  # the second hop's queue is full
    try:
        for source in ("de", "auto"):
            with pytest.raises(QueueFullError):
                await translator.plan([GERMAN], source, "fr")
        assert de_en.encoded == []  # the first hop never tokenized, let alone ran
        second.engine.release(held)
        plan = await translator.plan([GERMAN], "de", "fr")
        (result,) = await plan.run(GenerationOptions(), _call())
        assert result.text
    finally:
        await registry.stop(1)
