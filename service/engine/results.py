"""What the model service hands back: whole texts, or text deltas of a stream."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from service.runtime import FinishReason

FormatKind = Literal["text", "html", "xml"]


@dataclass(frozen=True)
class CallContext:
    """Per-call settings that are not generation options.

    ``deadline``: absolute ``time.monotonic()`` time by which every generation of the call
    must be done, counted from the call's start (None: the engine's default timeout).
    """

    deadline: float | None = None
    request_id: str = ""  # for logs only
    # Who asks (an API key's id, "" without keys): the scheduler lets tenants take turns.
    tenant: str = ""

    @classmethod
    def starting_now(
        cls, timeout_ms: float | None, request_id: str = "", tenant: str = ""
    ) -> CallContext:
        """A call whose deadline is ``timeout_ms`` from now (None: the engine's default)."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000.0
        return cls(deadline, request_id, tenant)


@dataclass(frozen=True)
class TextFormat:
    """How a translation input is read.

    ``kind``: ``"text"`` (plain text; line breaks, paragraphs and spacing kept), ``"html"``
    or ``"xml"`` (markup: only text nodes are translated, every tag, attribute and
    reference kept; service/text/markup.py). ``ignore_tags``: elements whose content is
    left as is (besides code, pre, script, style in HTML). ``inline_tags``: in XML the
    elements that do not split a sentence (every other one does); in HTML extra inline
    elements. ``split_sentences``: False translates each text (or markup segment) whole.
    """

    kind: FormatKind = "text"
    ignore_tags: tuple[str, ...] = ()
    inline_tags: tuple[str, ...] | None = None
    split_sentences: bool = True

    @property
    def is_markup(self) -> bool:
        """True for HTML and XML."""
        return self.kind != "text"


PLAIN_TEXT = TextFormat()


@dataclass(frozen=True)
class TextResult:
    """One input's answer: num_return_sequences texts, why each ended, token counts."""

    texts: list[str]
    finish_reasons: list[FinishReason]
    input_tokens: int
    generated_tokens: int

    @property
    def text(self) -> str:
        """The first (best) text."""
        return self.texts[0] if self.texts else ""

    @property
    def finish_reason(self) -> FinishReason:
        """Why the first text ended ("eos" when unknown)."""
        return self.finish_reasons[0] if self.finish_reasons else "eos"

    @staticmethod
    def combine(text: str | Sequence[str], parts: Sequence[TextResult]) -> TextResult:
        """One result for a text answered in several generations (translated sentences):
        "length" if any part ran out of budget, token counts summed. ``text`` may be
        several alternatives (best first)."""
        reason: FinishReason = (
            "length" if any(p.finish_reason == "length" for p in parts) else "eos"
        )
        texts = [text] if isinstance(text, str) else list(text)
        return TextResult(
            texts,
            [reason] * len(texts),
            sum(p.input_tokens for p in parts),
            sum(p.generated_tokens for p in parts),
        )


@dataclass(frozen=True)
class TextDelta:
    """A streamed piece of input ``index``'s answer; ``result`` is set on its last piece.
    ``input_tokens``: the input's token count (known before the result)."""

    index: int
    text: str
    result: TextResult | None = None
    input_tokens: int = 0
