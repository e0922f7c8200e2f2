"""A tiny multi-target Marian checkpoint in the format of the default translator's recipe.

``training.recipes.train_translate`` trains one MarianMT for en<->de and en<->fr whose
decoder's first token is the target language's token (``__en__``, ``__de__``,
``__fr__``; forced BOS), with ``task_specific_params`` naming each trained direction and
its token. This module builds a checkpoint of exactly that format, with the recipe's own
tokenizer writer, model builder, language tokens and directions, but tiny and untrained
(its outputs are arbitrary): tests use it for the export, runtime and routing of such a
package, never for quality.

``ensure_multi_target_marian()`` builds once into ``.cache/checkpoints/`` and reuses it.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from training.checkpoint_corpus import sentences
from training.checkpoints import CACHE_DIR, SEED, _file_lock

TOKENIZER_SENTENCES = 600
VOCAB_SIZE = 400
MAX_LENGTH = 32
_LIBRARIES = ("torch", "transformers", "sentencepiece")


def build_multi_target_marian(out_dir: Path) -> Path:
    """Write the tiny untrained multi-target checkpoint (config, weights, generation
    config, Marian tokenizer files) into ``out_dir``."""
    import torch

    from training.recipes.spm_vocab import train_sentencepiece, write_marian_tokenizer
    from training.recipes.train_marian import build_model, generation_config
    from training.recipes.train_translate import (
        DIRECTIONS,
        LANGUAGES,
        TranslateConfig,
        language_token,
        marian_config,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    texts = [s for lang in LANGUAGES for s in sentences(lang, "train", TOKENIZER_SENTENCES)]
    tokens = [language_token(lang) for lang in LANGUAGES]
    spm_model = train_sentencepiece(texts, VOCAB_SIZE, user_symbols=tokens)
    tokenizer = write_marian_tokenizer(
        spm_model, out_dir / "tokenizer", "en", "de", special_tokens=tokens
    )
    config = TranslateConfig(
        data_dir=Path(),
        out=out_dir,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        heads=2,
        ffn_dim=64,
        dropout=0.0,
        max_len=MAX_LENGTH,
    )
    torch.manual_seed(SEED)
    model = build_model(marian_config(config), tokenizer)
    vocab = tokenizer.get_vocab()
    model.config.task_specific_params = {
        f"translation_{d.source}_to_{d.target}": {
            "forced_bos_token_id": vocab[language_token(d.target)]
        }
        for d in DIRECTIONS
    }
    model.generation_config = generation_config(model, MAX_LENGTH)
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    shutil.rmtree(out_dir / "tokenizer")
    return out_dir


def fingerprint() -> str:
    """The cache key: this builder, the recipe code it uses, the corpus, library versions."""
    from training import checkpoint_corpus
    from training.recipes import spm_vocab, train_marian, train_translate

    parts = [f"{SEED}:{TOKENIZER_SENTENCES}:{VOCAB_SIZE}:{MAX_LENGTH}"]
    parts += [
        inspect.getsource(module)
        for module in (checkpoint_corpus, spm_vocab, train_marian, train_translate)
    ]
    parts.append(inspect.getsource(build_multi_target_marian))
    parts += [f"{library}={metadata.version(library)}" for library in _LIBRARIES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def ensure_multi_target_marian() -> Path:
    """The cached checkpoint dir, built once (atomically, under a file lock)."""
    target = CACHE_DIR / f"marian-multi-target-tiny-{fingerprint()}"
    if (target / "config.json").is_file():
        return target
    with _file_lock(target.with_name(target.name + ".lock")):
        if (target / "config.json").is_file():
            return target
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=CACHE_DIR))
        try:
            build_multi_target_marian(staging)
            os.chmod(staging, 0o755)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target
