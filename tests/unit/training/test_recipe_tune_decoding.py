"""Choosing the serving beam size and length penalty on validation data."""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from export.evaluate import read_texts
from training.checkpoint_corpus import sentences
from training.recipes.tune_decoding import main, parse_grid, tune


def test_parse_grid() -> None:
    assert parse_grid("4, 5,6,", int) == [4, 5, 6]
    assert parse_grid("0.6,1.0", float) == [0.6, 1.0]


@pytest.mark.slow
def test_tuning_scores_the_grid_and_writes_the_best_into_the_checkpoint(
    tiny_checkpoint: Callable[[str], Path],
    tiny_package: Callable[..., Path],
    tmp_path: Path,
) -> None:
    package = tiny_package("marian")
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint("marian"), checkpoint)
    # The tiny Marian copies its input: English "references" make BLEU meaningful here.
    # Held-out sentences of the generated corpus it was trained on (no data folder needed).
    multi30k = tmp_path / "multi30k"
    multi30k.mkdir()
    for lang in ("en", "de"):
        with gzip.open(multi30k / f"val.{lang}.gz", "wt", encoding="utf-8") as handle:
            handle.write("\n".join(sentences("en", "val", 6)) + "\n")

    sources = read_texts(str(multi30k / "val.en.gz"), 6)
    grid = tune(package, sources, sources, [1, 2], [0.5, 2.0], "fp32")
    assert {(r["num_beams"], r["length_penalty"]) for r in grid} == {(1, 1.0), (2, 0.5), (2, 2.0)}
    assert [r["BLEU"] for r in grid] == sorted((r["BLEU"] for r in grid), reverse=True)
    assert grid[0]["BLEU"] > 50  # a copy model scores high against its own input

    main(
        [
            *("--package", str(package), "--checkpoint", str(checkpoint)),
            *("--data-dir", str(multi30k), "--beams", "1,2", "--length-penalties", "0.5,2.0"),
            *("--precision", "fp32", "--limit", "6"),
        ]
    )
    record = json.loads((checkpoint / "decoding.json").read_text())
    config = json.loads((checkpoint / "generation_config.json").read_text())
    assert record["selected"] == record["grid"][0]
    assert config["num_beams"] == record["selected"]["num_beams"]
    assert config["length_penalty"] == record["selected"]["length_penalty"]
