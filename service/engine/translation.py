"""Translation across the served models: source ``"auto"``, the model per text, markup.

Routes that translate (ours, LibreTranslate's, DeepL's) go through a :class:`Translator`:
``plan = await translator.plan(texts, source, target, model, text_format)`` decides, before
any generation, which model serves which text (``registry.for_pair``, the one selection
rule), then ``await plan.run(options, call)`` (or ``plan.stream``) calls those models'
:class:`~service.engine.service.ModelService`, which does the sentence splitting and the
markup.

Source ``"auto"`` (or None): each text's language is detected on its own
(``service.text.language``), among the languages the served models translate from into
the target (or the named model's), so a batch may mix languages and go to several
models. Markup is detected on its text, not its tags, and URLs and e-mail addresses are
not read as language. A text without letters besides them (digits, emoji, a URL, empty
markup) is returned as it is, detected as ``"und"`` with confidence 0, as LibreTranslate
does. A text clearly in another language is a
``DetectedLanguageUnsupportedError`` naming it; one whose language cannot be told, a
``LanguageNotDetectedError``.

Pivot: a pair no model serves (``de->fr``) is translated through English (:data:`PIVOT`)
when models serve ``de->en`` and ``en->fr``, as LibreTranslate does: the first hop
translates the whole text, the second hop translates that translation (with the request's
options; the first hop gives one sequence, so alternatives come from the second).
:meth:`Translator.languages` lists pivot-reachable targets too, and detection for source
``"auto"`` considers every language that reaches the target. Streaming a pivoted text
streams the second hop (the first one runs to completion while the stream is prepared).
A named model pivots only through itself (a multilingual package missing a pair).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, Collection, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.engine.errors import (
    DetectedLanguageUnsupportedError,
    EngineError,
    LanguageNotDetectedError,
    UnsupportedLanguagePairError,
)
from service.engine.registry import ModelEntry, ModelRegistry
from service.engine.results import PLAIN_TEXT, CallContext, TextDelta, TextFormat, TextResult
from service.engine.service import ModelService, markup_plan
from service.runtime import GenerationOptions
from service.text.language import (
    UNDETERMINED,
    Detection,
    LangidDetector,
    LanguageDetector,
    NoKnownCandidateError,
    Verdict,
    base_language,
    prose,
)

AUTO = "auto"
T = TypeVar("T")
# The language a pair no model serves is translated through.
PIVOT = "en"


@dataclass(frozen=True)
class DetectedLanguage:
    """The detected source language of one text and the detector's confidence (0-1)."""

    language: str
    confidence: float


@dataclass(frozen=True)
class Translation:
    """One text's translation.

    ``source_lang``: the language it was translated from (``"und"`` for a text passed
    through untranslated); ``detected``: set when the source was detected; ``model``: the
    package that translated it (None when no model was needed; ``"a+b"`` when two
    packages did, through the pivot); ``alternatives``: the other num_return_sequences
    texts (plain text only); ``pivot``: the language it was translated through (None when
    translated directly). ``result`` is the last hop's.
    """

    text: str
    alternatives: list[str]
    source_lang: str
    detected: DetectedLanguage | None
    model: str | None
    result: TextResult
    pivot: str | None = None


@dataclass(frozen=True)
class _Hop:
    """One model translating ``source`` into ``target``."""

    source: str
    target: str
    service: ModelService


