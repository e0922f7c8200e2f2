"""Quality of a summarization package on SAMSum test and DialogSum validation (docs/quality.md).

``python -m training.recipes.eval_summarize --package PKG --data-dir ../shared/data
[--precisions int8,fp32] [--beams 1,4] --markdown FILE --json FILE``

For each evaluation set: ROUGE-1/2/L (rouge-score, stemmed, F1 x 100, the scorer of
``export.evaluate``) of every precision variant of the package (decoded by the service
runtime, exactly as the server does) and beam size, beside two extractive baselines on the
same references by the same scorer: Lead-3 (the first three turns) and Longest-3 (the
three longest turns). Also the share of novel bigrams (summary bigrams not in the
dialogue: how abstractive), the average length in words against the references', and 10
sample summaries of the served setting (spread evenly over the set, good and bad alike,
each with its ROUGE-1). ``--no-model`` computes the baselines only (no package needed).

Inputs are normalised as the recipe trained on them (``summarization_data``). A dialogue
longer than the model's window is cut to it for the evaluation (the service refuses it
with 413 instead); the report counts them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from export.evaluate import score
from training.recipes.summarization_data import (
    Dialogue,
    as_paragraph,
    eval_sets,
    lead_3,
    longest_3,
    novel_bigram_share,
)

SAMPLE_COUNT = 10
BASELINES: dict[str, Callable[[str], str]] = {"Lead-3": lead_3, "Longest-3": longest_3}


@dataclass(frozen=True)
class Decoding:
    """Generation settings of one evaluated system (``None``: the package default)."""

    num_beams: int
    length_penalty: float | None = None
    no_repeat_ngram_size: int | None = None


@dataclass
class SystemScores:
    """Scores of one system (a baseline, or a package variant with a decoding) on one set."""

    test_set: str
    system: str
    rouge: dict[str, float]
    novel_bigrams: float
    mean_words: float
    reference_words: float
    seconds: float = 0.0
    cut_to_window: int = 0
    samples: list[dict[str, object]] = field(default_factory=list)


Summarize = Callable[[list[str], Decoding], tuple[list[str], int]]


def package_summarizer(package: Path, precision: str, batch_size: int = 16) -> Summarize:
    """Summaries by the service runtime (ONNX Runtime, CPU) of one precision variant.

    Returns (summaries in input order, inputs cut to the model's window)."""
    from service.runtime import GenerationOptions, InputTooLongError, load_runtime

    runtime = load_runtime(package, device="cpu", precision=precision)
    window = runtime.manifest.model.max_source_positions

    def run(texts: list[str], decoding: Decoding) -> tuple[list[str], int]:
        ids: list[list[int]] = []
        cut = 0
        for text in texts:
            try:
                ids.append(list(runtime.encode_texts([text])[0]))
            except InputTooLongError:
                cut += 1
                encoded = runtime.tokenizer.hf(text, truncation=True, max_length=window)
                ids.append(list(encoded["input_ids"]))
        options = runtime.resolve(
            GenerationOptions(
                num_beams=decoding.num_beams,
                length_penalty=decoding.length_penalty,
                no_repeat_ngram_size=decoding.no_repeat_ngram_size,
            )
        )
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = [""] * len(ids)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            results = runtime.generate([ids[i] for i in chunk], options)
            for i, sequences in zip(chunk, results, strict=True):
                out[i] = runtime.decode(sequences[0]).strip()
        return out, cut

    return run


def _words(texts: list[str]) -> float:
    return statistics.fmean(len(t.split()) for t in texts) if texts else 0.0


def sample_indices(count: int, samples: int = SAMPLE_COUNT) -> list[int]:
    """``samples`` indices spread evenly over ``count`` items (all of them when fewer)."""
    if count <= samples:
        return list(range(count))
    return [round(i * (count - 1) / (samples - 1)) for i in range(samples)]


def system_scores(
    test_set: str,
    system: str,
    dialogues: list[Dialogue],
    sources: list[str],
    hypotheses: list[str],
    with_samples: bool = False,
) -> SystemScores:
    """Score ``hypotheses`` (one per dialogue) against the references."""
    references = [d.summary for d in dialogues]
    samples: list[dict[str, object]] = []
    if with_samples:
        for i in sample_indices(len(dialogues)):
            one = score("summarization", [hypotheses[i]], [references[i]])
            samples.append(
                {
                    "id": dialogues[i].id,
                    "dialogue": sources[i],
                    "reference": references[i],
                    "summary": hypotheses[i],
                    "ROUGE-1": round(one["ROUGE-1"], 1),
                }
            )
    return SystemScores(
        test_set=test_set,
        system=system,
        rouge=score("summarization", hypotheses, references),
        novel_bigrams=novel_bigram_share(hypotheses, sources),
        mean_words=_words(hypotheses),
        reference_words=_words(references),
        samples=samples,
    )


def baselines(test_set: str, dialogues: list[Dialogue]) -> list[SystemScores]:
    """Lead-3 and Longest-3 on one set."""
    sources = [d.dialogue for d in dialogues]
    return [
        system_scores(test_set, name, dialogues, sources, [pick(s) for s in sources])
        for name, pick in BASELINES.items()
    ]


def model_scores(
    test_set: str,
    dialogues: list[Dialogue],
    summarizers: dict[str, Summarize],
    decodings: list[Decoding],
    served: tuple[str, Decoding],
    paragraphs: bool = False,
) -> list[SystemScores]:
    """Every (precision, decoding) on one set; samples for the ``served`` pair. With
    ``paragraphs`` the inputs lose their speakers (the plain-paragraph check)."""
    sources = [as_paragraph(d.dialogue) if paragraphs else d.dialogue for d in dialogues]
    rows: list[SystemScores] = []
    for precision, summarize in summarizers.items():
        for decoding in decodings:
            started = time.monotonic()
            hypotheses, cut = summarize(sources, decoding)
            row = system_scores(
                test_set,
                f"{precision} {describe(decoding)}",
                dialogues,
                sources,
                hypotheses,
                with_samples=(precision, decoding) == served,
            )
            row.seconds, row.cut_to_window = time.monotonic() - started, cut
            rows.append(row)
    return rows


def describe(decoding: Decoding) -> str:
    """``greedy`` / ``beam 4`` (plus any non-default length penalty or n-gram block)."""
    text = "greedy" if decoding.num_beams == 1 else f"beam {decoding.num_beams}"
    if decoding.length_penalty is not None:
        text += f" lp {decoding.length_penalty:g}"
    if decoding.no_repeat_ngram_size is not None:
        text += f" no-repeat {decoding.no_repeat_ngram_size}"
    return text


def markdown(rows: list[SystemScores], header: str) -> str:
    """The tables (one per set) and the samples as Markdown."""
    lines = [header, ""]
    for test_set in dict.fromkeys(r.test_set for r in rows):
        lines += [
            f"### {test_set}",
            "",
            "| system | ROUGE-1 | ROUGE-2 | ROUGE-L | novel bigrams | words (ref) | cut | s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r.test_set == test_set):
            lines.append(
                f"| {r.system} | {r.rouge['ROUGE-1']:.2f} | {r.rouge['ROUGE-2']:.2f} | "
                f"{r.rouge['ROUGE-L']:.2f} | {100 * r.novel_bigrams:.1f} % | "
                f"{r.mean_words:.1f} ({r.reference_words:.1f}) | {r.cut_to_window} | "
                f"{r.seconds:.0f} |"
            )
        lines.append("")
        for r in (r for r in rows if r.test_set == test_set and r.samples):
            lines += [f"Samples ({r.system}, spread evenly over the set):", ""]
            for s in r.samples:
                dialogue = str(s["dialogue"]).replace("\n", " / ")
                lines += [
                    f"- `{s['id']}` (ROUGE-1 {s['ROUGE-1']}): {dialogue[:300]}"
                    f"{' ...' if len(dialogue) > 300 else ''}",
                    f"  - model: {s['summary']}",
                    f"  - reference: {s['reference']}",
                ]
            lines.append("")
    return "\n".join(lines)


def parse_decodings(beams: str) -> list[Decoding]:
    """``"1,4"`` -> greedy and beam 4 (the package's other defaults)."""
    return [Decoding(int(b)) for b in beams.split(",") if b.strip()]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--package", type=Path, default=None, help="exported summarization package")
    p.add_argument("--data-dir", type=Path, required=True, help="folder with samsum/, dialogsum/")
    p.add_argument("--precisions", default="int8,fp32", help="comma list of variants")
    p.add_argument("--beams", default="1,4", help="comma list of beam sizes (1 = greedy)")
    p.add_argument("--limit", type=int, default=None, help="first N dialogues of each set")
    p.add_argument("--no-model", action="store_true", help="baselines only")
    p.add_argument(
        "--no-paragraphs", action="store_true", help="skip the speaker-less paragraph check"
    )
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.package is None and not args.no_model:
        p.error("--package is required unless --no-model")
    sets = eval_sets(args.data_dir, args.limit)
    rows: list[SystemScores] = []
    header = "Baselines (no model)"
    summarizers: dict[str, Summarize] = {}
    decodings = parse_decodings(args.beams)
    served = ("", Decoding(1))
    if not args.no_model:
        from service.runtime.manifest import Manifest

        manifest = Manifest.load(args.package)
        precisions = [x for x in args.precisions.split(",") if x in manifest.variants]
        if not precisions:
            have = ", ".join(manifest.variants)
            p.error(f"{args.package} has none of {args.precisions} (it has {have})")
        summarizers = {x: package_summarizer(args.package, x) for x in precisions}
        default_beams = manifest.generation.num_beams or 1
        served = (
            precisions[0],
            next((d for d in decodings if d.num_beams == default_beams), decodings[-1]),
        )
        header = (
            f"`{manifest.name}` ({', '.join(precisions)}; served: {served[0]} "
            f"{describe(served[1])}; package defaults "
            f"{manifest.generation.model_dump(exclude_none=True, exclude={'bad_words_ids'})})"
        )
    for name, dialogues in sets.items():
        rows += baselines(name, dialogues)
        if summarizers:
            rows += model_scores(name, dialogues, summarizers, decodings, served)
        for r in rows[-len(BASELINES) - len(summarizers) * len(decodings) :]:
            print(f"{r.test_set} | {r.system}: {json.dumps(r.rouge)}", flush=True)
    if summarizers and not args.no_paragraphs:
        name = "DialogSum validation as paragraphs (speakers removed)"
        served_only = {served[0]: summarizers[served[0]]}
        rows += model_scores(
            name, sets["DialogSum validation"], served_only, [served[1]], served, True
        )
        print(f"{name}: {json.dumps(rows[-1].rouge)}", flush=True)
    text = markdown(rows, header)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
