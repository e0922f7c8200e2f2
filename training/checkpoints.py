"""Locally trained seq2seq checkpoints for tests and benchmarks (no hub access needed).

``python -m training.checkpoints --out DIR --family FAMILY [--size tiny|full]`` writes a normal
Hugging Face checkpoint dir (config.json, model.safetensors, generation_config.json, tokenizer
files) whose tokenizer was trained here on generated English, German and French captions
(``training.checkpoint_corpus``: a seeded grammar, so no data folder is needed) and whose model
was briefly trained on a deterministic task over them (see ``training.checkpoint_recipes``) so
that its output depends on its input.

``ensure_checkpoint(family, size)`` builds once into ``.cache/checkpoints/`` and reuses it.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import inspect
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

from training.checkpoint_corpus import LANGUAGES, sentences
from training.checkpoint_corpus import SEED as CORPUS_SEED
from training.checkpoint_recipes import FAMILIES, RECIPES, SIZES

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "checkpoints"
SEED = 1234
# Generated sentences per language: tokenizer training corpus / training examples.
TOKENIZER_SENTENCES = {"tiny": 4000, "full": 29000}
TRAIN_SENTENCES = 4000
TRAIN_THREADS = {"tiny": 1, "full": 2}
# Held-out validation sentences decoded after training to prove output depends on input.
PROBE_SENTENCES = 8
_LIBRARIES = ("torch", "transformers", "tokenizers", "sentencepiece")


def fingerprint(family: str, size: str) -> str:
    """The cache key: hash of what shapes this family/size's checkpoint, and library versions.

    Only this family's recipe enters the hash (plus the shared corpus, training and build
    code), so changing one family's recipe does not invalidate the others' cached checkpoints.
    """
    _check(family, size)
    from training import (
        checkpoint_corpus,
        checkpoint_tokenizers,
        checkpoint_train,
        checkpoint_widen,
    )

    recipe = RECIPES[family]
    parts = [
        f"{family}:{size}:{SEED}:{TOKENIZER_SENTENCES[size]}:{TRAIN_SENTENCES}:{PROBE_SENTENCES}",
        repr(recipe.dims[size]),
        repr(recipe.training(size)),
        repr(recipe.growth(size)),
        repr(recipe.sinusoidal_positions),
        json.dumps(recipe.generation, sort_keys=True),
        recipe.make_config(recipe.dims[size], recipe.dims[size].vocab, 0.0).to_json_string(),
        inspect.getsource(recipe.make_examples),
        inspect.getsource(recipe.build_tokenizer),
        inspect.getsource(build_checkpoint),
        inspect.getsource(checkpoint_corpus),
        inspect.getsource(checkpoint_train),
        inspect.getsource(checkpoint_widen),
    ]
    parts += [
        inspect.getsource(helper)
        for name, helper in sorted(vars(checkpoint_tokenizers).items())
        if not name.startswith("build_") and inspect.isfunction(helper)
    ]
    parts += [f"{library}={metadata.version(library)}" for library in _LIBRARIES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _check(family: str, size: str) -> None:
    if family not in RECIPES:
        raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {', '.join(SIZES)}")


def build_checkpoint(
    family: str,
    size: str,
    out_dir: str | Path,
    allow_untrained: bool = False,
) -> Path:
    """Train a tokenizer and a model of ``family`` / ``size`` and save them into ``out_dir``.

    Both learn from the generated corpus (``training.checkpoint_corpus``, train split); the
    probe decodes held-out sentences of its val split.

    Raises ``UntrainedCheckpointError`` (nothing saved) when the trained model gives one
    output for every held-out input, unless ``allow_untrained`` (then recipe.json says so).
    """
    _check(family, size)
    # Imported here so ``--help`` and cache hits stay fast.
    import torch
    from transformers import AutoModelForSeq2SeqLM, GenerationConfig

    from training.checkpoint_tokenizers import model_vocab_size
    from training.checkpoint_train import (
        encode_examples,
        init_sinusoidal_positions,
        probe_input_dependence,
        reuse_large_allocations,
        train,
    )
    from training.checkpoint_widen import narrow_dims, narrow_positions, perturb, widen_into

    started = time.monotonic()
    # One thread: on a shared, busy 2-core machine two OpenMP threads spin against each other
    # and run ~10x slower than one.
    torch.set_num_threads(int(os.environ.get("S2S_TRAIN_THREADS", TRAIN_THREADS[size])))
    recipe = RECIPES[family]
    dims, growth = recipe.dims[size], recipe.growth(size)
    training = growth.training if growth is not None else recipe.training(size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if size == "full":
        reuse_large_allocations()

    corpus = [s for lang in LANGUAGES for s in sentences(lang, "train", TOKENIZER_SENTENCES[size])]
    tokenizer = recipe.build_tokenizer(out, corpus, dims.vocab)
    vocab = model_vocab_size(tokenizer)

    config = recipe.make_config(dims, vocab, training.dropout)
    torch.manual_seed(SEED)
    model = AutoModelForSeq2SeqLM.from_config(config)
    # The model that learns the task: the checkpoint itself, or the narrow one it grows from.
    learner = model
    if growth is not None:
        learner = AutoModelForSeq2SeqLM.from_config(
            recipe.make_config(narrow_dims(dims, growth.factor), vocab, training.dropout)
        )
    if recipe.sinusoidal_positions:
        init_sinusoidal_positions(learner)
    if growth is not None:
        narrow_positions(learner, model, growth.factor)

    rng = random.Random(SEED)
    texts = [s for lang in LANGUAGES for s in sentences(lang, "train", TRAIN_SENTENCES)]
    rng.shuffle(texts)
    pairs = encode_examples(tokenizer, recipe.make_examples(texts, rng), training.max_tokens)
    pad_id = config.pad_token_id
    assert pad_id is not None, f"{family} config has no pad_token_id"
    final_loss = train(learner, pairs, pad_id, training, SEED)
    held_out = recipe.make_examples(sentences("en", "val", PROBE_SENTENCES), rng)

    grown_from: dict[str, object] | None = None
    if growth is not None:
        grown_from = {
            "factor": growth.factor,
            "d_model": learner.config.d_model,
            "parameters": learner.num_parameters(),
            "noise": growth.noise,
            "probe": probe_input_dependence(learner, tokenizer, held_out, strict=False),
        }
        widen_into(learner, model, growth.factor)
        perturb(model, growth.noise, SEED)
        del learner

    values = dict(recipe.generation)
    if values.get("bad_words_ids") == "pad":
        values["bad_words_ids"] = [[pad_id]]
    model.generation_config = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=getattr(config, "bos_token_id", None),
        eos_token_id=config.eos_token_id,
        pad_token_id=pad_id,
        **values,
    )
    probe = probe_input_dependence(model, tokenizer, held_out, strict=not allow_untrained)
    model.save_pretrained(out, safe_serialization=True)
    recipe_info = {
        "family": family,
        "size": size,
        "seed": SEED,
        "fingerprint": fingerprint(family, size),
        "task": recipe.make_examples.__doc__,
        "corpus": {
            "source": "training.checkpoint_corpus",
            "seed": CORPUS_SEED,
            "tokenizer_sentences_per_language": TOKENIZER_SENTENCES[size],
            "train_sentences_per_language": TRAIN_SENTENCES,
        },
        "steps": training.steps,
        "final_loss": round(final_loss, 4),
        "probe": probe,
        "grown_from": grown_from,
        "parameters": model.num_parameters(),
        "build_seconds": round(time.monotonic() - started, 1),
        "libraries": {lib: metadata.version(lib) for lib in _LIBRARIES},
    }
    (out / "recipe.json").write_text(json.dumps(recipe_info, indent=1), encoding="utf-8")
    return out


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_checkpoint(
    family: str,
    size: str = "tiny",
    allow_untrained: bool = False,
) -> Path:
    """Return the cached checkpoint dir of ``family`` / ``size``, building it once if missing.

    ``allow_untrained`` is passed to ``build_checkpoint`` (benchmarks, whose outputs have a
    fixed length, can measure speed on a model that has not learned its task yet).

    Builds into a temporary dir beside the cache entry and renames it into place, under a file
    lock, so concurrent processes never see a half-written checkpoint or build it twice.
    """
    _check(family, size)
    target = CACHE_DIR / f"{family}-{size}-{fingerprint(family, size)}"
    if (target / "config.json").is_file():
        return target
    with _file_lock(target.with_name(target.name + ".lock")):
        if (target / "config.json").is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=CACHE_DIR))
        try:
            build_checkpoint(family, size, staging, allow_untrained=allow_untrained)
            os.chmod(staging, 0o755)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: build one checkpoint into ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m training.checkpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=Path, help="checkpoint dir to write")
    parser.add_argument("--family", required=True, choices=FAMILIES)
    parser.add_argument("--size", default="tiny", choices=SIZES)
    parser.add_argument(
        "--allow-untrained",
        action="store_true",
        help="save even when every held-out input gives the same output (recipe.json says so)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    from training.checkpoint_train import UntrainedCheckpointError

    try:
        out = build_checkpoint(
            args.family, args.size, args.out, allow_untrained=args.allow_untrained
        )
    except UntrainedCheckpointError as exc:
        print(
            f"error: {exc}\n(--allow-untrained saves it anyway, marked input_dependent: false "
            "in recipe.json: fine for fixed-length speed benchmarks, not for quality checks)",
            file=sys.stderr,
        )
        return 1
    print(
        f"wrote {args.family}-{args.size} checkpoint to {out} in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
