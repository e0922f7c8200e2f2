"""Resolve SOURCE (local checkpoint dir or hub id) and decide what the model is."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from export.errors import SourceError, TaskMismatchError, UnsupportedModelError
from service.runtime.manifest import sha256_file

# transformers model_type -> package family.
FAMILY_BY_MODEL_TYPE: dict[str, str] = {
    "marian": "marian",
    "bart": "bart",
    "mbart": "mbart",
    "t5": "t5",
    "mt5": "t5",
    "pegasus": "pegasus",
    "blenderbot": "blenderbot",
    "blenderbot-small": "blenderbot",
    "m2m_100": "m2m100",
}
# Tasks a family can serve; T5 and BART are general text-to-text models.
TASKS_BY_FAMILY: dict[str, tuple[str, ...]] = {
    # Marian is a plain encoder-decoder: the chat default (DailyDialog) and the summarizer
    # (SAMSum + DialogSum) are ones trained here.
    "marian": ("translation", "summarization", "chat"),
    "m2m100": ("translation",),
    "mbart": ("translation", "summarization"),
    "bart": ("summarization", "translation", "chat"),
    "t5": ("translation", "summarization", "chat"),
    "pegasus": ("summarization",),
    "blenderbot": ("chat",),
}


# What a hub download needs: configs, PyTorch weights, tokenizer files (not the TF, Flax
# or Rust weights many hub repos also carry).
HUB_FILES = [
    "*.json",
    "*.safetensors",
    "pytorch_model*.bin",
    "*.model",
    "*.spm",
    "*.txt",
    "*.tiktoken",
]


@dataclass(frozen=True)
class Checkpoint:
    """A resolved, readable encoder-decoder checkpoint on local disk."""

    path: Path
    ref: str
    kind: Literal["local", "hub"]
    family: str
    model_type: str
    config: dict[str, Any]

    @property
    def sha256(self) -> str:
        """Hash over every file of the checkpoint (computed on demand: it reads all weights)."""
        return hash_tree(self.path)


def hash_tree(root: Path) -> str:
    """sha256 over the relative paths and contents of every file under root (sorted)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def _looks_like_hub_id(source: str) -> bool:
    if not source or source.startswith(("/", ".", "~")):
        return False
    return source.count("/") <= 1 and " " not in source and "\\" not in source


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except Exception as exc:  # any hub/network failure is a user-facing source problem
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SourceError(
            f"SOURCE {repo_id!r} is not a local directory and could not be fetched from "
            f"the Hugging Face hub: {reason}"
        ) from exc


def _read_config(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise SourceError(f"SOURCE {path} has no config.json (not a Hugging Face checkpoint)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except PermissionError as exc:
        raise SourceError(f"SOURCE {path} is not readable: {exc}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"SOURCE {config_file} is unreadable: {exc}") from exc
    if not isinstance(config, dict):
        raise SourceError(f"SOURCE {config_file} is not a JSON object")
    return config


def resolve_checkpoint(source: str | Path) -> Checkpoint:
    """Find SOURCE on disk (downloading a hub id) and check it is a supported seq2seq model."""
    ref = str(source)
    path = Path(ref).expanduser()
    kind: Literal["local", "hub"] = "local"
    if path.exists():
        if not path.is_dir():
            raise SourceError(f"SOURCE {ref} is a file; expected a checkpoint directory")
        if not os.access(path, os.R_OK | os.X_OK):
            raise SourceError(f"SOURCE {ref} is not readable (permission denied)")
    elif _looks_like_hub_id(ref):
        path, kind = _download(ref), "hub"
    else:
        raise SourceError(f"SOURCE {ref} does not exist")
    path = path.resolve()
    config = _read_config(path)
    model_type = str(config.get("model_type", "?"))
    if not config.get("is_encoder_decoder", False):
        raise UnsupportedModelError(
            f"SOURCE {ref} is a {model_type!r} model, not an encoder-decoder (seq2seq) model; "
            f"supported: {', '.join(sorted(FAMILY_BY_MODEL_TYPE))}"
        )
    if model_type not in FAMILY_BY_MODEL_TYPE:
        raise UnsupportedModelError(
            f"SOURCE {ref} is a {model_type!r} encoder-decoder, which this exporter does not "
            f"support; supported: {', '.join(sorted(FAMILY_BY_MODEL_TYPE))}"
        )
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise SourceError(f"SOURCE {ref} has no model weights (*.safetensors or *.bin)")
    return Checkpoint(
        path=path,
        ref=ref,
        kind=kind,
        family=FAMILY_BY_MODEL_TYPE[model_type],
        model_type=model_type,
        config=config,
    )


def check_task(checkpoint: Checkpoint, task: str) -> None:
    """Raise TaskMismatchError when the family cannot serve the task."""
    allowed = TASKS_BY_FAMILY[checkpoint.family]
    if task not in allowed:
        raise TaskMismatchError(
            f"task {task!r} does not fit a {checkpoint.family} model "
            f"(it supports: {', '.join(allowed)})"
        )
