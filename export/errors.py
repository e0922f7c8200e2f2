"""Errors the export stage reports to users as one clear line (and a non-zero exit)."""

from __future__ import annotations


class ExportError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 1


class UsageError(ExportError):
    """Unknown task or precision, bad package name."""

    exit_code = 2


class SourceError(ExportError):
    """SOURCE is missing, unreadable or not a loadable checkpoint."""


class UnsupportedModelError(ExportError):
    """The checkpoint is not an encoder-decoder model the exporter supports."""


class TaskMismatchError(ExportError):
    """The requested task does not fit the model family."""


class PackageExistsError(ExportError):
    """The output package already exists and --overwrite was not given."""


class OutputError(ExportError):
    """The output directory cannot be written (permissions, disk full)."""


class ConversionError(ExportError):
    """ONNX export, optimization or quantization failed."""


class ValidationFailedError(ExportError):
    """The exported fp32 model does not reproduce the checkpoint's outputs."""
