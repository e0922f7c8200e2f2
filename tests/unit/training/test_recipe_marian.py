"""The Marian training recipe: tokenizer, batching, schedule, averaging and a tiny real run."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from training.recipes.checkpointing import average_checkpoints, prune_checkpoints  # noqa: E402
from training.recipes.data import Example, read_parallel, token_batches  # noqa: E402
from training.recipes.spm_vocab import build_tokenizer  # noqa: E402
from training.recipes.train_marian import (  # noqa: E402
    TrainConfig,
    inverse_sqrt_lr,
    parse_args,
    run,
)

EN = {"the": "der", "red": "rote", "big": "große", "small": "kleine", "old": "alte"}
NOUNS = {"dog": "Hund", "man": "Mann", "bicycle": "Fahrrad", "boy": "Junge", "car": "Wagen"}
VERBS = {"runs": "läuft", "sleeps": "schläft", "waits": "wartet", "jumps": "springt"}


def _toy_pairs() -> list[tuple[str, str]]:
    pairs = []
    for adj, noun, verb in itertools.product(list(EN)[1:], NOUNS, VERBS):
        pairs.append((f"The {adj} {noun} {verb}.", f"Der {EN[adj]} {NOUNS[noun]} {VERBS[verb]}."))
    return pairs


def _write(path: Path, lines: list[str]) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def toy_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Multi30k-shaped folder of gzip files with a small word-for-word en->de corpus."""
    root = tmp_path_factory.mktemp("toy_multi30k")
    pairs = _toy_pairs()
    random.Random(0).shuffle(pairs)
    for split, chunk in (("train", pairs), ("val", pairs[:16])):
        _write(root / f"{split}.en.gz", [s for s, _ in chunk])
        _write(root / f"{split}.de.gz", [t for _, t in chunk])
    return root


def test_read_parallel_reads_gzip_and_limits(toy_corpus: Path) -> None:
    src, tgt = read_parallel(toy_corpus, "train", "en", "de", limit=5)
    assert len(src) == len(tgt) == 5
    assert src[0].startswith("The ") and tgt[0].startswith("Der ")


def test_tokenizer_has_opus_mt_id_layout(toy_corpus: Path, tmp_path: Path) -> None:
    src, tgt = read_parallel(toy_corpus, "train", "en", "de")
    tok = build_tokenizer(src + tgt, 60, tmp_path / "tok", "en", "de")
    assert tok.eos_token_id == 0
    assert tok.unk_token_id == 1
    assert tok.pad_token_id == len(tok) - 1
    ids = tok("The red dog runs.")["input_ids"]
    assert ids[-1] == tok.eos_token_id and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "The red dog runs."
    reloaded = transformers.MarianTokenizer.from_pretrained(str(tmp_path / "tok"))
    assert reloaded("Der Hund läuft.")["input_ids"] == tok("Der Hund läuft.")["input_ids"]


def test_token_batches_cover_every_example_within_budget() -> None:
    rng = random.Random(3)
    examples = [
        Example(src=[5] * rng.randint(1, 30), tgt=[6] * rng.randint(1, 30)) for _ in range(500)
    ]
    batches = list(token_batches(examples, 200, random.Random(1)))
    assert sorted(id(e) for b in batches for e in b) == sorted(id(e) for e in examples)
    for b in batches:
        cost = len(b) * (max(len(e.src) for e in b) + max(len(e.tgt) for e in b))
        assert cost <= 200 or len(b) == 1


def test_inverse_sqrt_schedule_peaks_at_warmup() -> None:
    assert inverse_sqrt_lr(400, 1e-3, 800) == pytest.approx(5e-4)
    assert inverse_sqrt_lr(800, 1e-3, 800) == pytest.approx(1e-3)
    assert inverse_sqrt_lr(3200, 1e-3, 800) == pytest.approx(5e-4)


def test_average_and_prune_checkpoints(tmp_path: Path) -> None:
    paths = []
    for i in range(4):
        path = tmp_path / f"epoch{i + 1:03d}.pt"
        torch.save({"w": torch.full((2,), float(i)), "n": torch.tensor([7])}, path)
        paths.append(path)
    avg = average_checkpoints(paths[-2:])
    assert torch.equal(avg["w"], torch.tensor([2.5, 2.5]))
    assert torch.equal(avg["n"], torch.tensor([7]))
    kept = prune_checkpoints(paths, keep_last=2, keep=1)
    assert kept == paths[-2:]
    assert paths[0].exists() and not paths[1].exists()


def test_parse_args_maps_flags() -> None:
    config = parse_args(
        ["--data-dir", "d", "--out", "o", "--d-model", "64", "--average-last", "2,4", "--bf16"]
    )
    assert config.d_model == 64 and config.average_last == [2, 4] and config.bf16


@pytest.mark.slow
def test_tiny_run_produces_loadable_checkpoint(toy_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    config = TrainConfig(
        data_dir=toy_corpus,
        out=out,
        work_dir=tmp_path / "work",
        vocab_size=60,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        heads=2,
        ffn_dim=64,
        warmup_steps=10,
        max_tokens=300,
        max_epochs=3,
        average_last=[2],
        lr=3e-3,
        eval_batch_size=8,
        threads=1,
    )
    summary = run(config)
    assert summary["steps"] and len(summary["epochs"]) == 3  # type: ignore[arg-type]
    assert "average of last 2" in summary["candidates"]  # type: ignore[operator]
    assert json.loads((out / "training.json").read_text())["selected"] == summary["selected"]
    model = transformers.MarianMTModel.from_pretrained(str(out))
    tok = transformers.MarianTokenizer.from_pretrained(str(out))
    assert model.generation_config.num_beams == 4
    assert model.generation_config.bad_words_ids == [[tok.pad_token_id]]
    assert model.config.decoder_start_token_id == tok.pad_token_id
    enc = tok(["The red dog runs."], return_tensors="pt")
    gen = model.generate(**enc, max_new_tokens=12)
    assert gen.shape[0] == 1 and tok.pad_token_id not in gen[0, 1:].tolist()
    # Epoch checkpoints beyond the kept ones are gone; the last ones stay for averaging.
    assert sorted(p.name for p in (tmp_path / "work").glob("epoch*.pt"))[-1] == "epoch003.pt"
