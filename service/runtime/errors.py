"""Errors the runtime raises on purpose; anything else escaping it is a bug."""

from __future__ import annotations

from service.runtime.manifest import PackageError

__all__ = ["PackageError", "RuntimeInputError"]


class RuntimeInputError(ValueError):
    """A request the runtime cannot serve as given: input too long, unknown language, bad
    generation options. The API maps it to a client error."""
