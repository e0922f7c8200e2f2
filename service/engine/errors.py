"""Typed errors of the engine layer (engine, model service, registry).

The API maps each type to one HTTP status in one table (service/api/errors.py); nothing
is told apart by its message.
"""

from __future__ import annotations

from service.runtime import (
    InputTooLongError,
    InvalidOptionsError,
    RuntimeInputError,
    UnknownLanguageError,
)


class EngineError(Exception):
    """Base class of everything the engine layer raises on purpose."""

    #: Rejection reason used in metrics (bounded set), or "" when not a rejection.
    reason: str = ""


class QueueFullError(EngineError):
    """The model's queue is at capacity; retry after ``retry_after_s`` seconds."""

    reason = "queue_full"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTooCostlyError(EngineError):
    """The request costs more work units than one request may (``limit``); it could never
    run, so it is no queue_full (413; counted as too_large by the API like other 413s)."""

    def __init__(self, message: str, cost: int, limit: int) -> None:
        super().__init__(message)
        self.cost = cost
        self.limit = limit


class DeadlineExceededError(EngineError):
    """The request's deadline passed before it finished (queued or running)."""

    reason = "timeout"


class DrainingError(EngineError):
    """The engine is draining or stopped and accepts no new work."""

    reason = "draining"


class RequestCancelledError(EngineError):
    """The request was cancelled (its consumer went away) before it finished; the worker
    fails a cancelled job with it when it drops the job from the queue or the batch."""

    reason = "cancelled"


class InvalidRequestError(EngineError):
    """The runtime rejected this request's input; ``cause`` is the runtime's typed error."""

    def __init__(self, cause: RuntimeInputError) -> None:
        super().__init__(str(cause))
        self.cause = cause


class InputTooLargeError(InvalidRequestError):
    """An input is longer than the model's source length (``limit_tokens``)."""

    def __init__(self, cause: InputTooLongError) -> None:
        super().__init__(cause)
        self.limit_tokens = cause.limit_tokens


class UnsupportedLanguageError(InvalidRequestError):
    """A source or target language the model does not know."""


class OptionsRejectedError(InvalidRequestError):
    """Generation options the runtime refuses (alone or in combination)."""


def invalid_request(cause: RuntimeInputError) -> InvalidRequestError:
    """The engine error for a runtime input error (the one place they are converted)."""
    if isinstance(cause, InputTooLongError):
        return InputTooLargeError(cause)
    if isinstance(cause, UnknownLanguageError):
        return UnsupportedLanguageError(cause)
    if isinstance(cause, InvalidOptionsError):
        return OptionsRejectedError(cause)
    return InvalidRequestError(cause)


class MarkupTooDeepError(EngineError):
    """An HTML/XML text nests inline elements deeper than ``limit`` (markup's
    ``MAX_INLINE_DEPTH``): refused before any model work."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class GenerationFailedError(EngineError):
    """The runtime failed on this request for an unexpected reason (a bug, not the input)."""


class WorkerFailedError(EngineError):
    """The model's worker thread died; the model is not ready until it is restarted."""


# ---- registry: which model serves a request ---------------------------------------------
class ModelNotFoundError(EngineError):
    """No model has the requested name; ``available`` lists the configured names."""

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__(f"no model named {name!r}")
        self.available = available


class WrongTaskError(EngineError):
    """The named model does another task than the route's."""


class NoModelError(EngineError):
    """No configured model does the route's task."""


class UnsupportedLanguagePairError(EngineError):
    """No (or not the named) model translates the pair; ``pairs`` lists what is served."""

    def __init__(self, message: str, pairs: list[str]) -> None:
        super().__init__(message)
        self.pairs = pairs


class DetectedLanguageUnsupportedError(EngineError):
    """Source "auto": a text is clearly in ``language``, which no served model translates
    (into the requested target); ``supported`` lists the languages that are."""

    def __init__(self, message: str, language: str, supported: list[str]) -> None:
        super().__init__(message)
        self.language = language
        self.supported = supported


class LanguageNotDetectedError(EngineError):
    """Source "auto": the language of a text could not be told (give the source)."""


class ModelNotReadyError(EngineError):
    """The model is still loading."""


class ModelFailedError(EngineError):
    """The model failed to load, or its worker died; ``failure`` says why."""

    def __init__(self, message: str, failure: str) -> None:
        super().__init__(message)
        self.failure = failure
