"""Command-line flags of ``python -m service``, generated from the settings.

Every field of :class:`~service.settings.Settings` gets one flag (``max_batch_tokens`` ->
``--max-batch-tokens``), with the field's description and environment variable as help,
choices for ``Literal`` fields and ``--x/--no-x`` for booleans; values are validated by
the settings themselves, so a flag and its ``S2S_`` variable always mean the same.
"""

from __future__ import annotations

import argparse
import types
import typing
from typing import Literal, Union

from pydantic.fields import FieldInfo

from service.settings import Settings


def flag_name(field: str) -> str:
    """The command-line flag of a settings field."""
    return "--" + field.replace("_", "-")


def _unwrap_optional(annotation: object) -> object:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _add(parser: argparse.ArgumentParser, name: str, field: FieldInfo) -> None:
    annotation = _unwrap_optional(field.annotation)
    help_text = f"{field.description or name} (S2S_{name.upper()})"
    if annotation is bool:
        parser.add_argument(
            flag_name(name), dest=name, action=argparse.BooleanOptionalAction, help=help_text
        )
        return
    kwargs: dict[str, object] = {"dest": name, "help": help_text}
    if typing.get_origin(annotation) is Literal:
        kwargs["choices"] = [str(choice) for choice in typing.get_args(annotation)]
    elif annotation in (int, float):
        kwargs["type"] = annotation
    elif typing.get_origin(annotation) is list:
        kwargs["metavar"] = "A,B"
    parser.add_argument(flag_name(name), **kwargs)  # type: ignore[arg-type]


def build_parser(description: str) -> argparse.ArgumentParser:
    """A parser with one flag per settings field (unset flags parse as None)."""
    parser = argparse.ArgumentParser(prog="python -m service", description=description)
    for name, field in Settings.model_fields.items():
        _add(parser, name, field)
    return parser
