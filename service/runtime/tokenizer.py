"""The package's tokenizer: task prefix, source language, length check, decoding.

Uses transformers' tokenizer classes (no torch needed) loaded from the package's
``tokenizer/`` folder only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from service.runtime.errors import (
    InputTooLongError,
    InvalidTextError,
    PackageError,
    UnknownLanguageError,
)
from service.runtime.manifest import Manifest


class PackageTokenizer:
    """Encode requests and decode generated ids for one package."""

    def __init__(self, tokenizer_dir: Path, manifest: Manifest) -> None:
        from transformers import AutoTokenizer  # heavy import, deferred until a package loads

        if not tokenizer_dir.is_dir():
            raise PackageError(f"{tokenizer_dir}: tokenizer folder is missing")
        try:
            self.hf: Any = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        except Exception as exc:  # transformers raises many types for broken folders
            raise PackageError(f"{tokenizer_dir}: cannot load tokenizer: {exc}") from exc
        self.manifest = manifest
        self.languages = manifest.languages
        self.prefix = manifest.task_prefix
        self.max_positions = manifest.model.max_source_positions
        self._lock = threading.Lock()
        # Which value makes the tokenizer emit a source language's token ("en" for M2M100,
        # the token itself for NLLB-style tokenizers): found once per language.
        self._src_lang_value: dict[str, str] = {}
        # Multi-target Marian has language tokens for the target only: its tokenizer has no
        # src_lang, and its encoder reads the text as it is.
        self.takes_src_lang = _takes_src_lang(self.hf)

    @property
    def special_ids(self) -> set[int]:
        """Ids of special tokens (skipped when decoding)."""
        return set(self.hf.all_special_ids)

    def language_token_id(self, lang: str) -> int:
        """Id of a multilingual package's language token; UnknownLanguageError if unknown."""
        token = self.languages.tokens.get(lang)
        if token is None:
            raise UnknownLanguageError(
                f"unknown language {lang!r}; this model knows {sorted(self.languages.tokens)}"
            )
        token_id = self.hf.convert_tokens_to_ids(token)
        if token_id is None or token_id == self.hf.unk_token_id:
            raise PackageError(f"language token {token!r} is not in the tokenizer vocabulary")
        return int(token_id)

    def check_target(self, lang: str | None) -> int | None:
        """Validate a target language; return its forced-BOS token id when multilingual."""
        if lang is None:
            return None
        if self.languages.multilingual:
            return self.language_token_id(lang)
        if self.languages.target and lang not in self.languages.target:
            raise UnknownLanguageError(
                f"target language {lang!r} not supported; supported: {self.languages.target}"
            )
        return None

    def _check_source(self, lang: str | None) -> None:
        if lang is None:
            return
        known = self.languages.source or list(self.languages.tokens)
        if known and lang not in known:
            raise UnknownLanguageError(
                f"source language {lang!r} not supported; supported: {known}"
            )

    def check_pair(self, source: str | None, target: str | None) -> None:
        """UnknownLanguageError unless the package serves ``source`` -> ``target`` (either
        None: only the other one is checked)."""
        self._check_source(source)
        self.check_target(target)
        listed = self.languages.pairs
        if (
            source is not None
            and target is not None
            and listed
            and not self.languages.serves(source, target)
        ):
            raise UnknownLanguageError(
                f"this model does not translate {source}->{target}; it translates "
                f"{', '.join(listed)}"
            )

    def _set_src_lang(self, lang: str) -> None:
        value = self._src_lang_value.get(lang)
        if value is None:
            token_id = self.language_token_id(lang)
            for candidate in (lang, self.languages.tokens[lang]):
                try:
                    self.hf.src_lang = candidate
                    probe = self.hf("a")["input_ids"]
                except (KeyError, ValueError):
                    continue
                if token_id in probe:
                    value = candidate
                    break
            if value is None:
                raise PackageError(f"tokenizer does not take source language {lang!r}")
            self._src_lang_value[lang] = value
        self.hf.src_lang = value

    def encode(self, texts: Sequence[str], source_lang: str | None = None) -> list[list[int]]:
        """Token ids per text (task prefix, source-language token, EOS); never truncates:
        InputTooLongError when an input exceeds the model's source positions."""
        self._check_source(source_lang)
        for i, text in enumerate(texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                # sentencepiece raises a bare error on these; the API refuses them earlier.
                raise InvalidTextError(f"input {i} holds a lone UTF-16 surrogate") from None
        with self._lock:
            if self.languages.multilingual and self.takes_src_lang and source_lang is not None:
                self._set_src_lang(source_lang)
            ids: list[list[int]] = self.hf([self.prefix + t for t in texts])["input_ids"]
        if self.max_positions is not None:
            for i, row in enumerate(ids):
                if len(row) > self.max_positions:
                    raise InputTooLongError(
                        f"input {i} has {len(row)} tokens; the model accepts at most "
                        f"{self.max_positions}",
                        limit_tokens=self.max_positions,
                    )
        return ids

    def counts(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens each text encodes to (with prefix and special tokens), however
        long it is."""
        if not texts:
            return []
        with self._lock:
            ids: list[list[int]] = self.hf([self.prefix + t for t in texts])["input_ids"]
        return [len(row) for row in ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of generated ids, special tokens skipped, spacing exactly as the tokenizer
        produces it (no clean-up, so that streamed pieces add up to the same text)."""
        return str(
            self.hf.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        )


def _takes_src_lang(tokenizer: Any) -> bool:
    """Whether the tokenizer class has a source language (M2M100, NLLB, mBART: ``src_lang``
    is an attribute of every instance; Marian's has none)."""
    return "src_lang" in tokenizer.init_kwargs or hasattr(tokenizer, "src_lang")
