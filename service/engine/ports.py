"""What the engine needs of the runtime: the ports (Protocols) at the engine/runtime seam.

``service.runtime.Seq2SeqRuntime`` implements :class:`Runtime` and its ``DecodeBatch``
implements :class:`DecodeBatch`; the test fake (tests/support/fake_runtime.py) implements
the same Protocols and is type-checked against them. Data crossing the seam uses the
runtime's own types (options, events, manifest), so nothing here is ``Any``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

from service.runtime import (
    GenerationOptions,
    GenerationOutput,
    Manifest,
    ResolvedOptions,
    RuntimeInfo,
    StepEvent,
)


class Detokenizer(Protocol):
    """Streaming-safe detokenizer of one sequence."""

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text (possibly empty)."""
        ...

    def flush(self) -> str:
        """Return whatever is still held back (end of the stream)."""
        ...


class DecodeBatch(Protocol):
    """A running decode batch of the runtime's step API."""

    def add(self, key: Hashable, input_ids: Sequence[int], options: ResolvedOptions) -> None:
        """Queue a request; it starts decoding at the next step."""
        ...

    def step(self) -> list[StepEvent]:
        """Run one decode step for every request in the batch."""
        ...

    def remove(self, key: Hashable) -> bool:
        """Cancel a request and free its rows; False if it is not in the batch."""
        ...

    def __len__(self) -> int:
        """Requests in the batch."""
        ...

    @property
    def rows(self) -> int:
        """Decoder rows in use."""
        ...


class Runtime(Protocol):
    """One loaded model package."""

    @property
    def manifest(self) -> Manifest:
        """The package's manifest."""
        ...

    @property
    def info(self) -> RuntimeInfo:
        """Precision and execution provider in use."""
        ...

    def encode_texts(
        self,
        texts: Sequence[str],
        source_lang: str | None = None,
        target_lang: str | None = None,
    ) -> list[list[int]]:
        """Token ids per text; typed RuntimeInputError subclasses for bad input."""
        ...

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text encodes to, also past the model's source positions."""
        ...

    def resolve(
        self, options: GenerationOptions | None = None, target_lang: str | None = None
    ) -> ResolvedOptions:
        """Request options merged with the package defaults; InvalidOptionsError if bad."""
        ...

    def new_batch(self) -> DecodeBatch:
        """An empty decode batch whose requests start together and step together (the
        step API: tokens come out after every step)."""
        ...

    @property
    def supports_positioned(self) -> bool:
        """True when :meth:`new_positioned_batch` can run (the package has the positioned
        decoder and the runtime loaded it)."""
        ...

    def new_positioned_batch(self) -> DecodeBatch:
        """An empty decode batch whose requests share one decoder call per step
        whatever their positions (continuous batching)."""
        ...

    def generate_outputs(
        self,
        input_ids: Sequence[Sequence[int]],
        options: ResolvedOptions | GenerationOptions | None = None,
        batch_size: int | None = None,
    ) -> list[GenerationOutput]:
        """Generate for every input (one option set for all)."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids."""
        ...

    def new_detokenizer(self) -> Detokenizer:
        """A streaming detokenizer for one sequence."""
        ...
