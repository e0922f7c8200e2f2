"""Turn a chat history into encoder input ids for one model package."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from service.api.errors import too_large
from service.api.registry import ModelEntry
from service.runtime.errors import RuntimeInputError
from service.text.chat import ChatConventions, Message, renderings


def conventions(entry: ModelEntry) -> ChatConventions:
    """The chat conventions of a chat package."""
    chat = entry.manifest.chat
    return ChatConventions.for_package(
        str(entry.manifest.family), chat.turn_separator, chat.max_history_turns
    )


def _encode_longest_fitting(entry: ModelEntry, messages: Sequence[Message]) -> list[int]:
    if entry.task != "chat" or entry.manifest.chat is None:
        # Non-chat models answer the last user message on its own.
        last = next(m for m in reversed(messages) if m.role == "user")
        candidates = [last.content]
    else:
        candidates = list(renderings(messages, conventions(entry)))
    error: RuntimeInputError | None = None
    for text in candidates:
        try:
            return list(entry.runtime.encode_texts([text])[0])
        except RuntimeInputError as exc:
            # Too long: drop the oldest turn and try again.
            error = exc
    limit = getattr(entry.manifest.model, "max_source_positions", None)
    raise too_large(
        f"the last message alone is too long for the model: {error}", limit_tokens=limit
    )


async def encode_chat(entry: ModelEntry, messages: Sequence[Message]) -> list[int]:
    """Ids of the longest recent history that fits the model (413 if even one turn is too long)."""
    return await asyncio.to_thread(_encode_longest_fitting, entry, messages)
