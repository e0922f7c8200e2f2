"""Hooks through which the engine reports what it does (metrics live in the API layer).

The worker thread calls these, so implementations must be thread-safe (prometheus_client
metrics are). The default implementation ignores everything.
"""

from __future__ import annotations


class EngineObserver:
    """No-op observer; subclass and override what you need."""

    def on_queue_wait(self, seconds: float) -> None:
        """A request left the queue after waiting ``seconds``."""

    def on_batch(self, size: int) -> None:
        """A model call ran with ``size`` requests (a dynamic batch or one decode step)."""

    def on_step(self, seconds: float) -> None:
        """A decode step (continuous) or a generate call (dynamic/off) took ``seconds``."""

    def on_tokens(self, input_tokens: int, generated_tokens: int) -> None:
        """A request finished having read and produced these token counts."""

    def on_rejection(self, reason: str) -> None:
        """A request was rejected or abandoned; ``reason`` is one of the bounded reasons."""
