"""Route plumbing around a model call: request limits, the call context, disconnects."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from starlette.requests import Request

from service.api.errors import ClientDisconnectedError, request_id_of, too_large
from service.api.schemas import Options
from service.engine import CallContext, ModelService, TranslationPlan
from service.settings import Settings

T = TypeVar("T")


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


def call_context(request: Request, model: ModelService, timeout_ms: int | None) -> CallContext:
    """The call context of this HTTP request: its deadline counts from now, before any
    tokenization (and the model label for metrics and logs)."""
    request.state.model = model.name
    return start_call(request, timeout_ms)


def start_call(request: Request, timeout_ms: int | None) -> CallContext:
    """The call context of a request whose model is chosen later (source detection runs
    first, and counts against the deadline)."""
    tenant = getattr(request.state, "tenant", "")
    return CallContext.starting_now(timeout_ms, request_id_of(request) or "", tenant)


def label_models(request: Request, plan: TranslationPlan) -> str:
    """Record the plan's (first) model for metrics and logs, and return its name."""
    name = plan.models[0] if plan.models else ""
    request.state.model = name
    return name


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
