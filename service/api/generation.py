"""Shared route plumbing: options, encoding, running many generations, streaming, disconnects.

Tokenization runs in a worker thread (long documents must not stall the event loop); the
generations of one HTTP request are submitted together so the engine batches them; if one
fails, its siblings are cancelled; if the client disconnects, all of them are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request

from service.api.errors import ApiError, ClientDisconnectedError, too_large
from service.api.registry import ModelEntry
from service.api.schemas import Options
from service.engine import Engine, GenerationRequest, GenerationResult
from service.runtime.errors import RuntimeInputError
from service.runtime.options import GenerationOptions
from service.settings import Settings

T = TypeVar("T")


def make_options(fields: dict[str, Any]) -> GenerationOptions:
    """Runtime GenerationOptions from a dict of set fields."""
    return GenerationOptions(**fields)


def check_limits(settings: Settings, texts: Sequence[str], options: Options) -> None:
    """413 when a request exceeds the configured text count, text size or token cap."""
    if len(texts) > settings.max_texts:
        raise too_large(
            f"{len(texts)} texts; at most {settings.max_texts} per request",
            limit=settings.max_texts,
        )
    longest = max((len(t) for t in texts), default=0)
    if longest > settings.max_chars:
        raise too_large(
            f"a text has {longest} characters; at most {settings.max_chars}",
            limit=settings.max_chars,
        )
    if options.max_new_tokens is not None and options.max_new_tokens > settings.max_new_tokens_cap:
        raise too_large(
            f"max_new_tokens {options.max_new_tokens} is over the cap "
            f"{settings.max_new_tokens_cap}",
            limit=settings.max_new_tokens_cap,
        )


@dataclass
class Prepared:
    """Encoded inputs with resolved options, ready for the engine."""

    entry: ModelEntry
    ids: list[list[int]]
    options: Any
    deadline: float | None
    request_id: str

    @property
    def engine(self) -> Engine:
        """The model's engine."""
        assert self.entry.engine is not None
        return self.entry.engine

    def requests(self) -> list[GenerationRequest]:
        """One engine request per input."""
        return [
            GenerationRequest(ids, self.options, self.deadline, self.request_id) for ids in self.ids
        ]


def _input_error(entry: ModelEntry, exc: RuntimeInputError) -> ApiError:
    message = str(exc)
    limit = getattr(getattr(entry.manifest, "model", None), "max_source_positions", None)
    lowered = message.lower()
    if "at most" in lowered or "too long" in lowered:
        return too_large(message, limit_tokens=limit)
    return ApiError(422, "invalid_request", message)


async def encode(
    entry: ModelEntry,
    texts: list[str],
    source_lang: str | None = None,
    target_lang: str | None = None,
) -> list[list[int]]:
    """Token ids of ``texts`` (413 naming the limit if one is too long, 422 if invalid)."""
    try:
        ids = await asyncio.to_thread(
            entry.runtime.encode_texts, texts, source_lang=source_lang, target_lang=target_lang
        )
    except RuntimeInputError as exc:
        raise _input_error(entry, exc) from None
    return [list(x) for x in ids]


def resolve(entry: ModelEntry, fields: dict[str, Any], target_lang: str | None = None) -> Any:
    """Resolved runtime options (422 for an invalid combination)."""
    try:
        return entry.runtime.resolve(make_options(fields), target_lang=target_lang)
    except (RuntimeInputError, TypeError) as exc:
        raise ApiError(422, "invalid_options", str(exc)) from None


async def prepare(
    request: Request,
    entry: ModelEntry,
    texts: list[str],
    options: Options,
    fields: dict[str, Any] | None = None,
    source_lang: str | None = None,
    target_lang: str | None = None,
) -> Prepared:
    """Encode and resolve everything one HTTP request needs."""
    request.state.model = entry.name
    resolved = resolve(
        entry, options.generation_fields() if fields is None else fields, target_lang
    )
    ids = await encode(entry, texts, source_lang, target_lang)
    return Prepared(
        entry,
        ids,
        resolved,
        GenerationRequest.deadline_in(options.timeout_ms),
        getattr(request.state, "request_id", ""),
    )


async def run_all(prepared: Prepared) -> list[GenerationResult]:
    """Submit every input at once; if one fails, cancel the rest and raise its error."""
    engine = prepared.engine
    tasks = [asyncio.ensure_future(engine.submit(r)) for r in prepared.requests()]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _disconnected(request: Request) -> None:
    # The body has been read, so the next ASGI message is the disconnect.
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def until_done_or_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise 499."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # Our own task was cancelled (server shutdown, or an in-process client gave up).
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise ClientDisconnectedError()
    return task.result()


async def complete(request: Request, prepared: Prepared) -> list[GenerationResult]:
    """Run every prepared input to the end, in input order; cancelled if the client leaves."""
    return await until_done_or_disconnect(request, run_all(prepared))


def new_detokenizer(runtime: Any) -> Any:
    """A streaming detokenizer for ``runtime`` (push(id) -> text, flush() -> text)."""
    factory = getattr(runtime, "new_detokenizer", None)
    if callable(factory):
        return factory()
    from service.runtime.detokenize import IncrementalDetokenizer

    return IncrementalDetokenizer(runtime.tokenizer)


@dataclass
class Piece:
    """A streamed piece of output ``index``: new text, and the result once it is finished."""

    index: int
    text: str
    result: GenerationResult | None = None


async def stream_in_order(prepared: Prepared) -> AsyncGenerator[Piece, None]:
    """Stream every input's text, all generated concurrently, delivered in input order.

    Later inputs are buffered while earlier ones are still streaming. Closing the iterator
    cancels whatever is still running.
    """
    queues: list[asyncio.Queue[Piece | BaseException]] = [asyncio.Queue() for _ in prepared.ids]

    async def pump(index: int, request: GenerationRequest) -> None:
        detok = new_detokenizer(prepared.entry.runtime)
        try:
            async for chunk in prepared.engine.stream(request):
                text = "".join(detok.push(t) for t in chunk.token_ids)
                if chunk.result is not None:
                    text += detok.flush()
                if text or chunk.result is not None:
                    queues[index].put_nowait(Piece(index, text, chunk.result))
        except Exception as exc:
            queues[index].put_nowait(exc)

    tasks = [asyncio.ensure_future(pump(i, r)) for i, r in enumerate(prepared.requests())]
    try:
        for queue in queues:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.result is not None:
                    break
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def decode(entry: ModelEntry, sequence: Sequence[int]) -> str:
    """Text of one generated sequence."""
    return str(entry.runtime.decode(list(sequence)))


def finish_reason(prepared: Prepared, sequence: Sequence[int]) -> str:
    """ "length" when the sequence used the whole token budget, else "stop"."""
    budget = getattr(prepared.options, "max_new_tokens", None)
    return "length" if budget is not None and len(sequence) >= budget else "stop"
