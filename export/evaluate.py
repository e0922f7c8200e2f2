"""Quality of a model package against references: what export and quantization cost.

``python -m export.evaluate --package models/NAME --source CHECKPOINT --src FILE --ref FILE``

Runs the source checkpoint (transformers generate(), needs torch) and every precision
variant of the package through the service's own runtime (ONNX Runtime, the exact decode
the server uses), greedy and with beam search, and scores each against the references:
sacreBLEU and chrF for translation, ROUGE-1/2/L (rouge-score, F1) for summarization and
chat. Inputs are one text a line (plain or gzip), or a CSV column given as ``FILE.csv:COLUMN``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import gzip
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from service.runtime.manifest import Manifest


class Translator(Protocol):
    """Decodes texts with ``beams`` (1 = greedy) and optionally a beam length penalty."""

    def __call__(
        self, texts: list[str], beams: int, length_penalty: float | None = None
    ) -> list[str]: ...


@dataclass(frozen=True)
class SystemResult:
    """Scores of one system (checkpoint or package variant) with one beam size."""

    system: str
    beams: int
    scores: dict[str, float]
    seconds: float
    hypotheses: list[str]


def read_texts(spec: str, limit: int | None = None) -> list[str]:
    """Texts from a one-a-line file (``.gz`` accepted) or a CSV column (``FILE.csv:COLUMN``)."""
    path_str, _, column = spec.partition(":") if ".csv:" in spec else (spec, "", "")
    path = Path(path_str)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = raw.decode("utf-8")
    if column:
        rows = csv.DictReader(io.StringIO(text))
        texts = [row[column].strip() for row in rows]
    else:
        texts = [line.strip() for line in text.splitlines()]
        # A trailing newline is no empty last text; interior empty lines stay aligned.
        while texts and not texts[-1]:
            texts.pop()
    return texts[:limit] if limit is not None else texts


def score(task: str, hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus scores: BLEU and chrF for translation, ROUGE F1 (x100) otherwise."""
    if task == "translation":
        import sacrebleu

        return {
            "BLEU": float(sacrebleu.corpus_bleu(hypotheses, [references]).score),
            "chrF": float(sacrebleu.corpus_chrf(hypotheses, [references]).score),
        }
    from rouge_score import rouge_scorer

    kinds = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(kinds), use_stemmer=True)
    totals = dict.fromkeys(kinds, 0.0)
    for hyp, ref in zip(hypotheses, references, strict=True):
        for kind, value in scorer.score(ref, hyp).items():
            totals[kind] += value.fmeasure
    n = max(len(hypotheses), 1)
    return {
        "ROUGE-1": 100 * totals["rouge1"] / n,
        "ROUGE-2": 100 * totals["rouge2"] / n,
        "ROUGE-L": 100 * totals["rougeL"] / n,
    }


@dataclass(frozen=True)
class Direction:
    """Source and target language of an evaluation (None: the package's first direction)."""

    source: str | None = None
    target: str | None = None

    def resolve(self, manifest: Manifest) -> tuple[str | None, str | None]:
        """The languages to pass to the runtime: given ones, else the package's first
        served direction (a multilingual package serves several)."""
        langs = manifest.languages
        directions = langs.directions()
        first_source, first_target = directions[0] if directions else (None, None)
        return (
            self.source or first_source or (langs.source[0] if langs.source else None),
            self.target or first_target or (langs.target[0] if langs.target else None),
        )


def package_translator(
    package: Path,
    precision: str,
    batch_size: int,
    threads: int | None,
    direction: Direction = Direction(),
) -> Translator:
    """Decode with the service runtime (ONNX Runtime) exactly as the server does."""
    from service.runtime import GenerationOptions, load_runtime

    runtime = load_runtime(
        package,
        device="cpu" if precision != "fp16" else "cuda",
        precision=precision,
        intra_op_threads=threads,
    )
    source_lang, target_lang = direction.resolve(runtime.manifest)

    def run(texts: list[str], beams: int, length_penalty: float | None = None) -> list[str]:
        options = GenerationOptions(num_beams=beams, length_penalty=length_penalty)
        out: list[str] = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            results = runtime.generate_texts(
                chunk,
                options,
                source_lang=source_lang,
                target_lang=target_lang,
            )
            out.extend(r[0] for r in results)
        return out

    return run


