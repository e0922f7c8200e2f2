"""Render a chat history into one encoder input, following the checkpoint's conventions.

Encoder-decoder chat models (BlenderBot) read the conversation as one string: the turns
joined by the package's ``turn_separator`` (BlenderBot: two spaces), user turns prefixed
with a space as BlenderBot's own chat template does, keeping only the last
``max_history_turns`` turns. System messages have no slot in these models; their text
is kept as a leading turn so that it is never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: Role
    content: str


@dataclass(frozen=True)
class ChatConventions:
    """How one model family expects the history to look."""

    turn_separator: str = "\n"
    max_history_turns: int = 8
    user_prefix: str = ""

    @classmethod
    def for_package(
        cls, family: str, turn_separator: str, max_history_turns: int
    ) -> ChatConventions:
        """Conventions of a package (``family`` picks the family-specific user prefix)."""
        prefix = " " if family.lower().startswith("blenderbot") else ""
        return cls(turn_separator, max_history_turns, prefix)


def _turn(message: Message, conventions: ChatConventions) -> str:
    text = message.content.strip()
    return conventions.user_prefix + text if message.role == "user" else text


def render(
    messages: Sequence[Message], conventions: ChatConventions, max_turns: int | None = None
) -> str:
    """The encoder input for ``messages``, keeping at most ``max_turns`` recent turns."""
    limit = conventions.max_history_turns if max_turns is None else max_turns
    system = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    kept = turns[-limit:] if limit > 0 else []
    return conventions.turn_separator.join(_turn(m, conventions) for m in [*system, *kept])


def renderings(messages: Sequence[Message], conventions: ChatConventions) -> Iterator[str]:
    """Renderings with ever shorter history (down to the last turn), longest first.

    The caller takes the first one that fits the model's maximum source length.
    """
    turns = sum(1 for m in messages if m.role != "system")
    start = min(turns, conventions.max_history_turns)
    for keep in range(start, 0, -1):
        yield render(messages, conventions, keep)
