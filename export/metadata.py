"""Everything the manifest says about a checkpoint: model facts, languages, prefixes, tools."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
from pathlib import Path
from typing import Any

from export.errors import SourceError
from export.onnx_export import quiet
from export.source import Checkpoint
from service.runtime.manifest import (
    PAIR_SEPARATOR,
    ChatConfig,
    GenerationDefaults,
    Languages,
    ModelInfo,
)

LANG_CODE_TOKEN = re.compile(r"^[a-z]{2,3}_[A-Z][A-Za-z]{1,3}$")
TOOL_PACKAGES = ("transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "torch")
# BlenderBot's chat template joins turns with two spaces.
TURN_SEPARATORS = {"blenderbot": "  "}


def tool_versions() -> dict[str, str]:
    """Installed versions of the tools that shaped the package."""
    versions: dict[str, str] = {}
    for package in TOOL_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "absent"
    return versions


def generation_config_dict(checkpoint: Checkpoint) -> dict[str, Any]:
    """The checkpoint's generation settings that differ from transformers' defaults."""
    from transformers import AutoConfig, GenerationConfig

    with quiet():
        if (checkpoint.path / "generation_config.json").is_file():
            config = GenerationConfig.from_pretrained(checkpoint.path)
        else:
            config = GenerationConfig.from_model_config(AutoConfig.from_pretrained(checkpoint.path))
    return dict(config.to_diff_dict())


def _first_id(value: Any) -> int | None:
    if isinstance(value, list):
        return int(value[0]) if value else None
    return None if value is None else int(value)


def model_info(checkpoint: Checkpoint, generation: dict[str, Any]) -> ModelInfo:
    """Architecture facts of the decoder (T5 spells them differently from BART-likes)."""
    config = checkpoint.config

    def token(name: str) -> int:
        value = _first_id(generation.get(name))
        if value is None:
            value = _first_id(config.get(name))
        if value is None:
            raise ValueError(f"checkpoint config has no {name}")
        return value

    if checkpoint.family == "t5":
        d_model, heads = int(config["d_model"]), int(config["num_heads"])
        layers = int(config.get("num_decoder_layers") or config["num_layers"])
        head_dim, max_positions = int(config["d_kv"]), None
    else:
        d_model, heads = int(config["d_model"]), int(config["decoder_attention_heads"])
        layers, head_dim = int(config["decoder_layers"]), d_model // heads
        max_positions = config.get("max_position_embeddings")
    return ModelInfo(
        vocab_size=int(config["vocab_size"]),
        d_model=d_model,
        num_decoder_layers=layers,
        num_heads=heads,
        head_dim=head_dim,
        decoder_start_token_id=token("decoder_start_token_id"),
        pad_token_id=token("pad_token_id"),
        eos_token_id=token("eos_token_id"),
        max_source_positions=None if max_positions is None else int(max_positions),
        is_encoder_decoder=True,
    )


def generation_defaults(generation: dict[str, Any]) -> GenerationDefaults:
    """The manifest's generation section from the checkpoint's generation config."""
    return GenerationDefaults.from_dict(generation)


def _translation_directions(checkpoint: Checkpoint) -> list[tuple[str, str, dict[str, Any]]]:
    """(source, target, entry) of every ``translation_X_to_Y`` in task_specific_params."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    for key, entry in (checkpoint.config.get("task_specific_params") or {}).items():
        parts = key.split("_")
        if len(parts) == 4 and parts[0] == "translation" and parts[2] == "to":
            out.append((parts[1], parts[3], entry if isinstance(entry, dict) else {}))
    return out


def _forced_bos_languages(checkpoint: Checkpoint, tokenizer: Any) -> Languages | None:
    """A multi-target checkpoint (one Marian model, the target chosen by forcing its
    language token as the first generated token): every ``translation_X_to_Y`` entry of
    task_specific_params names the ``forced_bos_token_id`` of Y. None for other checkpoints.

    Source languages get their token too where the vocabulary has one (the same token the
    language has as a target, else ``__X__``); the tokenizer is never asked for src_lang.
    """
    directions = _translation_directions(checkpoint)
    if not directions or not all("forced_bos_token_id" in e for _, _, e in directions):
        return None
    vocab_size = int(checkpoint.config["vocab_size"])
    tokens: dict[str, str] = {}
    for source, target, entry in directions:
        token_id = int(entry["forced_bos_token_id"])
        if not 0 <= token_id < vocab_size:
            raise SourceError(
                f"SOURCE translation_{source}_to_{target}: forced_bos_token_id {token_id} "
                f"is outside the vocabulary ({vocab_size})"
            )
        token = str(tokenizer.convert_ids_to_tokens(token_id))
        if tokens.setdefault(target, token) != token:
            raise SourceError(
                f"SOURCE task_specific_params force {tokens[target]!r} and {token!r} "
                f"for the same target {target!r}"
            )
    for source, _, _ in directions:
        candidate = f"__{source}__"
        if source not in tokens and tokenizer.convert_tokens_to_ids(candidate) not in (
            None,
            tokenizer.unk_token_id,
        ):
            tokens[source] = candidate
    pairs = list(dict.fromkeys(f"{s}{PAIR_SEPARATOR}{t}" for s, t, _ in directions))
    return Languages(
        source=sorted({s for s, _, _ in directions}),
        target=sorted({t for _, t, _ in directions}),
        tokens=dict(sorted(tokens.items())),
        pairs=sorted(pairs),
    )


