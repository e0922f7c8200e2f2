"""Batched, cancellable generation on top of the runtime (one Engine per model)."""

from service.engine.engine import Engine, EngineState
from service.engine.errors import (
    DeadlineExceededError,
    DrainingError,
    EngineError,
    GenerationFailedError,
    InvalidRequestError,
    QueueFullError,
    RequestCancelledError,
)
from service.engine.observer import EngineObserver
from service.engine.requests import GenerationRequest, GenerationResult, StreamChunk
from service.engine.scheduler import BatchMode, EngineConfig

__all__ = [
    "BatchMode",
    "DeadlineExceededError",
    "DrainingError",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineObserver",
    "EngineState",
    "GenerationFailedError",
    "GenerationRequest",
    "GenerationResult",
    "InvalidRequestError",
    "QueueFullError",
    "RequestCancelledError",
    "StreamChunk",
]
