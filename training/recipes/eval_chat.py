"""Quality of a chat package on DailyDialog test and DailyDialog++ test (docs/quality.md).

``python -m training.recipes.eval_chat --package PKG --data-dir ../shared/data``

For each precision variant of the package (decoded by the service runtime, exactly as the
server does) and each beam size: BLEU against the references (DailyDialog: the one real
next turn; DailyDialog++: five human responses per context), distinct-1/2 (unique n-grams
over all n-grams of all replies: how little the model repeats itself across contexts),
the average reply length in words, and sample replies.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import sacrebleu

from export.evaluate import package_translator
from service.runtime.manifest import Manifest
from service.text.chat import ChatConventions, render
from training.recipes.dailydialog import (
    MAX_HISTORY_TURNS,
    TEST_FILE,
    context_pairs,
    conventions,
    history,
    read_dialogues,
)

SAMPLE_COUNT = 10


@dataclass(frozen=True)
class ChatTestSet:
    """Rendered contexts with one or more references each."""

    name: str
    contexts: list[str]
    references: list[list[str]]


@dataclass(frozen=True)
class ChatScores:
    """Scores of one variant and beam size on one test set."""

    test_set: str
    precision: str
    beams: int
    bleu: float
    distinct_1: float
    distinct_2: float
    mean_words: float
    seconds: float
    samples: list[tuple[str, str]]


def dailydialog_test(
    data_dir: Path, limit: int | None, max_history_turns: int = MAX_HISTORY_TURNS
) -> ChatTestSet:
    """Every (context -> next turn) pair of DailyDialog test, one reference each (the
    contexts keep at most ``max_history_turns`` turns, as the package renders them)."""
    dialogues = read_dialogues(data_dir / "dailydialog" / TEST_FILE)
    pairs = context_pairs(dialogues, max_history_turns=max_history_turns)[:limit]
    return ChatTestSet("DailyDialog test", [p.context for p in pairs], [[p.reply] for p in pairs])


def dailydialog_pp_test(
    data_dir: Path, limit: int | None, style: ChatConventions | None = None
) -> ChatTestSet:
    """DailyDialog++ test contexts (rendered with ``style``, the package's conventions)
    with their five human-written good responses."""
    contexts: list[str] = []
    references: list[list[str]] = []
    style = style or conventions()
    with (data_dir / "dailydialog_pp" / "test.json").open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            item = json.loads(line)
            turns = [t.strip() for t in item["context"] if t.strip()]
            contexts.append(render(history(turns), style))
            references.append([r.strip() for r in item["positive_responses"]])
    return ChatTestSet("DailyDialog++ test", contexts[:limit], references[:limit])


def distinct(replies: list[str], n: int) -> float:
    """Unique n-grams / all n-grams over all replies (lower-cased words)."""
    grams = [
        tuple(words[i : i + n])
        for words in (r.lower().split() for r in replies)
        for i in range(len(words) - n + 1)
    ]
    return len(set(grams)) / len(grams) if grams else 0.0


def multi_reference_bleu(replies: list[str], references: list[list[str]]) -> float:
    """Corpus BLEU with every context's references (sacreBLEU wants them by position)."""
    width = max(len(r) for r in references)
    streams = [[refs[k] if k < len(refs) else refs[0] for refs in references] for k in range(width)]
    return float(sacrebleu.corpus_bleu(replies, streams).score)


def score_variant(
    test: ChatTestSet, replies: list[str], precision: str, beams: int, seconds: float
) -> ChatScores:
    """All metrics of one decode of a test set."""
    step = max(len(replies) // SAMPLE_COUNT, 1)
    samples = [(test.contexts[i], replies[i]) for i in range(0, len(replies), step)]
    return ChatScores(
        test_set=test.name,
        precision=precision,
        beams=beams,
        bleu=multi_reference_bleu(replies, test.references),
        distinct_1=distinct(replies, 1),
        distinct_2=distinct(replies, 2),
        mean_words=sum(len(r.split()) for r in replies) / max(len(replies), 1),
        seconds=seconds,
        samples=samples[:SAMPLE_COUNT],
    )


def markdown(results: list[ChatScores]) -> str:
    """The score table, then the sample replies of the first result per test set."""
    lines = [
        "| test set | variant | search | BLEU | distinct-1 | distinct-2 | words/reply | seconds |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        search = "greedy" if r.beams == 1 else f"beam {r.beams}"
        lines.append(
            f"| {r.test_set} | {r.precision} | {search} | {r.bleu:.2f} | {r.distinct_1:.3f} "
            f"| {r.distinct_2:.3f} | {r.mean_words:.1f} | {r.seconds:.0f} |"
        )
    shown: set[str] = set()
    for r in results:
        if r.test_set in shown:
            continue
        shown.add(r.test_set)
        search = "greedy" if r.beams == 1 else f"beam {r.beams}"
        lines += ["", f"Samples, {r.test_set} ({r.precision}, {search}):", ""]
        lines += ["| context | reply |", "|---|---|"]
        lines += [
            f"| {c.replace('|', '/')} | {reply.replace('|', '/')} |" for c, reply in r.samples
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints the table, optionally writes it and the JSON."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--package", type=Path, required=True)
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding dailydialog/")
    p.add_argument("--precisions", default=None, help="comma list (default: all variants)")
    p.add_argument("--beams", default="4", help="comma list of beam sizes")
    p.add_argument("--limit", type=int, default=1000, help="contexts per test set")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    manifest = Manifest.load(args.package)
    precisions = args.precisions.split(",") if args.precisions else list(manifest.variants)
    if manifest.chat is None:
        p.error(f"{args.package} is not a chat package")
    style = ChatConventions.for_package(
        manifest.family, manifest.chat.turn_separator, manifest.chat.max_history_turns
    )
    tests = [
        dailydialog_test(args.data_dir, args.limit, style.max_history_turns),
        dailydialog_pp_test(args.data_dir, args.limit, style),
    ]
    results: list[ChatScores] = []
    for precision in precisions:
        reply = package_translator(args.package, precision, args.batch_size, args.threads)
        for beams in (int(b) for b in args.beams.split(",")):
            for test in tests:
                start = time.perf_counter()
                replies = reply(test.contexts, beams)
                result = score_variant(test, replies, precision, beams, time.perf_counter() - start)
                print(
                    f"{test.name} {precision} beams={beams}: BLEU {result.bleu:.2f} "
                    f"distinct-2 {result.distinct_2:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
                results.append(result)
    table = markdown(results)
    print(table)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
