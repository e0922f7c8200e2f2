"""The multilingual translator recipe: directions, language tokens, phases that resume."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from training.recipes.train_translate import (  # noqa: E402
    DIRECTIONS,
    Direction,
    TranslateConfig,
    build_or_load_tokenizer,
    language_token_id,
    read_dev,
    read_train,
    run,
    tokenize,
)

EN = ["Hello.", "Where is the station?", "I like tea.", "The dog runs.", "Thank you."]
DE = ["Hallo.", "Wo ist der Bahnhof?", "Ich mag Tee.", "Der Hund rennt.", "Danke."]
FR = ["Bonjour.", "Où est la gare ?", "J'aime le thé.", "Le chien court.", "Merci."]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for split in ("train", "dev"):
        _write(root / "tatoeba" / f"{split}.en-de.en.gz", EN * 4)
        _write(root / "tatoeba" / f"{split}.en-de.de.gz", DE * 4)
        _write(root / "tatoeba" / f"{split}.en-fr.en.gz", EN * 4)
        _write(root / "tatoeba" / f"{split}.en-fr.fr.gz", FR * 4)
    for lang, lines in (("en", EN), ("de", DE), ("fr", FR)):
        _write(root / "multi30k" / f"train.{lang}.gz", lines)
    return root


def _config(data_dir: Path, work: Path, steps: int, resume: bool) -> TranslateConfig:
    return TranslateConfig(
        data_dir=data_dir,
        out=work / "checkpoint",
        work_dir=work,
        vocab_size=120,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        heads=2,
        ffn_dim=32,
        max_tokens=200,
        warmup_steps=10,
        time_budget_min=10,
        checkpoint_min=10,
        max_steps=steps,
        dev_per_direction=3,
        threads=1,
        resume=resume,
    )


def test_every_pair_trains_both_ways_with_the_target_language_token(
    data_dir: Path, tmp_path: Path
) -> None:
    config = _config(data_dir, tmp_path / "work", 1, False)
    train = read_train(data_dir, None)
    assert (
        set(train)
        == set(DIRECTIONS)
        == {
            Direction("en", "de"),
            Direction("de", "en"),
            Direction("en", "fr"),
            Direction("fr", "en"),
        }
    )
    assert len(train[Direction("en", "de")]) == 25  # Tatoeba 20 + Multi30k 5
    assert train[Direction("de", "en")][0] == ("Hallo.", "Hello.")
    tokenizer = build_or_load_tokenizer(config, train)
    examples = tokenize(tokenizer, train, 32)
    first_tokens = {e.tgt[0] for e in examples}
    assert first_tokens == {language_token_id(tokenizer, lang) for lang in ("en", "de", "fr")}
    # Language tokens are single pieces and are dropped from decoded text.
    de = language_token_id(tokenizer, "de")
    assert tokenizer.decode([de, *tokenizer("Hallo.")["input_ids"]], skip_special_tokens=True) == (
        "Hallo."
    )
    assert len(read_dev(data_dir, 3)[Direction("fr", "en")][0]) == 3


def test_a_phase_resumes_where_the_last_one_stopped_and_writes_a_checkpoint(
    data_dir: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    run(_config(data_dir, work, 3, False))
    first = torch.load(work / "state.pt", weights_only=False)
    assert first["position"]["step"] == 3
    with pytest.raises(SystemExit, match="--resume"):
        run(_config(data_dir, work, 6, False))
    run(_config(data_dir, work, 6, True))
    second = torch.load(work / "state.pt", weights_only=False)
    assert second["position"]["step"] == 6
    assert [h["step"] for h in second["history"]] == [3, 6]
    checkpoint = work / "checkpoint"
    config = json.loads((checkpoint / "config.json").read_text())
    tokenizer = transformers.MarianTokenizer.from_pretrained(str(checkpoint))
    assert config["task_specific_params"]["translation_fr_to_en"] == {
        "forced_bos_token_id": language_token_id(tokenizer, "en")
    }
    assert len(config["task_specific_params"]) == 4
    summary = json.loads((checkpoint / "training.json").read_text())
    assert summary["selected"]
