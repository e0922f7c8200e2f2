"""The summarization recipe: input normalisation, baselines, scores, resumable training."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from training.recipes import summarization_data as sd
from training.recipes.eval_summarize import (
    Decoding,
    baselines,
    describe,
    markdown,
    model_scores,
    sample_indices,
)
from training.recipes.tune_summarize import make_grid, write_choice

if TYPE_CHECKING:
    from training.recipes.train_summarize import SummarizeConfig

SAMSUM_RAW = "Anna: are we still meeting at 5?\r\nBen:  yes, at the cafe.\r\n\r\nAnna: great"
DIALOGSUM_RAW = (
    "#Person1#: Hello, how are you doing today?\n"
    "#Person2#: I ' Ve been having trouble breathing. I haven ' t slept.\n"
    "#Person1#: I am going to send you to a specialist."
)


def test_samsum_dialogue_becomes_name_text_lines() -> None:
    assert sd.normalize_dialogue(SAMSUM_RAW) == (
        "Anna: are we still meeting at 5?\nBen: yes, at the cafe.\nAnna: great"
    )


def test_dialogsum_person_tags_and_split_contractions_are_normalised() -> None:
    assert sd.normalize_dialogue(DIALOGSUM_RAW) == (
        "Person1: Hello, how are you doing today?\n"
        "Person2: I've been having trouble breathing. I haven't slept.\n"
        "Person1: I am going to send you to a specialist."
    )
    assert sd.normalize_summary(" #Person2# has trouble\nbreathing. ") == (
        "Person2 has trouble breathing."
    )


def test_plain_paragraph_stays_a_paragraph() -> None:
    text = "The council met on Monday.   It approved the new budget."
    assert sd.normalize_dialogue(text) == "The council met on Monday. It approved the new budget."
    assert sd.speaker_and_text("The council met on Monday.") == (
        None,
        "The council met on Monday.",
    )


def test_as_paragraph_drops_the_speakers() -> None:
    dialogue = sd.normalize_dialogue(SAMSUM_RAW)
    assert sd.as_paragraph(dialogue) == "are we still meeting at 5? yes, at the cafe. great"
    assert sd.speaker_and_text("Ben: yes") == ("Ben", "yes")


def test_lead_3_takes_the_first_three_turns() -> None:
    dialogue = "A: one\nB: two\nA: three\nB: four"
    assert sd.lead_3(dialogue) == "A: one B: two A: three"
    assert sd.lead_3("A: only") == "A: only"


def test_longest_3_keeps_dialogue_order_and_breaks_ties_by_position() -> None:
    dialogue = "A: long first turn here\nB: ok\nA: second long turn\nB: hm\nA: x1"
    assert sd.longest_3(dialogue) == "A: long first turn here B: ok A: second long turn"


def test_novel_bigram_share() -> None:
    source = "Anna: we meet at the cafe at 5"
    assert sd.novel_bigram_share(["we meet at the cafe"], [source]) == 0.0
    assert sd.novel_bigram_share(["dogs bark loudly"], [source]) == 1.0
    # "anna and", "and ben", "ben meet" are new; "meet at", "at 5" are in the source.
    share = sd.novel_bigram_share(["Anna and Ben meet at 5"], [source])
    assert share == pytest.approx(3 / 5)
    assert sd.novel_bigram_share([""], [source]) == 0.0


def test_read_csv_parses_quoted_multiline_dialogues(tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "dialogue", "summary", "topic"])
    writer.writerow(["d1", DIALOGSUM_RAW, "#Person2# sees a doctor.", "health"])
    writer.writerow(["d2", "", "empty dialogue is dropped", "x"])
    writer.writerow(["d3", SAMSUM_RAW, "Anna and Ben meet at 5.", "x"])
    path = tmp_path / "set.csv.gz"
    path.write_bytes(gzip.compress(buffer.getvalue().encode("utf-8")))
    rows = sd.read_csv(path)
    assert [r.id for r in rows] == ["d1", "d3"]
    assert rows[0].summary == "Person2 sees a doctor."
    assert rows[0].dialogue.startswith("Person1: Hello")
    assert sd.read_csv(path, limit=1) == rows[:1]


def test_sample_indices_spread_over_the_set() -> None:
    assert sample_indices(5) == [0, 1, 2, 3, 4]
    picks = sample_indices(100)
    assert len(picks) == 10 and picks[0] == 0 and picks[-1] == 99
    assert picks == sorted(set(picks))


def test_report_scores_baselines_and_a_model_on_the_same_references() -> None:
    dialogues = [
        sd.Dialogue("a", sd.normalize_dialogue(SAMSUM_RAW), "Anna and Ben meet at 5 at the cafe."),
        sd.Dialogue("b", sd.normalize_dialogue(DIALOGSUM_RAW), "Person2 sees a specialist."),
    ]
    calls: list[tuple[list[str], Decoding]] = []

    def summarize(texts: list[str], decoding: Decoding) -> tuple[list[str], int]:
        calls.append((texts, decoding))
        return [d.summary for d in dialogues], 1  # a perfect model; one input "cut"

    rows = baselines("toy", dialogues)
    assert [r.system for r in rows] == ["Lead-3", "Longest-3"]
    assert all(0 < r.rouge["ROUGE-1"] < 100 and r.novel_bigrams < 0.2 for r in rows)
    served = ("int8", Decoding(4))
    rows += model_scores("toy", dialogues, {"int8": summarize}, [Decoding(1), Decoding(4)], served)
    perfect = rows[-1]
    assert perfect.system == "int8 beam 4" and perfect.cut_to_window == 1
    assert perfect.rouge["ROUGE-1"] == pytest.approx(100.0)
    assert perfect.mean_words == perfect.reference_words
    assert len(perfect.samples) == 2 and not rows[-2].samples  # samples: served setting only
    paragraphs = model_scores("p", dialogues, {"int8": summarize}, [Decoding(4)], served, True)
    assert ":" not in calls[-1][0][0] and paragraphs[0].samples
    text = markdown(rows, "header")
    assert "| Longest-3 |" in text and "| int8 beam 4 | 100.00 |" in text
    assert "model: Anna and Ben meet at 5 at the cafe." in text


def test_tuning_grid_and_choice(tmp_path: Path) -> None:
    grid = make_grid([1, 4], [0.8, 1.2], [0, 3])
    assert Decoding(1, 1.0, 0) in grid and Decoding(4, 1.2, 3) in grid
    assert len(grid) == 2 + 4
    assert describe(Decoding(4, 1.2, 3)) == "beam 4 lp 1.2 no-repeat 3"
    assert describe(Decoding(1)) == "greedy"
    (tmp_path / "generation_config.json").write_text(json.dumps({"num_beams": 1, "max_length": 9}))
    best = {"num_beams": 4, "length_penalty": 1.2, "no_repeat_ngram_size": 0, "mean": 20.0}
    write_choice(tmp_path, best, [best])
    config = json.loads((tmp_path / "generation_config.json").read_text())
    assert config == {
        "num_beams": 4,
        "max_length": 9,
        "length_penalty": 1.2,
        "no_repeat_ngram_size": None,
    }
    assert json.loads((tmp_path / "decoding.json").read_text())["selected"] == best


# ---- the training loop (tiny model on generated dialogues) ------------------------------

NAMES = ["Anna", "Ben", "Carla", "David", "Emma", "Frank", "Greta", "Hugo"]
PLACES = ["cafe", "station", "park", "library", "cinema"]


def _toy_dialogues(count: int) -> list[sd.Dialogue]:
    out = []
    for i in range(count):
        a, b = NAMES[i % len(NAMES)], NAMES[(i * 3 + 1) % len(NAMES)]
        place, hour = PLACES[i % len(PLACES)], 1 + i % 11
        dialogue = f"{a}: shall we meet at {hour}?\n{b}: yes, at the {place}.\n{a}: great"
        summary = f"{a} and {b} will meet at {hour} at the {place}."
        out.append(sd.Dialogue(str(i), dialogue, summary))
    return out


def _config(tmp_path: Path, name: str, max_steps: int, resume: bool = False) -> SummarizeConfig:
    from training.recipes.train_summarize import SummarizeConfig

    return SummarizeConfig(
        data_dir=tmp_path,
        out=tmp_path / name / "checkpoint",
        work_dir=tmp_path / name,
        vocab_size=120,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        heads=2,
        ffn_dim=32,
        warmup_steps=4,
        max_tokens=300,
        max_source_len=64,
        max_target_len=24,
        max_steps=max_steps,
        time_budget_min=10.0,
        checkpoint_min=10.0,
        threads=1,
        resume=resume,
    )


def test_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import MarianMTModel

    from training.recipes.train_summarize import run

    train, dev = _toy_dialogues(60), _toy_dialogues(70)[60:]
    straight = _config(tmp_path, "straight", max_steps=8)
    first = _config(tmp_path, "split", max_steps=4)
    second = _config(tmp_path, "split", max_steps=8, resume=True)
    summary = run(straight, train, dev)
    run(first, train, dev)
    with pytest.raises(SystemExit, match="--resume"):
        run(first, train, dev)  # a state exists and --resume was not given
    resumed = run(second, train, dev)
    assert summary["position"] == resumed["position"]
    assert resumed["phase_steps"] == 4 and summary["phase_steps"] == 8
    assert summary["finished"] and resumed["finished"]
    a = torch.load(straight.work_dir / "state.pt", weights_only=False)
    b = torch.load(second.work_dir / "state.pt", weights_only=False)
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    # The phase wrote a loadable checkpoint with the serving generation config.
    model = MarianMTModel.from_pretrained(str(second.out))
    assert model.config.max_position_embeddings == 64
    generation = json.loads((second.out / "generation_config.json").read_text())
    assert generation["num_beams"] == 4 and generation["no_repeat_ngram_size"] == 3
    record = json.loads((second.out / "training.json").read_text())
    assert record["selected"] in record["candidates"]


def test_paragraph_share_is_seeded() -> None:
    pytest.importorskip("transformers")
    from training.recipes.train_summarize import model_inputs

    dialogues = _toy_dialogues(200)
    inputs = model_inputs(dialogues, 0.25, seed=7)
    assert inputs == model_inputs(dialogues, 0.25, seed=7)
    flat = sum(":" not in text for text in inputs)
    assert 25 < flat < 75
    assert model_inputs(dialogues, 0.0, seed=7) == [d.dialogue for d in dialogues]


# ---- the real corpora (make test-data) ------------------------------------------------


def test_real_corpora_read_and_baselines_match_the_samsum_paper(data_dir: Path) -> None:
    from export.evaluate import score

    train = sd.read_train(data_dir)
    assert len(train) > 27_000
    assert not any("#Person" in d.dialogue or "#Person" in d.summary for d in train)
    test = sd.eval_sets(data_dir)["SAMSum test"]
    assert len(test) == 819
    refs = [d.summary for d in test]
    lead = score("summarization", [sd.lead_3(d.dialogue) for d in test], refs)
    longest = score("summarization", [sd.longest_3(d.dialogue) for d in test], refs)
    # Gliwa et al. 2019, table 2: Lead-3 31.40 / 8.68, Longest-3 32.46 / 10.27.
    assert lead["ROUGE-1"] == pytest.approx(31.4, abs=1.0)
    assert longest["ROUGE-1"] == pytest.approx(32.46, abs=1.0)
    assert longest["ROUGE-2"] == pytest.approx(10.27, abs=1.0)


def test_a_warm_start_takes_the_checkpoints_tokenizer_and_weights(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from dataclasses import replace

    from transformers import MarianMTModel, MarianTokenizer

    from training.recipes.train_summarize import (
        Trainer,
        build_or_load_tokenizer,
        run,
        trainer_config,
        warm_start,
    )

    train, dev = _toy_dialogues(60), _toy_dialogues(70)[60:]
    base = _config(tmp_path, "base", max_steps=2)
    run(base, train, dev)  # a trained checkpoint of the same shape, its window 64
    warm = replace(_config(tmp_path, "warm", max_steps=0), init_from=base.out, max_source_len=96)
    tokenizer = build_or_load_tokenizer(warm, train)
    assert tokenizer.get_vocab() == MarianTokenizer.from_pretrained(str(base.out)).get_vocab()
    trainer = Trainer(trainer_config(warm), tokenizer)
    warm_start(trainer.model, base.out)
    source = MarianMTModel.from_pretrained(str(base.out)).state_dict()
    for name, tensor in trainer.model.state_dict().items():
        if "embed_positions" in name:
            # The longer window's sinusoids: the same values over the shorter one's rows.
            assert tensor.shape[0] == 96 and torch.equal(tensor[:64], source[name])
        else:
            assert torch.equal(tensor, source[name]), name
    other = replace(_config(tmp_path, "other", max_steps=0), d_model=32)
    with pytest.raises(ValueError, match="does not match"):
        warm_start(Trainer(trainer_config(other), tokenizer).model, base.out)