@dataclass(frozen=True)
class _Group:
    """The texts (by index) translated from one source language by one route: a direct
    hop, or two hops through the pivot."""

    source: str
    hops: tuple[_Hop, ...]
    indices: list[int]

    @property
    def pivot(self) -> str | None:
        """The language between the hops (None for a direct translation)."""
        return self.hops[0].target if len(self.hops) > 1 else None

    @property
    def model(self) -> str:
        """The hops' model names, ``+``-joined when they differ."""
        return "+".join(dict.fromkeys(h.service.name for h in self.hops))

    async def first_hops(
        self,
        texts: list[str],
        options: GenerationOptions,
        call: CallContext,
        text_format: TextFormat,
    ) -> list[str]:
        """The texts the last hop translates: the originals, or their pivot translations
        (one sequence each; a forced first token the request names is the last hop's)."""
        for hop in self.hops[:-1]:
            single = dataclasses.replace(
                options, num_return_sequences=None, forced_bos_token_id=None
            )
            results = await hop.service.translate(
                texts, hop.source, hop.target, single, call, text_format
            )
            texts = [r.text for r in results]
        return texts

    async def translate(
        self,
        texts: list[str],
        options: GenerationOptions,
        call: CallContext,
        text_format: TextFormat,
    ) -> list[TextResult]:
        """Every hop in turn; the last hop's results."""
        inputs = await self.first_hops(texts, options, call, text_format)
        last = self.hops[-1]
        return await last.service.translate(
            inputs, last.source, last.target, options, call, text_format
        )


@dataclass
class TranslationPlan:
    """Which model translates which text; errors that can be known up front are raised
    before a plan exists."""

    texts: list[str]
    target: str
    text_format: TextFormat
    groups: list[_Group]
    detected: list[DetectedLanguage | None]
    passthrough: list[int] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        """The names of the models the plan uses, in order of first use."""
        return list(dict.fromkeys(h.service.name for g in self.groups for h in g.hops))

    @property
    def pivot(self) -> str | None:
        """The pivot language when some text goes through it, else None."""
        return next((g.pivot for g in self.groups if g.pivot is not None), None)

    async def run(self, options: GenerationOptions, call: CallContext) -> list[Translation]:
        """Translate every text (all groups at once); the first failure cancels the rest."""
        results = await _all_or_none(
            g.translate([self.texts[i] for i in g.indices], options, call, self.text_format)
            for g in self.groups
        )
        out: list[Translation | None] = [None] * len(self.texts)
        for group, group_results in zip(self.groups, results, strict=True):
            for index, result in zip(group.indices, group_results, strict=True):
                out[index] = Translation(
                    result.text,
                    result.texts[1:],
                    group.source,
                    self.detected[index],
                    group.model,
                    result,
                    group.pivot,
                )
        for index in self.passthrough:
            out[index] = self._unchanged(index)
        return [t for t in out if t is not None]

    async def stream(
        self, options: GenerationOptions, call: CallContext
    ) -> AsyncGenerator[TextDelta, None]:
        """Prepare every group's stream (errors raise here), then the deltas: texts passed
        through first, then group after group (each text's pieces in order; ``index`` is
        the text's position in the request). Plain text only. A pivoted group's first hop
        runs to completion here (all such groups at once); its second hop streams."""
        firsts = await _all_or_none(
            g.first_hops([self.texts[i] for i in g.indices], options, call, PLAIN_TEXT)
            for g in self.groups
        )
        streams = []
        try:
            for g, texts in zip(self.groups, firsts, strict=True):
                last = g.hops[-1]
                deltas = await last.service.stream_translate(
                    texts, last.source, last.target, options, call
                )
                streams.append((g, deltas))
        except BaseException:
            for _, deltas in streams:
                await deltas.aclose()
            raise
        return self._deltas(streams)

    async def _deltas(
        self, streams: list[tuple[_Group, AsyncGenerator[TextDelta, None]]]
    ) -> AsyncGenerator[TextDelta, None]:
        try:
            for index in self.passthrough:
                unchanged = self._unchanged(index)
                yield TextDelta(index, unchanged.text, unchanged.result)
            for group, deltas in streams:
                async for delta in deltas:
                    yield TextDelta(
                        group.indices[delta.index], delta.text, delta.result, delta.input_tokens
                    )
        finally:
            for _, deltas in streams:
                await deltas.aclose()

    def _unchanged(self, index: int) -> Translation:
        text = self.texts[index]
        return Translation(
            text, [], UNDETERMINED, self.detected[index], None, TextResult([text], ["eos"], 0, 0)
        )


