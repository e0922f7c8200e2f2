"""Where real text lives: the shared data folder (Multi30k, WMT14, SAMSum, ...), never copied.

The local checkpoints do not need it (they train on ``training.checkpoint_corpus``); it is for
benchmarks (``bench.inputs``) and for tests that are about a real corpus, which skip when it
is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DATA_DIR_ENV = "S2S_DATA_DIR"


class DataMissingError(FileNotFoundError):
    """The shared data folder (or a Multi30k file in it) is absent."""


def data_dir_choice(data_dir: str | Path | None = None) -> Path:
    """The data folder to use: argument, else ``$S2S_DATA_DIR``, else ``<repo>/../shared/data``
    (not checked: callers with a fallback decide what a missing folder means)."""
    return Path(data_dir or os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the data folder (see ``data_dir_choice``); raise if it has no Multi30k."""
    chosen = data_dir_choice(data_dir)
    if not (chosen / "multi30k").is_dir():
        raise DataMissingError(
            f"Multi30k data not found under {chosen}/multi30k; set {DATA_DIR_ENV} to the "
            "folder holding multi30k/train.en.gz"
        )
    return chosen
