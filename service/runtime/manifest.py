"""The model package format (format_version 1): its one definition.

A package directory holds ``manifest.json`` (this schema), ``validation.json``,
``tokenizer/`` and one folder per precision variant (``fp32/``, ``int8/``, ``fp16/``) with
``encoder_model.onnx`` and ``decoder_model_merged.onnx`` (and, optionally,
``decoder_positioned.onnx`` + ``cross_kv.onnx``: ``Variant.positioned``). The runtime
finds everything through the manifest; the export stage writes it. Kept dependency-light
(pydantic and the standard library only) so the serving path can import it without torch
or transformers.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
VALIDATION_FILE = "validation.json"
ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model_merged.onnx"
POSITIONED_DECODER_FILE = "decoder_positioned.onnx"
CROSS_KV_FILE = "cross_kv.onnx"
TOKENIZER_DIR = "tokenizer"

Task = Literal["translation", "summarization", "chat"]
TASKS: tuple[str, ...] = ("translation", "summarization", "chat")
Precision = Literal["fp32", "int8", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "int8", "fp16")
# The device each precision variant is built for.
PRECISION_DEVICE: dict[str, str] = {"fp32": "cpu", "int8": "cpu", "fp16": "cuda"}


class PackageError(Exception):
    """A package is missing, unreadable or does not match the format."""


class _Strict(BaseModel):
    # Unknown keys are an error so a typo in a writer cannot silently drop data.
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileEntry(_Strict):
    """One file of the package, relative to the package directory."""

    path: str
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class SourceInfo(_Strict):
    """Where the exported checkpoint came from."""

    ref: str
    sha256: str
    kind: Literal["local", "hub"]


PAIR_SEPARATOR = "->"


class Languages(_Strict):
    """Languages the package handles.

    ``tokens`` maps a language code to its language token (forced BOS for the target,
    tokenizer ``src_lang`` for the source where the tokenizer has one); only multilingual
    models (M2M100/NLLB, multi-target Marian) have it. ``pairs`` (``"en->de"``) lists the
    directions the package serves; empty means every source x target combination of two
    different languages (packages written before the field load unchanged).
    """

    source: list[str] = Field(default_factory=list)
    target: list[str] = Field(default_factory=list)
    tokens: dict[str, str] = Field(default_factory=dict)
    pairs: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_pairs(self) -> Languages:
        for pair in self.pairs:
            source, sep, target = pair.partition(PAIR_SEPARATOR)
            if not sep or source not in self.source or target not in self.target:
                raise ValueError(
                    f"pair {pair!r} is not 'source->target' of the listed languages "
                    f"(source {self.source}, target {self.target})"
                )
        return self

    @property
    def multilingual(self) -> bool:
        """True when the target language is chosen per request through a language token."""
        return bool(self.tokens)

    def directions(self) -> list[tuple[str, str]]:
        """Every (source, target) the package serves: ``pairs`` when listed, else every
        combination of a source and a different target."""
        if self.pairs:
            return [_split_pair(p) for p in self.pairs]
        return [(s, t) for s in self.source for t in self.target if s != t]

    def serves(self, source: str, target: str) -> bool:
        """True when the package translates ``source`` into ``target``."""
        if self.pairs:
            return f"{source}{PAIR_SEPARATOR}{target}" in self.pairs
        return source in self.source and target in self.target


def _split_pair(pair: str) -> tuple[str, str]:
    source, _, target = pair.partition(PAIR_SEPARATOR)
    return source, target


class ChatConfig(_Strict):
    """How a chat history is rendered into one encoder input."""

    turn_separator: str = "\n"
    max_history_turns: int = Field(default=8, ge=1)


class ModelInfo(_Strict):
    """Architecture facts the runtime needs to build inputs and the KV cache."""

    vocab_size: int = Field(gt=0)
    d_model: int = Field(gt=0)
    num_decoder_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    decoder_start_token_id: int
    pad_token_id: int
    eos_token_id: int
    max_source_positions: int | None = None
    is_encoder_decoder: bool = True


class GenerationDefaults(_Strict):
    """Defaults from the checkpoint's generation_config (None: transformers' default)."""

    max_length: int | None = None
    max_new_tokens: int | None = None
    min_length: int | None = None
    num_beams: int | None = None
    length_penalty: float | None = None
    early_stopping: bool | str | None = None
    no_repeat_ngram_size: int | None = None
    repetition_penalty: float | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | list[int] | None = None
    bad_words_ids: list[list[int]] | None = None
    suppress_tokens: list[int] | None = None
    begin_suppress_tokens: list[int] | None = None
    do_sample: bool | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> GenerationDefaults:
        """Pick the known fields out of a generation_config.json dict, ignoring the rest."""
        return cls(**{k: config[k] for k in cls.model_fields if k in config})


class TokenizerInfo(_Strict):
    """The tokenizer folder and its files (tokenizer files, config.json, generation_config)."""

    dir: str = TOKENIZER_DIR
    files: list[FileEntry] = Field(default_factory=list)


class PositionedFiles(_Strict):
    """Optional graphs of a variant whose rows may sit at different steps of one decoder
    call (``export/positioned_decoder.py``): the positioned decoder and the cross K/V
    projection. Written only by ``python -m export ... --positioned``."""

    decoder: FileEntry
    cross_kv: FileEntry
    quantization: str = "none"
    validated: bool = False


class Variant(_Strict):
    """One precision variant: an encoder and a merged decoder (and, optionally, the
    positioned decoder pair)."""

    encoder: FileEntry
    decoder: FileEntry
    device: Literal["cpu", "cuda"]
    quantization: str = "none"
    validated: bool = False
    positioned: PositionedFiles | None = None


class Manifest(_Strict):
    """The package manifest: the only thing the runtime reads to find everything else."""

    format_version: Literal[1] = 1
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    task: Task
    family: str
    description: str = ""
    source: SourceInfo
    languages: Languages = Field(default_factory=Languages)
    task_prefix: str = ""
    chat: ChatConfig | None = None
    model: ModelInfo
    generation: GenerationDefaults = Field(default_factory=GenerationDefaults)
    tokenizer: TokenizerInfo = Field(default_factory=TokenizerInfo)
    variants: dict[str, Variant]
    tools: dict[str, str] = Field(default_factory=dict)
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        if not self.variants:
            raise ValueError("a package needs at least one precision variant")
        unknown = set(self.variants) - set(PRECISIONS)
        if unknown:
            raise ValueError(f"unknown precision variant(s) {sorted(unknown)}; known: {PRECISIONS}")
        if self.task == "chat" and self.chat is None:
            raise ValueError("a chat package needs a 'chat' section")
        return self

    @classmethod
    def load(cls, package_dir: str | Path) -> Manifest:
        """Read and validate ``<package_dir>/manifest.json``; raise PackageError if bad."""
        path = Path(package_dir) / MANIFEST_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PackageError(f"{package_dir}: no {MANIFEST_FILE} (not a model package)") from exc
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PackageError(f"{path}: unreadable: {exc}") from exc
        if isinstance(raw, dict) and raw.get("format_version") != FORMAT_VERSION:
            raise PackageError(
                f"{path}: format_version {raw.get('format_version')!r} is not supported "
                f"(this code reads {FORMAT_VERSION})"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise PackageError(f"{path}: invalid manifest: {exc}") from exc

    def write(self, package_dir: str | Path) -> Path:
        """Write ``manifest.json`` into ``package_dir`` (atomically replaced) and return it."""
        data = self.model_dump(mode="json")
        for variant in data["variants"].values():
            if variant.get("positioned") is None:  # absent, as in packages written before it
                variant.pop("positioned", None)
        return write_json_atomic(Path(package_dir) / MANIFEST_FILE, data)

    def variant_paths(self, package_dir: str | Path, precision: str) -> tuple[Path, Path]:
        """Absolute (encoder, decoder) paths of one variant; PackageError if absent."""
        if precision not in self.variants:
            raise PackageError(
                f"package {self.name!r} has no {precision!r} variant "
                f"(has: {', '.join(self.variants)})"
            )
        variant = self.variants[precision]
        root = Path(package_dir)
        return root / variant.encoder.path, root / variant.decoder.path

    def positioned_paths(self, package_dir: str | Path, precision: str) -> tuple[Path, Path] | None:
        """Absolute (positioned decoder, cross K/V) paths of one variant, or None when the
        variant has no positioned graphs; PackageError if the variant is absent."""
        self.variant_paths(package_dir, precision)
        positioned = self.variants[precision].positioned
        if positioned is None:
            return None
        root = Path(package_dir)
        return root / positioned.decoder.path, root / positioned.cross_kv.path

    def tokenizer_dir(self, package_dir: str | Path) -> Path:
        """Absolute path of the tokenizer folder."""
        return Path(package_dir) / self.tokenizer.dir

    def verify_files(self, package_dir: str | Path, precisions: list[str] | None = None) -> None:
        """Check sizes and sha256 of the tokenizer files and the chosen variants' files."""
        root = Path(package_dir)
        entries = list(self.tokenizer.files)
        for precision in precisions if precisions is not None else list(self.variants):
            variant = self.variants[precision]
            entries += [variant.encoder, variant.decoder]
            if variant.positioned is not None:
                entries += [variant.positioned.decoder, variant.positioned.cross_kv]
        for entry in entries:
            actual = file_entry(root / entry.path, root)
            if actual.bytes != entry.bytes or actual.sha256 != entry.sha256:
                raise PackageError(f"{root / entry.path}: size or sha256 differs from manifest")


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of one file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(path: str | Path, root: str | Path) -> FileEntry:
    """FileEntry (path relative to root, size, sha256) for one existing file."""
    path = Path(path)
    try:
        return FileEntry(
            path=path.relative_to(root).as_posix(),
            bytes=path.stat().st_size,
            sha256=sha256_file(path),
        )
    except OSError as exc:
        raise PackageError(f"{path}: unreadable: {exc}") from exc


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; packages are shared read-only data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
