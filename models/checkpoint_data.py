"""Real text for the local checkpoints: Multi30k sentences from the shared data folder."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DATA_DIR_ENV = "S2S_DATA_DIR"
LANGUAGES = ("en", "de", "fr")


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
            f"Multi30k data not found under {chosen}/multi30k; pass --data-dir or set "
            f"{DATA_DIR_ENV} to the folder holding multi30k/train.en.gz"
        )
    return chosen


def read_sentences(
    data_dir: Path, lang: str, split: str = "train", limit: int | None = None
) -> list[str]:
    """Read up to ``limit`` non-empty, stripped Multi30k sentences of one language and split."""
    path = data_dir / "multi30k" / f"{split}.{lang}.gz"
    if not path.is_file():
        raise DataMissingError(f"missing data file {path}")
    sentences: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            text = line.strip()
            if text:
                sentences.append(text)
                if limit is not None and len(sentences) >= limit:
                    break
    return sentences