def languages(checkpoint: Checkpoint, tokenizer: Any) -> Languages:
    """Source/target languages, and the language-token map of multilingual models."""
    lang_tokens = getattr(tokenizer, "lang_code_to_token", None)
    if isinstance(lang_tokens, dict) and lang_tokens:
        vocab_size = int(checkpoint.config["vocab_size"])
        tokens = {
            code: tok
            for code, tok in lang_tokens.items()
            if 0 <= tokenizer.convert_tokens_to_ids(tok) < vocab_size
        }
        codes = sorted(tokens)
        return Languages(source=codes, target=codes, tokens=tokens)
    if hasattr(tokenizer, "src_lang"):
        # NLLB / mBART: the language codes ("eng_Latn", "en_XX") are themselves tokens.
        specials = getattr(tokenizer, "additional_special_tokens", None) or []
        codes = sorted(str(t) for t in specials if LANG_CODE_TOKEN.match(str(t)))
        if codes:
            return Languages(source=codes, target=codes, tokens={c: c for c in codes})
    multi_target = _forced_bos_languages(checkpoint, tokenizer)
    if multi_target is not None:
        return multi_target
    source = getattr(tokenizer, "source_lang", None) or tokenizer.init_kwargs.get("source_lang")
    target = getattr(tokenizer, "target_lang", None) or tokenizer.init_kwargs.get("target_lang")
    if source and target:
        return Languages(source=[str(source)], target=[str(target)])
    for source, target, _ in _translation_directions(checkpoint):
        return Languages(source=[source], target=[target])
    return Languages()


def task_prefix(checkpoint: Checkpoint, task: str, langs: Languages) -> str:
    """The input prefix from task_specific_params (T5: "summarize: ", "translate ...: ")."""
    params: dict[str, Any] = checkpoint.config.get("task_specific_params") or {}
    if task == "translation":
        keys = [k for k in params if k.startswith("translation")]
        if langs.source and langs.target and not langs.tokens:
            wanted = f"translation_{langs.source[0]}_to_{langs.target[0]}"
            keys = [k for k in keys if k == wanted] or keys
        entry = params[keys[0]] if keys else {}
    else:
        entry = params.get(task) or (params.get("conversational") if task == "chat" else None) or {}
    return str(entry.get("prefix") or "")


def chat_config(checkpoint: Checkpoint, task: str) -> ChatConfig | None:
    """Chat rendering settings for chat packages.

    A checkpoint trained with its own rendering records it in
    ``task_specific_params.conversational`` (``turn_separator``, ``max_history_turns``);
    otherwise the family's convention applies.
    """
    if task != "chat":
        return None
    params: dict[str, Any] = checkpoint.config.get("task_specific_params") or {}
    declared: dict[str, Any] = params.get("conversational") or {}
    chat = ChatConfig(turn_separator=TURN_SEPARATORS.get(checkpoint.family, "\n"))
    updates = {k: declared[k] for k in ("turn_separator", "max_history_turns") if k in declared}
    return ChatConfig.model_validate({**chat.model_dump(), **updates}) if updates else chat


def load_tokenizer(path: Path) -> Any:
    """The checkpoint's tokenizer (fast where the checkpoint has one); SourceError if none."""
    from transformers import AutoTokenizer

    try:
        with quiet():
            return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # transformers raises OSError/ValueError/TypeError here
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"SOURCE {path} has no loadable tokenizer: {reason}") from exc


def write_tokenizer_dir(checkpoint: Checkpoint, tokenizer: Any, dst: Path) -> None:
    """tokenizer.save_pretrained output + config.json + generation_config.json."""
    from transformers import AutoConfig, GenerationConfig

    dst.mkdir(parents=True, exist_ok=True)
    with quiet():
        tokenizer.save_pretrained(dst)
        shutil.copyfile(checkpoint.path / "config.json", dst / "config.json")
        if (checkpoint.path / "generation_config.json").is_file():
            shutil.copyfile(
                checkpoint.path / "generation_config.json", dst / "generation_config.json"
            )
        else:
            config = AutoConfig.from_pretrained(checkpoint.path)
            GenerationConfig.from_model_config(config).save_pretrained(dst)
