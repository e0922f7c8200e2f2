"""Errors the runtime raises on purpose; anything else escaping it is a bug.

Callers tell them apart by type, never by message text.
"""

from __future__ import annotations

from service.runtime.manifest import PackageError

__all__ = [
    "InputTooLongError",
    "InvalidOptionsError",
    "InvalidTextError",
    "PackageError",
    "RuntimeInputError",
    "UnknownLanguageError",
]


class RuntimeInputError(ValueError):
    """A request the runtime cannot serve as given (the client's input, not a bug)."""


class InputTooLongError(RuntimeInputError):
    """An input has more tokens than the model's source positions (never truncated)."""

    def __init__(self, message: str, limit_tokens: int) -> None:
        super().__init__(message)
        self.limit_tokens = limit_tokens


class UnknownLanguageError(RuntimeInputError):
    """A source or target language this package does not know."""


class InvalidOptionsError(RuntimeInputError):
    """Generation options that are invalid alone or in combination."""


class InvalidTextError(RuntimeInputError):
    """A text the tokenizer cannot take (a lone UTF-16 surrogate is no character)."""
