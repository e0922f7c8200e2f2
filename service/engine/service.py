"""The one face of a served model: texts (or chat messages) in, texts or deltas out.

Routes talk to a :class:`ModelService` only. It runs tokenization, sentence splitting and
final decoding in a worker thread (never on the event loop), submits one engine request
per input so the scheduler batches them, cancels the siblings of a failed input, and
streams text deltas detokenized on the engine's worker thread, in input order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import ParamSpec, TypeVar

from service.engine.admission import WorkGroup, cost_of
from service.engine.engine import Engine
from service.engine.errors import MarkupTooDeepError, invalid_request
from service.engine.ports import Runtime
from service.engine.requests import GenerationRequest, GenerationResult
from service.engine.results import PLAIN_TEXT, CallContext, TextDelta, TextFormat, TextResult
from service.runtime import (
    GenerationOptions,
    InputTooLongError,
    Manifest,
    ResolvedOptions,
    RuntimeInfo,
    RuntimeInputError,
)
from service.text import chunks, markup, sentences
from service.text.chat import ChatConventions, Message, renderings

_WARMUP_DEADLINE_MS = 600_000  # a cold model on a busy machine may be slow the first time

P = ParamSpec("P")
T = TypeVar("T")


async def _off_loop(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` in a worker thread; runtime input errors become engine errors."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except RuntimeInputError as exc:
        raise invalid_request(exc) from None


def _nth(result: TextResult, k: int) -> str:
    """The k-th alternative of a sentence (its best one when it has fewer)."""
    return result.texts[k] if k < len(result.texts) else result.text


def _joined(
    segmented: Sequence[sentences.Segmented], results: Sequence[TextResult], count: int
) -> list[TextResult]:
    """Per text, its parts' results joined between its gaps (each of the ``count``
    sequences of every part joined with the same sequence of the others)."""
    out: list[TextResult] = []
    start = 0
    for seg in segmented:
        parts = list(results[start : start + len(seg.sentences)])
        start += len(seg.sentences)
        joined = [
            sentences.join(seg, [_nth(p, k) for p in parts]) for k in range(count if parts else 1)
        ]
        out.append(TextResult.combine(joined, parts))
    return out


def _whole(text: str) -> sentences.Segmented:
    """``text`` as one sentence, its outer whitespace kept (split_sentences off)."""
    core = text.strip()
    if not core:
        return sentences.Segmented([], [text])
    start = text.index(core)
    return sentences.Segmented([core], [text[:start], text[start + len(core) :]])


def markup_plan(document: str, text_format: TextFormat) -> markup.Plan:
    """The texts of an HTML/XML ``document`` and how to rebuild it (MarkupTooDeepError
    when it nests inline elements too deeply)."""
    try:
        return markup.extract(
            document,
            ignore_tags=text_format.ignore_tags,
            inline_tags=text_format.inline_tags,
            xml=text_format.kind == "xml",
        )
    except markup.NestingTooDeepError as exc:
        raise MarkupTooDeepError(str(exc), exc.limit) from None


def _nonblank(texts: Sequence[str]) -> int:
    """Texts with something to translate: each is at least one sentence."""
    return sum(1 for t in texts if t.strip())


def _plans(documents: Sequence[str], text_format: TextFormat) -> list[markup.Plan]:
    return [markup_plan(d, text_format) for d in documents]


@dataclass(frozen=True)
class _Prepared:
    """Encoded inputs with their resolved options."""

    ids: list[list[int]]
    options: ResolvedOptions


@dataclass
class _Piece:
    """Streamed text of input ``index``; ``result`` on its last piece."""

    index: int
    text: str
    result: GenerationResult | None = None


# The first item of a stream's pieces: the request is admitted (see _admitted_stream).
_ADMITTED = _Piece(-1, "")


class ModelService:
    """Translation, summarization and chat on one model package."""

    def __init__(self, name: str, runtime: Runtime, engine: Engine) -> None:
        self.name = name
        self.runtime = runtime
        self.engine = engine

    @property
    def manifest(self) -> Manifest:
        """The package's manifest."""
        return self.runtime.manifest

    @property
    def info(self) -> RuntimeInfo:
        """Precision and provider in use."""
        return self.runtime.info

    async def start(self) -> None:
        """Start the engine's worker."""
        await self.engine.start()

    async def stop(self, drain_timeout_s: float) -> None:
        """Let accepted work finish for up to ``drain_timeout_s``, then stop."""
        await self.engine.stop(drain_timeout_s)

    async def warm_up(self) -> None:
        """One short generation so the first real request pays no lazy-initialisation cost."""
        languages = self.manifest.languages
        directions = languages.directions()
        source, target = (
            directions[0]
            if directions
            else (
                languages.source[0] if languages.source else None,
                languages.target[0] if languages.target else None,
            )
        )
        call = CallContext.starting_now(_WARMUP_DEADLINE_MS)
        prepared = await _off_loop(
            self._prepare, ["Hello."], GenerationOptions(max_new_tokens=2), source, target
        )
        await self._run_all(prepared, call)

    # ---- translation -----------------------------------------------------------------
    async def translate(
        self,
        texts: Sequence[str],
        source_lang: str,
        target_lang: str,
        options: GenerationOptions,
        call: CallContext,
        text_format: TextFormat = PLAIN_TEXT,
    ) -> list[TextResult]:
        """Translate every text: split into sentences, translate them in one batch, re-join
        each text with its original spacing and paragraph breaks.

        With num_return_sequences n > 1 each result has n texts: the k-th joins every
        sentence's k-th sequence. HTML/XML (``text_format``): the text nodes of every
        document go into the same batch and the markup is rebuilt around their
        translations (one text per result; alternatives are not built for markup).
        """
        if text_format.is_markup:
            self.engine.check_room()  # the text nodes' translate() holds the place
            return await self._translate_markup(
                texts, source_lang, target_lang, options, call, text_format
            )
        with self._place(_nonblank(texts), options, call, target_lang):
            segmented, prepared = await _off_loop(
                self._prepare_sentences,
                texts,
                source_lang,
                target_lang,
                options,
                text_format.split_sentences,
            )
        results = await self._texts_of(await self._run_all(prepared, call))
        return _joined(segmented, results, prepared.options.num_return_sequences)

    async def _translate_markup(
        self,
        documents: Sequence[str],
        source_lang: str,
        target_lang: str,
        options: GenerationOptions,
        call: CallContext,
        text_format: TextFormat,
    ) -> list[TextResult]:
        plans = await asyncio.to_thread(_plans, documents, text_format)
        flat = [t for plan in plans for t in plan.texts]
        plain = replace(text_format, kind="text")
        parts = (
            await self.translate(flat, source_lang, target_lang, options, call, plain)
            if flat
            else []
        )

        def rebuild() -> list[TextResult]:
            out: list[TextResult] = []
            start = 0
            for plan in plans:
                mine = parts[start : start + len(plan.texts)]
                start += len(plan.texts)
                out.append(TextResult.combine(plan.rebuild([p.text for p in mine]), mine))
            return out

        return await asyncio.to_thread(rebuild)

    async def stream_translate(
        self,
        texts: Sequence[str],
        source_lang: str,
        target_lang: str,
        options: GenerationOptions,
        call: CallContext,
    ) -> AsyncGenerator[TextDelta, None]:
        """Prepare (errors raise here, before any delta), then the deltas of every text's
        translation: texts one after another, the original spacing included; the last
        delta of a text carries its result."""
        with self._place(_nonblank(texts), options, call, target_lang):
            segmented, prepared = await _off_loop(
                self._prepare_sentences, texts, source_lang, target_lang, options
            )
        pieces = await self._admitted_stream(prepared, call)
        return self._joined_deltas(segmented, pieces)

    async def _joined_deltas(
        self, segmented: list[sentences.Segmented], pieces: AsyncGenerator[_Piece, None]
    ) -> AsyncGenerator[TextDelta, None]:
        """The deltas of texts cut into parts (sentences, chunks): each part's pieces as
        they come, the gaps between parts, and on a text's last part its joined result."""
        owner = [i for i, seg in enumerate(segmented) for _ in seg.sentences]
        position = [k for seg in segmented for k in range(len(seg.sentences))]
        done: list[list[TextResult]] = [[] for _ in segmented]
        current = [""] * len(owner)
        started: set[int] = set()
        async for piece in pieces:
            text_index = owner[piece.index]
            seg = segmented[text_index]
            k = position[piece.index]
            if piece.index not in started:
                started.add(piece.index)
                if k == 0 and seg.gaps[0]:
                    yield TextDelta(text_index, seg.gaps[0])
            if piece.text:
                current[piece.index] += piece.text
                yield TextDelta(text_index, piece.text)
            if piece.result is not None:
                done[text_index].append(self._streamed(current[piece.index], piece.result))
                gap = seg.gaps[k + 1]
                last = k + 1 == len(seg.sentences)
                result = None
                if last:
                    joined = sentences.join(seg, [r.text for r in done[text_index]])
                    result = TextResult.combine(joined, done[text_index])
                if gap or result is not None:
                    yield TextDelta(text_index, gap, result)

    def _prepare_sentences(
        self,
        texts: Sequence[str],
        source_lang: str,
        target_lang: str,
        options: GenerationOptions,
        split: bool = True,
    ) -> tuple[list[sentences.Segmented], _Prepared]:
        segmented = [sentences.split(t, source_lang) if split else _whole(t) for t in texts]
        flat = [s for seg in segmented for s in seg.sentences]
        return segmented, self._prepare(flat, options, source_lang, target_lang)

    # ---- summarization ---------------------------------------------------------------
    async def summarize(
        self, texts: Sequence[str], options: GenerationOptions, call: CallContext
    ) -> list[TextResult]:
        """Summarize every text. A text longer than the model's window is summarized in
        chunks (``service.text.chunks``: whole turns where they fit) and its summary is
        the chunk summaries in order, joined by spaces; nothing is truncated."""
        with self._place(len(texts), options, call):
            segmented, prepared = await _off_loop(self._prepare_summaries, texts, options)
        results = await self._texts_of(await self._run_all(prepared, call))
        return _joined(segmented, results, prepared.options.num_return_sequences)

    async def stream_summarize(
        self, texts: Sequence[str], options: GenerationOptions, call: CallContext
    ) -> AsyncGenerator[TextDelta, None]:
        """Prepare (errors raise here), then the deltas of every summary, texts one after
        another."""
        with self._place(len(texts), options, call):
            segmented, prepared = await _off_loop(self._prepare_summaries, texts, options)
        pieces = await self._admitted_stream(prepared, call)
        return self._joined_deltas(segmented, pieces)

    def _prepare_summaries(
        self, texts: Sequence[str], options: GenerationOptions
    ) -> tuple[list[sentences.Segmented], _Prepared]:
        """Each text as one input, or as its chunks when it is longer than the model's
        window; joined with a space between chunk summaries."""
        try:
            prepared = self._prepare(texts, options)  # one tokenization when all fit
            return [sentences.Segmented([t], ["", ""]) for t in texts], prepared
        except InputTooLongError as exc:
            limit = exc.limit_tokens
        lengths = self.runtime.token_counts(texts)
        segmented = []
        for text, length in zip(texts, lengths, strict=True):
            parts = (
                [text] if length <= limit else chunks.split(text, self.runtime.token_counts, limit)
            )
            segmented.append(sentences.Segmented(parts, ["", *[" "] * (len(parts) - 1), ""]))
        flat = [part for seg in segmented for part in seg.sentences]
        return segmented, self._prepare(flat, options)

    # ---- chat ------------------------------------------------------------------------
    async def chat(
        self, messages: Sequence[Message], options: GenerationOptions, call: CallContext
    ) -> TextResult:
        """One reply to the conversation (all num_return_sequences of it)."""
        with self._place(1, options, call):
            prepared = await _off_loop(self._prepare_chat, messages, options)
        (result,) = await self._texts_of(await self._run_all(prepared, call))
        return result

    async def stream_chat(
        self, messages: Sequence[Message], options: GenerationOptions, call: CallContext
    ) -> AsyncGenerator[TextDelta, None]:
        """Prepare (errors raise here), then the deltas of the reply; the last one carries
        the result."""
        with self._place(1, options, call):
            prepared = await _off_loop(self._prepare_chat, messages, options)
        return self._stream_texts(prepared, await self._admitted_stream(prepared, call))

    def conventions(self) -> ChatConventions:
        """The chat conventions of this package (plain defaults when it is no chat model)."""
        chat = self.manifest.chat
        if chat is None:
            return ChatConventions()
        return ChatConventions.for_package(
            self.manifest.family, chat.turn_separator, chat.max_history_turns
        )

    def _prepare_chat(self, messages: Sequence[Message], options: GenerationOptions) -> _Prepared:
        """Options, then the ids of the longest recent history that fits the model."""
        resolved = self.runtime.resolve(options)
        if self.manifest.task != "chat" or self.manifest.chat is None:
            # Non-chat models answer the last user message on its own.
            last = next(m for m in reversed(messages) if m.role == "user")
            candidates = [last.content]
        else:
            candidates = list(renderings(messages, self.conventions()))
        error: InputTooLongError | None = None
        for text in candidates:
            try:
                return _Prepared([list(self.runtime.encode_texts([text])[0])], resolved)
            except InputTooLongError as exc:
                error = exc  # too long: drop the oldest turn and try again
        assert error is not None  # renderings yields at least the last turn
        raise InputTooLongError(
            f"the last message alone is too long for the model: {error}",
            limit_tokens=error.limit_tokens,
        )

    # ---- shared ----------------------------------------------------------------------
    def _prepare(
        self,
        texts: Sequence[str],
        options: GenerationOptions,
        source_lang: str | None = None,
        target_lang: str | None = None,
    ) -> _Prepared:
        """Resolve the options, then encode (worker thread; typed runtime errors)."""
        resolved = self.runtime.resolve(options, target_lang=target_lang)
        if not texts:  # e.g. only blank texts: nothing to encode (tokenizers refuse [])
            return _Prepared([], resolved)
        ids = self.runtime.encode_texts(texts, source_lang=source_lang, target_lang=target_lang)
        return _Prepared([list(x) for x in ids], resolved)

    @contextlib.contextmanager
    def _place(
        self,
        inputs: int,
        options: GenerationOptions,
        call: CallContext,
        target_lang: str | None = None,
    ) -> Iterator[None]:
        """Hold the request's place in the queue while its text work (sentence splitting,
        tokenization) runs: admitted now as one request costing a lower bound of its
        work (``inputs`` inputs of one token each), so that a full queue refuses it at
        once (429, or 413 when even the bound is too costly), before any text work, and
        requests doing their text work count against ``max_queue``. The caller reserves
        the real cost right after the block, with no await in between, so no other
        request can take the place meanwhile."""
        try:
            resolved = self.runtime.resolve(options, target_lang=target_lang)
        except RuntimeInputError as exc:
            raise invalid_request(exc) from None
        hold = WorkGroup(
            cost_of(resolved, [1] * inputs), tenant=call.tenant, deadline=call.deadline
        )
        self.engine.reserve(hold)
        try:
            yield
        finally:
            self.engine.release(hold)

    def _group(self, prepared: _Prepared, call: CallContext) -> WorkGroup:
        """The admission unit of one client request: all its inputs, their cost."""
        return WorkGroup(
            cost_of(prepared.options, (len(ids) for ids in prepared.ids)),
            tenant=call.tenant,
            deadline=call.deadline,
        )

    def _requests(
        self, prepared: _Prepared, call: CallContext, stream: bool, group: WorkGroup
    ) -> list[GenerationRequest]:
        return [
            GenerationRequest(
                ids,
                prepared.options,
                call.deadline,
                call.request_id,
                self.runtime.new_detokenizer() if stream else None,
                group,
            )
            for ids in prepared.ids
        ]

    async def _run_all(self, prepared: _Prepared, call: CallContext) -> list[GenerationResult]:
        """Admit the request as a whole, submit every input at once; if one fails, cancel
        the rest and raise its error."""
        if not prepared.ids:
            return []
        group = self._group(prepared, call)
        self.engine.reserve(group)
        requests = self._requests(prepared, call, stream=False, group=group)
        tasks = [asyncio.ensure_future(self.engine.submit(r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except Exception:
            group.abandoned = True  # one input failed: cancelling the rest is ours
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.engine.release(group)

    async def _texts_of(self, results: list[GenerationResult]) -> list[TextResult]:
        """Decode every result in a worker thread."""

        def decode_all() -> list[TextResult]:
            return [
                TextResult(
                    [self.runtime.decode(seq) for seq in r.sequences],
                    list(r.finish_reasons),
                    r.input_tokens,
                    r.generated_tokens,
                )
                for r in results
            ]

        return await asyncio.to_thread(decode_all)

    @staticmethod
    def _streamed(text: str, result: GenerationResult) -> TextResult:
        return TextResult(
            [text], list(result.finish_reasons), result.input_tokens, result.generated_tokens
        )

    async def _stream_texts(
        self, prepared: _Prepared, pieces: AsyncGenerator[_Piece, None]
    ) -> AsyncGenerator[TextDelta, None]:
        texts = [""] * len(prepared.ids)
        async for piece in pieces:
            texts[piece.index] += piece.text
            result = (
                None if piece.result is None else self._streamed(texts[piece.index], piece.result)
            )
            if piece.text or result is not None:
                yield TextDelta(piece.index, piece.text, result, len(prepared.ids[piece.index]))

    async def _admitted_stream(
        self, prepared: _Prepared, call: CallContext
    ) -> AsyncGenerator[_Piece, None]:
        """Admit the request and queue its generations now, so that a refusal (429 queue
        full, 413, 503) raises here, before the caller starts a response; then its pieces.

        The returned generator has already started and owns the reservation: it is
        released when the generator ends, is closed, or is dropped unread (asyncio closes
        a started async generator that is garbage-collected).
        """
        pieces = self._stream_in_order(prepared, call)
        admitted = await anext(pieces)
        assert admitted is _ADMITTED
        return pieces

    async def _stream_in_order(
        self, prepared: _Prepared, call: CallContext
    ) -> AsyncGenerator[_Piece, None]:
        """``_ADMITTED`` once the request is admitted (reserved) and its generations are
        queued, then every input's text, all generated concurrently, delivered in input
        order.

        Later inputs are buffered while earlier ones are still streaming. Closing the
        iterator cancels whatever is still running.
        """
        if not prepared.ids:
            yield _ADMITTED
            return
        group = self._group(prepared, call)
        self.engine.reserve(group)
        requests = self._requests(prepared, call, stream=True, group=group)
        queues: list[asyncio.Queue[_Piece | Exception]] = [asyncio.Queue() for _ in requests]

        async def pump(index: int, request: GenerationRequest) -> None:
            try:
                async for chunk in self.engine.stream(request):
                    if chunk.text or chunk.result is not None:
                        queues[index].put_nowait(_Piece(index, chunk.text, chunk.result))
            except Exception as exc:
                queues[index].put_nowait(exc)

        tasks = [asyncio.ensure_future(pump(i, r)) for i, r in enumerate(requests)]
        try:
            yield _ADMITTED
            for queue in queues:
                while True:
                    item = await queue.get()
                    if isinstance(item, Exception):
                        raise item
                    yield item
                    if item.result is not None:
                        break
        except Exception:
            group.abandoned = True
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.engine.release(group)
