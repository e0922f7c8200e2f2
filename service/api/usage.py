"""Characters translated by this process (DeepL's /v2/usage and its 456 quota)."""

from __future__ import annotations

from collections.abc import Sequence

from service.api.errors import ApiError


class CharacterUsage:
    """A count of source characters translated since start, against ``limit``.

    Every translation route adds to it; DeepL's /v2/translate refuses a request that would
    pass the limit (456). The event loop is the only writer, so no lock is needed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def check(self, texts: Sequence[str]) -> None:
        """456 ``quota_exceeded`` when translating ``texts`` would pass the limit."""
        needed = sum(len(t) for t in texts)
        if self.count + needed > self.limit:
            raise ApiError(
                456,
                "quota_exceeded",
                f"character limit reached ({self.count} of {self.limit} used; "
                f"this request needs {needed})",
            )

    def add(self, texts: Sequence[str]) -> None:
        """Count the characters of ``texts`` (after they were translated)."""
        self.count += sum(len(t) for t in texts)
