"""The engine layer: one ModelService per model (texts in, texts out), its batching
engine and worker, the registry of served models, and the ports it needs of the runtime.

See docs/architecture.md ("Engine API") for the contract.
"""

from service.engine.engine import Engine
from service.engine.errors import (
    DeadlineExceededError,
    DetectedLanguageUnsupportedError,
    DrainingError,
    EngineError,
    GenerationFailedError,
    InputTooLargeError,
    InvalidRequestError,
    LanguageNotDetectedError,
    MarkupTooDeepError,
    ModelFailedError,
    ModelNotFoundError,
    ModelNotReadyError,
    NoModelError,
    OptionsRejectedError,
    QueueFullError,
    RequestCancelledError,
    RequestTooCostlyError,
    UnsupportedLanguageError,
    UnsupportedLanguagePairError,
    WorkerFailedError,
    WrongTaskError,
)
from service.engine.observer import BatchMode, EngineObserver, EngineState, EngineStatus
from service.engine.ports import DecodeBatch, Detokenizer, Runtime
from service.engine.registry import LoadConfig, ModelEntry, ModelRegistry, ModelState
from service.engine.requests import GenerationRequest, GenerationResult, StreamChunk
from service.engine.results import PLAIN_TEXT, CallContext, TextDelta, TextFormat, TextResult
from service.engine.scheduler import EngineConfig
from service.engine.service import ModelService
from service.engine.translation import (
    AUTO,
    DetectedLanguage,
    Translation,
    TranslationPlan,
    Translator,
    match_language,
)
from service.runtime import GenerationOptions, RuntimeInfo

__all__ = [
    "AUTO",
    "PLAIN_TEXT",
    "BatchMode",
    "CallContext",
    "DeadlineExceededError",
    "DecodeBatch",
    "DetectedLanguage",
    "DetectedLanguageUnsupportedError",
    "Detokenizer",
    "DrainingError",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineObserver",
    "EngineState",
    "EngineStatus",
    "GenerationFailedError",
    "GenerationOptions",
    "GenerationRequest",
    "GenerationResult",
    "InputTooLargeError",
    "InvalidRequestError",
    "LanguageNotDetectedError",
    "LoadConfig",
    "MarkupTooDeepError",
    "ModelEntry",
    "ModelFailedError",
    "ModelNotFoundError",
    "ModelNotReadyError",
    "ModelRegistry",
    "ModelService",
    "ModelState",
    "NoModelError",
    "OptionsRejectedError",
    "QueueFullError",
    "RequestCancelledError",
    "RequestTooCostlyError",
    "Runtime",
    "RuntimeInfo",
    "StreamChunk",
    "TextDelta",
    "TextFormat",
    "TextResult",
    "Translation",
    "TranslationPlan",
    "Translator",
    "UnsupportedLanguageError",
    "UnsupportedLanguagePairError",
    "WorkerFailedError",
    "WrongTaskError",
    "match_language",
]