async def _all_or_none(work: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Await every coroutine at once; the first failure cancels the rest."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def match_language(code: str, available: Collection[str]) -> str | None:
    """The served language code for a client's ``code``: the same code ignoring case and
    ``_``/``-``, else its base language (``EN-US`` -> ``en``, ``pt-BR`` -> ``pt``), else
    None."""
    wanted = code.replace("_", "-").lower()
    by_norm = {a.replace("_", "-").lower(): a for a in available}
    if wanted in by_norm:
        return by_norm[wanted]
    return by_norm.get(base_language(code))


class Translator:
    """Translation over every served translation model (see the module docstring)."""

    def __init__(self, registry: ModelRegistry, detector: LanguageDetector | None = None) -> None:
        self.registry = registry
        self.detector: LanguageDetector = detector or LangidDetector()

    def _entries(self) -> list[ModelEntry]:
        return [
            e
            for e in self.registry.entries.values()
            if e.task == "translation" and e.manifest is not None and e.state != "failed"
        ]

    def _codes(self) -> set[str]:
        """Every language code a served translation model names (as it spells it)."""
        codes: set[str] = set()
        for entry in self._entries():
            assert entry.manifest is not None
            codes.update(entry.manifest.languages.source)
            codes.update(entry.manifest.languages.target)
        return codes

    def languages(self) -> dict[str, list[str]]:
        """Source language -> the target languages it can be translated into: by a model
        directly, or through the pivot (source -> en by one model, en -> target by one)."""
        return _reachable(self._entries())

    def sources_into(self, target: str, model: str | None = None) -> list[str]:
        """The languages some model (or the named one, alone) translates into ``target``,
        directly or through the pivot."""
        entries = self._entries()
        if model is not None:
            self.registry.for_task("translation", model)  # typed errors for a bad name
            entries = [self.registry.entries[model]]
        return sorted(s for s, targets in _reachable(entries).items() if target in targets)

    def route(self, source: str, target: str, model: str | None = None) -> tuple[_Hop, ...]:
        """The hops that translate ``source`` into ``target``: one model serving the pair
        (``registry.for_pair``), else two through the pivot (UnsupportedLanguagePairError
        for the direct pair when neither exists)."""
        try:
            return (_Hop(source, target, self.registry.for_pair(source, target, model)),)
        except UnsupportedLanguagePairError as direct:
            if PIVOT in (source, target) or source == target:
                raise
            try:
                first = self.registry.for_pair(source, PIVOT, model)
                second = self.registry.for_pair(PIVOT, target, model)
            except UnsupportedLanguagePairError:
                raise direct from None
            return (_Hop(source, PIVOT, first), _Hop(PIVOT, target, second))

    def _check_room(self, sources: Sequence[str], target: str, model: str | None) -> None:
        """Refuse at once (QueueFullError, counted once) when no route that could
        translate the request has room in every hop: detection, tokenization and a
        pivot's first hop are work a refused request should not wait for."""
        routes = []
        for source in sources:
            try:
                routes.append(self.route(source, target, model))
            except EngineError:
                continue  # loading, failed or no route: the plan reports it
        if not routes or any(all(h.service.engine.has_room() for h in r) for r in routes):
            return
        for hop in routes[0]:
            hop.service.engine.check_room()

    async def detect(
        self, texts: Sequence[str], candidates: Collection[str] | None = None
    ) -> list[Detection]:
        """Detect each text's language among ``candidates`` (default: every language a
        served model translates from), in a worker thread."""
        pool = list(candidates) if candidates is not None else list(self.languages())
        if not pool:
            raise LanguageNotDetectedError("no translation model is served")
        try:
            return await asyncio.to_thread(self.detector.detect, list(texts), pool)
        except NoKnownCandidateError as exc:
            raise LanguageNotDetectedError(
                f"cannot detect the served source languages {sorted(pool)}; give the source"
            ) from exc

    async def plan(
        self,
        texts: Sequence[str],
        source: str | None,
        target: str,
        model: str | None = None,
        text_format: TextFormat = PLAIN_TEXT,
    ) -> TranslationPlan:
        """Choose the model of every text (detecting the source when it is None or
        ``"auto"``); raises the typed lookup and detection errors. Language codes match
        the served ones ignoring case and ``_``/``-`` (``EN`` is ``en``), else by their
        base language (``en-US`` is ``en``: :func:`match_language`)."""
        items = list(texts)
        served = self._codes()
        target = match_language(target, served) or target
        if source is not None and source.lower() != AUTO:
            source = match_language(source, served) or source
            hops = self.route(source, target, model)
            if len(hops) > 1:  # the first hop's place is held by its call; not the second's
                self._check_room([source], target, model)
            group = _Group(source, hops, list(range(len(items))))
            return TranslationPlan(items, target, text_format, [group], [None] * len(items))
        candidates = self.sources_into(target, model)
        if not candidates:
            pairs = sorted({p for e in self._entries() for p in e.pairs()})
            where = f"model {model!r}" if model is not None else "no model"
            verb = "does not translate" if model is not None else "translates"
            raise UnsupportedLanguagePairError(f"{where} {verb} into {target}", pairs)
        self._check_room(candidates, target, model)
        probes = await asyncio.to_thread(_probes, items, text_format)
        wanted = [i for i, probe in enumerate(probes) if _has_letters(probe)]
        detections = await self.detect([probes[i] for i in wanted], candidates)
        detected: list[DetectedLanguage | None] = [
            DetectedLanguage(UNDETERMINED, 0.0) for _ in items
        ]
        by_language: dict[str, list[int]] = {}
        for index, found in zip(wanted, detections, strict=True):
            if found.verdict is Verdict.UNSUPPORTED:
                raise DetectedLanguageUnsupportedError(
                    f"text {index} is in {found.language!r}, which is not supported as a "
                    f"source language into {target!r} (supported: {', '.join(candidates)})",
                    found.language,
                    candidates,
                )
            if found.verdict is Verdict.UNDETERMINED:
                raise LanguageNotDetectedError(
                    f"the language of text {index} could not be detected; give the source"
                )
            detected[index] = DetectedLanguage(found.language, found.confidence)
            by_language.setdefault(found.language, []).append(index)
        groups = [
            _Group(language, self.route(language, target, model), indices)
            for language, indices in by_language.items()
        ]
        passthrough = sorted(set(range(len(items))) - set(wanted))
        return TranslationPlan(items, target, text_format, groups, detected, passthrough)


def _reachable(entries: Iterable[ModelEntry]) -> dict[str, list[str]]:
    """Source -> targets the entries translate it into, directly or through the pivot."""
    direct: dict[str, set[str]] = {}
    for entry in entries:
        if entry.manifest is None or entry.task != "translation":
            continue
        for source, target in entry.manifest.languages.directions():
            direct.setdefault(source, set()).add(target)
    reachable = {source: set(targets) for source, targets in direct.items()}
    for source, targets in direct.items():
        if source != PIVOT and PIVOT in targets:
            reachable[source].update(t for t in direct.get(PIVOT, ()) if t != source)
    return {s: sorted(t) for s, t in sorted(reachable.items())}


def _has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def _probes(texts: Sequence[str], text_format: TextFormat) -> list[str]:
    """The text a detector sees: markup's text nodes, not its tags and attributes, and
    neither URLs nor e-mail addresses (no language; "https://example.com" alone read as
    Serbian). A text whose probe has no letter left is passed through unchanged."""
    if not text_format.is_markup:
        return [prose(t) for t in texts]
    return [prose("\n".join(markup_plan(t, text_format).texts)) for t in texts]
