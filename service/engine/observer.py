"""Hooks through which the engine layer reports what it does (metrics live in the API layer).

The worker thread calls the per-step hooks, so implementations must be thread-safe
(prometheus_client metrics are). The default implementation ignores everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypedDict

from service.runtime import RuntimeInfo

EngineState = Literal["created", "running", "failed", "draining", "stopped"]
BatchMode = Literal["dynamic", "continuous"]


class EngineStatus(TypedDict):
    """An engine's state and load, as /models shows it."""

    state: EngineState
    mode: BatchMode
    queue_depth: int
    in_flight: int
    active: int


class EngineObserver:
    """No-op observer; subclass and override what you need."""

    def on_queue_wait(self, seconds: float) -> None:
        """A request left the queue after waiting ``seconds``."""

    def on_batch(self, size: int) -> None:
        """A model call ran with ``size`` requests (a dynamic batch or one decode step)."""

    def on_step(self, seconds: float) -> None:
        """A decode step (continuous) or a generate call (dynamic) took ``seconds``."""

    def on_tokens(self, input_tokens: int, generated_tokens: int) -> None:
        """A request finished having read and produced these token counts."""

    def on_rejection(self, reason: str) -> None:
        """A request was rejected or abandoned; ``reason`` is one of the bounded reasons."""

    def on_model_ready(self, info: RuntimeInfo, task: str) -> None:
        """The model is loaded and warmed up (called on the event loop)."""

    def on_worker_alive(self, alive: bool) -> None:
        """The worker thread died (False) or was restarted (True) (on the event loop)."""

    def watch(self, status: Callable[[], EngineStatus]) -> None:
        """``status`` reads the engine's queue depth and in-flight count at any time."""
