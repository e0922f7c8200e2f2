"""Tokenizers trained here on local text, written in the file layout each family's HF class loads.

SentencePiece for Marian, T5, Pegasus and M2M100; byte-level BPE (``tokenizers``) for BART and
BlenderBot. Each builder writes the files, then round-trips them through the slow class's
``save_pretrained`` (and the fast class's, where one exists) so ``AutoTokenizer`` loads both.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    BartTokenizer,
    BartTokenizerFast,
    BlenderbotTokenizer,
    BlenderbotTokenizerFast,
    M2M100Tokenizer,
    MarianTokenizer,
    PegasusTokenizer,
    PegasusTokenizerFast,
    PreTrainedTokenizerBase,
    T5Tokenizer,
    T5TokenizerFast,
)
from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

T5_EXTRA_IDS = 100
M2M100_LANGUAGE_CODES = "m2m100"


def _train_spm(
    sentences: Sequence[str],
    model_path: Path,
    vocab_size: int,
    model_type: str,
    special_ids: dict[str, int],
) -> Path:
    """Train a SentencePiece model into ``model_path`` (up to ``vocab_size`` pieces)."""
    prefix = model_path.parent / "spm_training"
    options: dict[str, Any] = {f"{name}_id": value for name, value in special_ids.items()}
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_prefix=str(prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        # A corpus can be too small for a benchmark-sized vocab; pad afterwards instead.
        hard_vocab_limit=False,
        num_threads=2,
        shuffle_input_sentence=False,
        minloglevel=2,
        **options,
    )
    Path(f"{prefix}.model").rename(model_path)
    Path(f"{prefix}.vocab").unlink(missing_ok=True)
    return model_path


def _pad_spm(model_path: Path, total: int) -> None:
    """Append UNUSED pieces (never produced by encoding) until the model has ``total`` pieces."""
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(model_path.read_bytes())
    for index in range(len(proto.pieces), total):
        piece = proto.pieces.add()
        piece.piece = f"<unused_{index}>"
        piece.score = -1e9
        piece.type = sentencepiece_model_pb2.ModelProto.SentencePiece.UNUSED  # type: ignore[attr-defined]
    model_path.write_bytes(proto.SerializeToString())


def _spm_pieces(model_path: Path) -> list[str]:
    """The ordinary (not control / unknown) pieces of a SentencePiece model, in id order."""
    processor = spm.SentencePieceProcessor(model_file=str(model_path))
    return [
        processor.id_to_piece(i)
        for i in range(processor.get_piece_size())
        if not (processor.is_control(i) or processor.is_unknown(i) or processor.is_unused(i))
    ]


def _pad_vocab(vocab: dict[str, int], total: int) -> None:
    """Add placeholder entries so a JSON vocab reaches ``total`` ids (benchmark-sized models)."""
    index = 0
    while len(vocab) < total:
        token = f"<unused_{index}>"
        if token not in vocab:
            vocab[token] = len(vocab)
        index += 1


def model_vocab_size(tokenizer: PreTrainedTokenizerBase) -> int:
    """Rows the model's embedding needs for every id this tokenizer can produce."""
    if isinstance(tokenizer, M2M100Tokenizer):
        # Language tokens and fairseq's "madeup words" sit after the JSON vocab (as in m2m100_418M).
        return len(tokenizer.encoder) + len(tokenizer.lang_token_to_id) + tokenizer.num_madeup_words
    return len(tokenizer)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def build_marian(out_dir: Path, corpus: Sequence[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """One SentencePiece for both sides, ``vocab.json``: ``</s>`` 0, ``<unk>`` 1, ``<pad>`` last."""
    with tempfile.TemporaryDirectory() as tmp:
        model = _train_spm(
            corpus,
            Path(tmp) / "spm.model",
            vocab_size - 3,
            "unigram",
            {"unk": 0, "bos": 1, "eos": 2, "pad": -1},
        )
        vocab = {"</s>": 0, "<unk>": 1}
        for piece in _spm_pieces(model):
            vocab.setdefault(piece, len(vocab))
        _pad_vocab(vocab, vocab_size - 1)
        vocab["<pad>"] = len(vocab)
        staging = Path(tmp) / "files"
        staging.mkdir()
        for name in ("source.spm", "target.spm"):
            (staging / name).write_bytes(model.read_bytes())
        _write_json(staging / "vocab.json", vocab)
        tokenizer = MarianTokenizer(
            str(staging / "source.spm"),
            str(staging / "target.spm"),
            str(staging / "vocab.json"),
            source_lang="en",
            target_lang="de",
        )
        tokenizer.save_pretrained(out_dir)
    return MarianTokenizer.from_pretrained(out_dir)


def build_t5(out_dir: Path, corpus: Sequence[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """``spiece.model`` (pad 0, eos 1, unk 2) with 100 ``<extra_id_N>`` sentinels on top."""
    with tempfile.TemporaryDirectory() as tmp:
        model = _train_spm(
            corpus,
            Path(tmp) / "spiece.model",
            vocab_size - T5_EXTRA_IDS,
            "unigram",
            {"pad": 0, "eos": 1, "unk": 2, "bos": -1},
        )
        _pad_spm(model, vocab_size - T5_EXTRA_IDS)
        slow = T5Tokenizer(str(model), extra_ids=T5_EXTRA_IDS, legacy=False)
        slow.save_pretrained(out_dir)
    T5TokenizerFast.from_pretrained(out_dir, from_slow=True, legacy=False).save_pretrained(out_dir)
    return T5TokenizerFast.from_pretrained(out_dir)


def build_pegasus(out_dir: Path, corpus: Sequence[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """``spiece.model`` (pad 0, eos 1, unk 2) shifted by Pegasus's offset of 103 reserved ids."""
    offset = 103
    with tempfile.TemporaryDirectory() as tmp:
        model = _train_spm(
            corpus,
            Path(tmp) / "spiece.model",
            vocab_size - offset,
            "unigram",
            {"pad": 0, "eos": 1, "unk": 2, "bos": -1},
        )
        _pad_spm(model, vocab_size - offset)
        slow = PegasusTokenizer(str(model), offset=offset)
        slow.save_pretrained(out_dir)
    PegasusTokenizerFast.from_pretrained(out_dir, from_slow=True).save_pretrained(out_dir)
    return PegasusTokenizerFast.from_pretrained(out_dir)


def build_m2m100(out_dir: Path, corpus: Sequence[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """``sentencepiece.bpe.model`` + ``vocab.json``; the tokenizer appends ``__xx__`` tokens."""
    with tempfile.TemporaryDirectory() as tmp:
        model = _train_spm(
            corpus,
            Path(tmp) / "sentencepiece.bpe.model",
            vocab_size,
            "bpe",
            {"unk": 0, "bos": 1, "eos": 2, "pad": -1},
        )
        vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
        for piece in _spm_pieces(model):
            vocab.setdefault(piece, len(vocab))
        _pad_vocab(vocab, vocab_size)
        _write_json(Path(tmp) / "vocab.json", vocab)
        # Listed explicitly, as in the released m2m100 tokenizer_config.json: the class's own
        # default leaves language tokens out of the special tokens, so decode would keep them.
        languages = FAIRSEQ_LANGUAGE_CODES[M2M100_LANGUAGE_CODES]
        slow = M2M100Tokenizer(
            str(Path(tmp) / "vocab.json"),
            str(model),
            additional_special_tokens=[f"__{code}__" for code in languages],
            src_lang="en",
            tgt_lang="de",
            language_codes=M2M100_LANGUAGE_CODES,
        )
        slow.save_pretrained(out_dir)
    return M2M100Tokenizer.from_pretrained(out_dir)


def _train_byte_bpe(
    corpus: Sequence[str], vocab_size: int, specials: list[str], directory: Path
) -> tuple[Path, Path]:
    """Train a byte-level BPE; write ``vocab.json`` (padded to ``vocab_size``), ``merges.txt``."""
    bpe = ByteLevelBPETokenizer(add_prefix_space=True)
    bpe.train_from_iterator(
        corpus, vocab_size=vocab_size, min_frequency=2, special_tokens=specials, show_progress=False
    )
    vocab_path, merges_path = (Path(p) for p in bpe.save_model(str(directory)))
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    _pad_vocab(vocab, vocab_size)
    _write_json(vocab_path, vocab)
    return vocab_path, merges_path


def build_bart(out_dir: Path, corpus: Sequence[str], vocab_size: int) -> PreTrainedTokenizerBase:
    """Byte-level BPE with BART's ids: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _train_byte_bpe(
            corpus, vocab_size, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], Path(tmp)
        )
        BartTokenizer(str(vocab), str(merges)).save_pretrained(out_dir)
    BartTokenizerFast.from_pretrained(out_dir, from_slow=True).save_pretrained(out_dir)
    return BartTokenizerFast.from_pretrained(out_dir)


def build_blenderbot(
    out_dir: Path, corpus: Sequence[str], vocab_size: int
) -> PreTrainedTokenizerBase:
    """Byte-level BPE with BlenderBot's ids: ``<pad>``=0, ``<s>``=1, ``</s>``=2, ``<unk>``=3."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab, merges = _train_byte_bpe(
            corpus, vocab_size, ["<pad>", "<s>", "</s>", "<unk>", "<mask>"], Path(tmp)
        )
        BlenderbotTokenizer(str(vocab), str(merges), add_prefix_space=True).save_pretrained(out_dir)
    BlenderbotTokenizerFast.from_pretrained(out_dir, from_slow=True).save_pretrained(out_dir)
    return BlenderbotTokenizerFast.from_pretrained(out_dir)
