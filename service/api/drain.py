"""Graceful shutdown state: once draining, /ready is 503 and new work is refused."""

from __future__ import annotations

import time


class DrainState:
    """Draining flag plus a count of work requests still being answered."""

    def __init__(self) -> None:
        self.draining = False
        self.started_at: float | None = None
        self.active = 0

    def begin(self) -> None:
        """Start draining (idempotent)."""
        if not self.draining:
            self.draining = True
            self.started_at = time.monotonic()

    def elapsed_s(self) -> float:
        """Seconds since draining began (0 when not draining)."""
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at
