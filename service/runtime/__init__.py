"""Generation runtime: model packages on ONNX Runtime, no torch, no asyncio.

See docs/architecture.md ("Runtime API") for the contract.
"""

from service.runtime.detokenize import IncrementalDetokenizer
from service.runtime.errors import (
    InputTooLongError,
    InvalidOptionsError,
    InvalidTextError,
    PackageError,
    RuntimeInputError,
    UnknownLanguageError,
)
from service.runtime.generator import DecodeBatch
from service.runtime.integrity import ChecksumMismatchError
from service.runtime.manifest import Manifest
from service.runtime.model import GenerationOutput, Seq2SeqRuntime, load_runtime
from service.runtime.options import GenerationOptions, ResolvedOptions
from service.runtime.search import FinishReason, StepEvent
from service.runtime.sessions import RuntimeInfo
from service.runtime.thread_pool import share_thread_pool

__all__ = [
    "ChecksumMismatchError",
    "DecodeBatch",
    "FinishReason",
    "GenerationOptions",
    "GenerationOutput",
    "IncrementalDetokenizer",
    "InputTooLongError",
    "InvalidOptionsError",
    "InvalidTextError",
    "Manifest",
    "PackageError",
    "ResolvedOptions",
    "RuntimeInfo",
    "RuntimeInputError",
    "Seq2SeqRuntime",
    "StepEvent",
    "UnknownLanguageError",
    "load_runtime",
    "share_thread_pool",
]
