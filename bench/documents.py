"""Result documents of the benchmarks: the command that made one, and writing it."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """``python -m <module> <arguments>`` as run (``argv`` None: this process's own)."""
    return " ".join([f"python -m {module}", *(sys.argv[1:] if argv is None else argv)])


def write_document(path: Path | None, document: dict[str, Any]) -> None:
    """Write ``document`` as indented JSON to ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")
