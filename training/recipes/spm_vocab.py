"""Train a joint SentencePiece model and write it as MarianTokenizer files.

The id layout follows the opus-mt Marian checkpoints: ``</s>`` is 0, ``<unk>`` is 1, the
pieces follow, and ``<pad>`` (also the decoder start token) is the last id.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm
from transformers import MarianTokenizer

EOS, UNK, PAD = "</s>", "<unk>", "<pad>"


def train_sentencepiece(
    texts: Iterable[str],
    vocab_size: int,
    model_type: str = "unigram",
    user_symbols: Sequence[str] = (),
) -> bytes:
    """Train a SentencePiece model on ``texts`` and return the serialized model.

    ``user_symbols`` (e.g. a turn separator) are always kept as single pieces.
    """
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        eos_id=0,
        unk_id=1,
        bos_id=-1,
        pad_id=-1,
        eos_piece=EOS,
        unk_piece=UNK,
        # One thread keeps the result identical from run to run.
        num_threads=1,
        hard_vocab_limit=False,
        user_defined_symbols=list(user_symbols),
        minloglevel=2,
    )
    return model.getvalue()


def write_marian_tokenizer(
    spm_model: bytes,
    out_dir: Path,
    source_lang: str,
    target_lang: str,
    special_tokens: Sequence[str] = (),
) -> MarianTokenizer:
    """Write source.spm/target.spm/vocab.json (one joint vocabulary) and load them back.

    ``special_tokens`` (pieces of the model, e.g. language tokens) are skipped when decoding.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    processor = spm.SentencePieceProcessor(model_proto=spm_model)
    vocab = {processor.id_to_piece(i): i for i in range(processor.get_piece_size())}
    vocab[PAD] = len(vocab)
    for name in ("source.spm", "target.spm"):
        (out_dir / name).write_bytes(spm_model)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0))
    tokenizer = MarianTokenizer(
        source_spm=str(out_dir / "source.spm"),
        target_spm=str(out_dir / "target.spm"),
        vocab=str(out_dir / "vocab.json"),
        source_lang=source_lang,
        target_lang=target_lang,
        additional_special_tokens=list(special_tokens),
    )
    tokenizer.save_pretrained(str(out_dir))
    return tokenizer


def build_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    out_dir: Path,
    source_lang: str,
    target_lang: str,
    user_symbols: Sequence[str] = (),
) -> MarianTokenizer:
    """Train the joint SentencePiece model on ``texts``; save a MarianTokenizer to ``out_dir``."""
    model = train_sentencepiece(texts, vocab_size, user_symbols=user_symbols)
    return write_marian_tokenizer(model, out_dir, source_lang, target_lang)
