"""Typed engine errors; the API maps each to one HTTP status."""

from __future__ import annotations


class EngineError(Exception):
    """Base class of everything the engine raises on purpose."""

    #: Rejection reason used in metrics (bounded set), or "" when not a rejection.
    reason: str = ""


class QueueFullError(EngineError):
    """The model's queue is at capacity; retry after ``retry_after_s`` seconds."""

    reason = "queue_full"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DeadlineExceededError(EngineError):
    """The request's deadline passed before it finished (queued or running)."""

    reason = "timeout"


class DrainingError(EngineError):
    """The engine is draining or stopped and accepts no new work."""

    reason = "draining"


class RequestCancelledError(EngineError):
    """The request was cancelled (client went away) before it finished."""

    reason = "cancelled"


class InvalidRequestError(EngineError):
    """The runtime rejected this request's input (too long, bad option combination)."""


class GenerationFailedError(EngineError):
    """The runtime failed on this request for an unexpected reason (a bug, not the input)."""
