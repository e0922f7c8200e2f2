"""The DailyDialog chat recipe: detokenization, context rendering, a tiny real run, metrics."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from service.text.chat import ChatConventions, Message, render  # noqa: E402
from training.recipes import dailydialog  # noqa: E402
from training.recipes.context_gain import context_gain  # noqa: E402
from training.recipes.eval_chat import distinct, multi_reference_bleu  # noqa: E402
from training.recipes.train_chat import main as train_chat_main  # noqa: E402
from training.recipes.train_marian import (  # noqa: E402
    Corpus,
    EncoderCollapsedError,
    TrainConfig,
    encoder_spread,
    run,
)

TOY_DIALOGUES = [
    "Hello , how are you ? __eou__ I ' m fine , thanks . And you ? __eou__ Great ! __eou__",
    "Can you help me ? __eou__ Sure , what do you need ? __eou__ A pen , please . __eou__",
    "It ’ s raining again . __eou__ Let ' s stay at home then . __eou__",
    "Where is the station ? __eou__ It is next to the bank . __eou__ Thank you . __eou__",
]


def test_detokenize_repairs_dailydialog_spacing() -> None:
    assert dailydialog.detokenize("I ' m fine , thanks . And you ?") == "I'm fine, thanks. And you?"
    assert dailydialog.detokenize("It ’ s late") == "It's late"
    assert dailydialog.detokenize("you are right.But what ?") == "you are right. But what?"


def test_history_ends_with_the_user_turn() -> None:
    roles = [m.role for m in dailydialog.history(["a", "b", "c"])]
    assert roles == ["user", "assistant", "user"]
    assert [m.role for m in dailydialog.history(["a", "b"])] == ["assistant", "user"]


def test_context_pairs_render_like_the_service(tmp_path: Path) -> None:
    path = tmp_path / "d.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(TOY_DIALOGUES) + "\n")
    dialogues = dailydialog.read_dialogues(path)
    pairs = dailydialog.context_pairs(dialogues)
    assert len(pairs) == sum(len(d) - 1 for d in dialogues)
    first = pairs[1]
    assert first.reply == "Great!"
    # The server renders the same history with the package's conventions into this string.
    served = render(
        [
            Message("assistant", "Hello, how are you?"),
            Message("user", "I'm fine, thanks. And you?"),
        ],
        ChatConventions(dailydialog.TURN_SEPARATOR, dailydialog.MAX_HISTORY_TURNS),
    )
    assert first.context == served == "Hello, how are you? <sep> I'm fine, thanks. And you?"


def test_long_context_drops_oldest_turns_first() -> None:
    turns = ["x" * 200, "y" * 200, "short question?", "answer."]
    pair = dailydialog.context_pairs([turns], max_context_chars=300)[-1]
    assert pair.reply == "answer."
    assert pair.context.endswith("short question?") and "x" not in pair.context


@pytest.mark.slow
def test_tiny_chat_run_records_its_rendering(tmp_path: Path) -> None:
    data = tmp_path / "dailydialog"
    data.mkdir()
    with gzip.open(data / dailydialog.TRAIN_FILE, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(TOY_DIALOGUES * 6) + "\n")
    out = tmp_path / "ckpt"
    args = ["--data-dir", str(data), "--out", str(out), "--work-dir", str(tmp_path / "w")]
    args += ["--val-dialogues", "4", "--d-model", "32", "--ffn-dim", "64", "--layers", "1"]
    args += ["--max-epochs", "2", "--threads", "1"]
    assert train_chat_main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task_specific_params"]["conversational"] == {
        "turn_separator": dailydialog.TURN_SEPARATOR,
        "max_history_turns": dailydialog.MAX_HISTORY_TURNS,
    }
    tokenizer = transformers.MarianTokenizer.from_pretrained(str(out))
    pieces = tokenizer.convert_ids_to_tokens(tokenizer("a <sep> b")["input_ids"])
    assert "<sep>" in pieces
    assert transformers.GenerationConfig.from_pretrained(str(out)).no_repeat_ngram_size == 3
    # The context-gain probe scores the held-out turns with true, shuffled, empty contexts.
    scores = context_gain(out, data, val_dialogues=4, limit=20)
    assert scores["pairs"] > 0 and all(math.isfinite(v) for v in scores.values())
    assert math.isclose(scores["gain"], scores["shuffled"] - scores["true"])

    # A second phase continues from the first one's weights (same corpus, same vocabulary).
    again = tmp_path / "again"
    second = [*args[:2], "--out", str(again), "--work-dir", str(tmp_path / "w2"), *args[6:]]
    assert (
        train_chat_main([*second, "--init-from", str(out), "--decoder-input-dropout", "0.3"]) == 0
    )
    summary = json.loads((again / "training.json").read_text())
    assert summary["init_from"] == str(out)
    assert summary["config"]["decoder_input_dropout"] == 0.3
    other = tmp_path / "other"
    other.mkdir()
    with gzip.open(other / dailydialog.TRAIN_FILE, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(["Zebra quilt ? __eou__ Yes , vortex . __eou__"] * 24) + "\n")
    # A continuation on another corpus and a shorter history keeps the first vocabulary.
    shorter = tmp_path / "shorter"
    elsewhere = ["--data-dir", str(other), "--out", str(shorter), *args[4:]]
    elsewhere += ["--work-dir", str(tmp_path / "w3"), "--max-history-turns", "1"]
    assert train_chat_main([*elsewhere, "--init-from", str(out)]) == 0
    kept = transformers.MarianTokenizer.from_pretrained(str(shorter))
    assert kept.get_vocab() == tokenizer.get_vocab()
    rendering = json.loads((shorter / "config.json").read_text())["task_specific_params"]
    assert rendering["conversational"]["max_history_turns"] == 1


def test_distinct_and_multi_reference_bleu() -> None:
    assert distinct(["a b a b"], 1) == 0.5
    assert distinct(["a b", "a b"], 2) == 0.5
    refs = [["the cat sat on the mat", "a dog"], ["hello there my friend"]]
    perfect = multi_reference_bleu(["a dog", "hello there my friend"], refs)
    wrong = multi_reference_bleu(["zebra", "nothing alike here"], refs)
    assert perfect > 50 > wrong


def _toy_corpus() -> Corpus:
    pairs = dailydialog.context_pairs(
        [
            [dailydialog.detokenize(t) for t in d.split("__eou__") if t.strip()]
            for d in TOY_DIALOGUES
        ]
    )
    contexts = [p.context for p in pairs] * 6
    replies = [p.reply for p in pairs] * 6
    return Corpus(
        contexts,
        replies,
        contexts[:4],
        replies[:4],
        (dailydialog.SEPARATOR_SYMBOL,),
        warmup_src=tuple(contexts),
        warmup_tgt=tuple(c.rsplit(dailydialog.TURN_SEPARATOR, 1)[-1] for c in contexts),
    )


def _tiny_config(tmp_path: Path, **overrides: object) -> TrainConfig:
    settings: dict[str, object] = {
        "data_dir": tmp_path,
        "out": tmp_path / "ckpt",
        "work_dir": tmp_path / "w",
        "src_lang": "en",
        "tgt_lang": "en",
        "vocab_size": 200,
        "d_model": 32,
        "ffn_dim": 64,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "max_epochs": 1,
        "threads": 1,
        "max_tokens": 400,
        "average_last": [],
        **overrides,
    }
    return TrainConfig(**settings)  # type: ignore[arg-type]


def test_encoder_spread_tells_a_reading_encoder_from_a_collapsed_one() -> None:
    config = transformers.MarianConfig(
        vocab_size=50,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        pad_token_id=0,
    )
    model = transformers.MarianMTModel(config)
    probe = {
        "input_ids": torch.tensor([[5, 6, 7, 1], [9, 3, 1, 0], [11, 12, 13, 1]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]]),
    }
    assert encoder_spread(model, probe) > 0.05
    # Post-LN: a last layer norm with zero weight outputs its bias whatever the input is.
    with torch.no_grad():
        model.model.encoder.layers[-1].final_layer_norm.weight.zero_()
    assert encoder_spread(model, probe) < 1e-6


def test_run_warms_up_on_copy_pairs_and_stops_on_a_collapsed_encoder(tmp_path: Path) -> None:
    summary = run(_tiny_config(tmp_path, pair_warmup_steps=3, probe_every=1), _toy_corpus())
    spreads = summary["encoder_spread"]
    assert isinstance(spreads, list)
    steps = [step for step, _ in spreads]
    assert steps[:3] == [1, 2, 3]  # probed through the warm-up and the main pairs
    total = summary["steps"]
    assert isinstance(total, int) and total > 3
    # A spread below the floor after the warm-up ends the run with a typed error.
    impossible = _tiny_config(
        tmp_path / "b", pair_warmup_steps=2, probe_every=1, min_encoder_spread=1e9
    )
    with pytest.raises(EncoderCollapsedError, match="step 3"):
        run(impossible, _toy_corpus())