def checkpoint_translator(
    checkpoint: Path,
    manifest: Manifest,
    batch_size: int,
    threads: int | None,
    direction: Direction = Direction(),
) -> Translator:
    """Decode with transformers generate() on the source checkpoint (torch, CPU)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(checkpoint)).eval()
    source_lang, target_lang = direction.resolve(manifest)
    extra: dict[str, Any] = {}
    if manifest.languages.tokens and target_lang:
        tokenizer.src_lang = source_lang
        extra["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(
            manifest.languages.tokens[target_lang]
        )
    prefix = manifest.task_prefix or ""
    max_source = manifest.model.max_source_positions

    def run(texts: list[str], beams: int, length_penalty: float | None = None) -> list[str]:
        penalty = {} if length_penalty is None else {"length_penalty": length_penalty}
        out: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = [prefix + t for t in texts[start : start + batch_size]]
                enc = tokenizer(
                    chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_source
                )
                gen = model.generate(**enc, num_beams=beams, do_sample=False, **extra, **penalty)
                out.extend(tokenizer.batch_decode(gen, skip_special_tokens=True))
        return out

    return run


def evaluate(
    package: Path,
    sources: list[str],
    references: list[str],
    *,
    checkpoint: Path | None,
    task: str | None = None,
    beams: Sequence[int] = (1, 4),
    precisions: Sequence[str] | None = None,
    batch_size: int = 32,
    threads: int | None = None,
    direction: Direction = Direction(),
    log: Callable[[str], None] = lambda _: None,
) -> list[SystemResult]:
    """Score the checkpoint (when given) and each package variant with each beam size."""
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    manifest = Manifest.load(package)
    task = task or manifest.task
    systems: list[tuple[str, Callable[[], Translator]]] = []
    if checkpoint is not None:
        systems.append(
            (
                "checkpoint (transformers)",
                lambda: checkpoint_translator(checkpoint, manifest, batch_size, threads, direction),
            )
        )
    for precision in precisions or list(manifest.variants):
        if precision not in manifest.variants:
            raise ValueError(
                f"package {manifest.name} has no {precision} variant "
                f"(it has {', '.join(manifest.variants)})"
            )
        systems.append(
            (
                f"{precision} (onnxruntime)",
                functools.partial(
                    package_translator, package, precision, batch_size, threads, direction
                ),
            )
        )
    results: list[SystemResult] = []
    for name, make in systems:
        translator = make()
        for beam in beams:
            start = time.perf_counter()
            hyps = translator(sources, beam)
            seconds = time.perf_counter() - start
            scores = score(task, hyps, references)
            results.append(SystemResult(name, beam, scores, seconds, hyps))
            log(
                f"{name:28s} beams={beam}: "
                + "  ".join(f"{k} {v:.2f}" for k, v in scores.items())
                + f"  ({seconds:.1f}s)"
            )
    return results


def markdown_table(results: list[SystemResult]) -> str:
    """The results as a markdown table (one row per system and beam size)."""
    metrics = list(results[0].scores) if results else []
    lines = [
        "| system | search | " + " | ".join(metrics) + " | seconds |",
        "|---|---|" + "---:|" * (len(metrics) + 1),
    ]
    for r in results:
        search = "greedy" if r.beams == 1 else f"beam {r.beams}"
        lines.append(
            f"| {r.system} | {search} | "
            + " | ".join(f"{r.scores[m]:.2f}" for m in metrics)
            + f" | {r.seconds:.1f} |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line flags."""
    p = argparse.ArgumentParser(
        prog="python -m export.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--package", type=Path, required=True, help="model package directory")
    p.add_argument(
        "--source",
        type=Path,
        default=None,
        help="source checkpoint dir to compare against (needs torch)",
    )
    p.add_argument("--src", required=True, help="inputs: FILE[.gz] one a line, or FILE.csv:COL")
    p.add_argument("--ref", required=True, help="references, same forms as --src")
    p.add_argument(
        "--task",
        choices=["translation", "summarization", "chat"],
        default=None,
        help="scoring (default: the package's task)",
    )
    p.add_argument("--source-lang", default=None, help="source language (multilingual)")
    p.add_argument("--target-lang", default=None, help="target language (multilingual)")
    p.add_argument("--beams", default="1,4", help="comma list of beam sizes (1 = greedy)")
    p.add_argument(
        "--precisions",
        default=None,
        help="comma list of package variants (default: all in the manifest)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N inputs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=None, help="intra-op threads")
    p.add_argument("--markdown", type=Path, default=None, help="write the table here")
    p.add_argument("--json", type=Path, default=None, help="write scores and hypotheses here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; prints the table and returns the exit status."""
    args = parse_args(argv)
    sources = read_texts(args.src, args.limit)
    references = read_texts(args.ref, args.limit)
    results = evaluate(
        args.package,
        sources,
        references,
        checkpoint=args.source,
        task=args.task,
        beams=[int(b) for b in args.beams.split(",")],
        precisions=args.precisions.split(",") if args.precisions else None,
        batch_size=args.batch_size,
        threads=args.threads,
        direction=Direction(args.source_lang, args.target_lang),
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    table = markdown_table(results)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
