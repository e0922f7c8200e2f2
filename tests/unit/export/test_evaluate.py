"""export.evaluate: reading inputs, scoring, and a real run over a tiny package."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest

from export.evaluate import (
    checkpoint_translator,
    evaluate,
    main,
    markdown_table,
    read_texts,
    score,
)
from service.runtime.manifest import Manifest

SOURCES = [
    "A man is riding a bicycle.",
    "Two dogs play in the snow.",
    "A woman sings on a stage.",
    "Children are running on the beach.",
]


def test_read_texts_plain_gzip_and_csv_column(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\ntwo\n\nfour\n\n", encoding="utf-8")
    with gzip.open(tmp_path / "a.txt.gz", "wt", encoding="utf-8") as f:
        f.write("eins\nzwei\n")
    (tmp_path / "d.csv").write_text(
        'id,dialogue,summary\n1,"A: hi\nB: hello",They greet.\n', encoding="utf-8"
    )
    # Interior empty lines keep alignment with the references; trailing ones are dropped.
    assert read_texts(str(tmp_path / "a.txt")) == ["one", "two", "", "four"]
    assert read_texts(str(tmp_path / "a.txt"), limit=1) == ["one"]
    assert read_texts(str(tmp_path / "a.txt.gz")) == ["eins", "zwei"]
    assert read_texts(f"{tmp_path / 'd.csv'}:dialogue") == ["A: hi\nB: hello"]
    assert read_texts(f"{tmp_path / 'd.csv'}:summary") == ["They greet."]


def test_translation_scores_bleu_and_chrf() -> None:
    refs = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee."]
    perfect = score("translation", refs, refs)
    assert perfect == {"BLEU": pytest.approx(100.0), "chrF": pytest.approx(100.0)}
    worse = score("translation", ["Ein Mann fährt Auto.", "Hunde spielen."], refs)
    assert 0 < worse["BLEU"] < 100 and 0 < worse["chrF"] < 100


def test_summarization_scores_rouge() -> None:
    refs = ["Amanda baked cookies and will bring Jerry some tomorrow."]
    assert score("summarization", refs, refs)["ROUGE-L"] == pytest.approx(100.0)
    partial = score("summarization", ["Amanda baked cookies."], refs)
    assert set(partial) == {"ROUGE-1", "ROUGE-2", "ROUGE-L"}
    assert 0 < partial["ROUGE-2"] < partial["ROUGE-1"] < 100


@pytest.mark.slow
def test_evaluate_checkpoint_and_variants_on_tiny_package(
    tiny_checkpoint: Callable[[str], Path], tiny_package: Callable[..., Path]
) -> None:
    checkpoint = tiny_checkpoint("marian")
    package = tiny_package("marian")
    # References = the checkpoint's own greedy output, so the checkpoint scores 100 and the
    # fp32 package (token-exact with transformers) must too; int8 only has to produce text.
    references = checkpoint_translator(checkpoint, Manifest.load(package), 8, None)(SOURCES, 1)
    results = evaluate(package, SOURCES, references, checkpoint=checkpoint, beams=[1, 2])
    by_name = {(r.system, r.beams): r for r in results}
    assert set(by_name) == {
        (system, beams)
        for system in ("checkpoint (transformers)", "fp32 (onnxruntime)", "int8 (onnxruntime)")
        for beams in (1, 2)
    }
    assert by_name[("checkpoint (transformers)", 1)].scores["BLEU"] == pytest.approx(100.0)
    assert by_name[("fp32 (onnxruntime)", 1)].hypotheses == references
    for result in results:
        assert len(result.hypotheses) == len(SOURCES)
        for value in result.scores.values():
            assert 0.0 <= value <= 100.0 + 1e-9
    table = markdown_table(results)
    assert "| fp32 (onnxruntime) | beam 2 |" in table and "| BLEU | chrF |" in table


@pytest.mark.slow
def test_cli_writes_markdown_for_one_variant(
    tiny_package: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = tiny_package("marian")
    with gzip.open(tmp_path / "src.en.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(SOURCES) + "\n")
    (tmp_path / "ref.de").write_text("Ein Mann fährt Fahrrad.\n" * len(SOURCES))
    out = tmp_path / "table.md"
    status = main(
        ["--package", str(package), "--src", str(tmp_path / "src.en.gz"),
         "--ref", str(tmp_path / "ref.de"), "--precisions", "int8", "--beams", "1",
         "--limit", "2", "--markdown", str(out), "--json", str(tmp_path / "r.json")]
    )  # fmt: skip
    assert status == 0
    table = out.read_text()
    assert "| int8 (onnxruntime) | greedy |" in table
    assert "fp32" not in table and "checkpoint" not in table
    assert table in capsys.readouterr().out
    assert (tmp_path / "r.json").read_text().count('"hypotheses"') == 1


@pytest.mark.slow
def test_missing_variant_is_an_error(tiny_package: Callable[..., Path]) -> None:
    with pytest.raises(ValueError, match="no fp16 variant"):
        evaluate(tiny_package("marian"), SOURCES[:1], SOURCES[:1], checkpoint=None,
                 precisions=["fp16"])  # fmt: skip
