"""Tiny packages exported with the positioned decoder pair, and sentences to decode with them.

Shared by the export, runtime, engine and API tests of the positioned decoder
(``python -m export --positioned``); each package is exported once and cached.
"""

from __future__ import annotations

from pathlib import Path

TASKS = {"marian": "translation", "t5": "translation", "m2m100": "translation"}
# Six generated-grammar sentences of mixed length (the tiny checkpoints' own domain).
SENTENCES = [
    "A man rides a horse.",
    "Two dogs play in the snow near the old church.",
    "The boy jumps.",
    "A woman is reading a book in the park while her children play.",
    "A small brown horse waits behind the church.",
    "Max and Thomas are riding a bicycle through the snow.",
]


def positioned_package(family: str = "marian") -> Path:
    """The tiny package of ``family`` exported with the positioned graphs (cached)."""
    from export.cache import ensure_package
    from training.checkpoints import ensure_checkpoint

    return ensure_package(
        ensure_checkpoint(family, "tiny"),
        task=TASKS[family],
        name=f"tiny-{family}",
        precisions=("fp32", "int8"),
        positioned=True,
    )
