"""Quality of the default translator, per direction and test set (docs/quality.md).

``python -m training.recipes.eval_translate --package DIR --checkpoint DIR
--data-dir ../shared/data --markdown OUT.md --json OUT.json``

For every direction the package serves: sacreBLEU and chrF on Tatoeba test; Multi30k
test_2016_flickr for en->de and en->fr (the caption domain the old default served);
WMT14 newstest2014 en->de (news: out of domain, reported only). Each set through
``export.evaluate`` (the checkpoint with transformers, each package variant with the
service's runtime), greedy and beam, plus sample outputs: the first five and the five
with the lowest sentence chrF of the served configuration (int8, the package's beams).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import sacrebleu

from export.evaluate import Direction, SystemResult, evaluate, markdown_table, read_texts
from service.runtime.manifest import Manifest


@dataclass(frozen=True)
class TestSet:
    """One evaluation set of one direction."""

    name: str
    direction: Direction
    src: Path
    ref: Path


def test_sets(data_dir: Path, manifest: Manifest) -> list[TestSet]:
    """The sets of every direction the package serves, whose files exist."""
    sets: list[TestSet] = []
    for source, target in manifest.languages.directions():
        direction = Direction(source, target)
        other = target if source == "en" else source
        folder = data_dir / "tatoeba"
        sets.append(
            TestSet(
                f"Tatoeba test {source}->{target}",
                direction,
                folder / f"test.en-{other}.{source}.gz",
                folder / f"test.en-{other}.{target}.gz",
            )
        )
        if source == "en" and target in ("de", "fr"):
            m30k = data_dir / "multi30k"
            sets.append(
                TestSet(
                    f"Multi30k test_2016_flickr {source}->{target}",
                    direction,
                    m30k / "test_2016_flickr.en.gz",
                    m30k / f"test_2016_flickr.{target}.gz",
                )
            )
        if (source, target) == ("en", "de"):
            wmt = data_dir / "wmt14"
            sets.append(
                TestSet(
                    "WMT14 newstest2014 en->de",
                    direction,
                    wmt / "newstest2014-deen-src.en.txt",
                    wmt / "newstest2014-deen-ref.de.txt",
                )
            )
    return [s for s in sets if s.src.exists() and s.ref.exists()]


def samples(
    sources: list[str], refs: list[str], result: SystemResult, worst: int = 5
) -> list[dict[str, str | float]]:
    """The first five outputs and the ``worst`` lowest by sentence chrF."""
    chrf = [
        sacrebleu.sentence_chrf(h, [r]).score for h, r in zip(result.hypotheses, refs, strict=True)
    ]
    picked = list(range(min(5, len(sources))))
    picked += [i for i in sorted(range(len(sources)), key=chrf.__getitem__) if i not in picked][
        :worst
    ]
    return [
        {
            "source": sources[i],
            "reference": refs[i],
            "output": result.hypotheses[i],
            "chrF": chrf[i],
        }
        for i in picked
    ]


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--package", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=None, help="also score transformers")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--beams", default="1,4")
    p.add_argument("--precisions", default=None, help="comma list (default: all variants)")
    p.add_argument("--limit", type=int, default=None, help="first N sentences of each set")
    p.add_argument("--only", default=None, help="substring: evaluate only matching sets")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--markdown", type=Path, required=True)
    p.add_argument("--json", type=Path, required=True)
    args = p.parse_args(argv)
    manifest = Manifest.load(args.package)
    served_beams = manifest.generation.num_beams or 1
    report: list[str] = []
    records: list[dict[str, object]] = []
    for test in test_sets(args.data_dir, manifest):
        if args.only and args.only not in test.name:
            continue
        sources = read_texts(str(test.src), args.limit)
        refs = read_texts(str(test.ref), args.limit)
        print(f"== {test.name} ({len(sources)} sentences)", file=sys.stderr, flush=True)
        results = evaluate(
            args.package,
            sources,
            refs,
            checkpoint=args.checkpoint,
            beams=[int(b) for b in args.beams.split(",")],
            precisions=args.precisions.split(",") if args.precisions else None,
            threads=args.threads,
            direction=test.direction,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
        served = next(
            (r for r in results if r.system.startswith("int8") and r.beams == served_beams),
            results[-1],
        )
        report.append(f"### {test.name} ({len(sources)} sentences)\n\n{markdown_table(results)}")
        records.append(
            {
                "set": test.name,
                "sentences": len(sources),
                "results": [
                    {k: v for k, v in asdict(r).items() if k != "hypotheses"} for r in results
                ],
                "samples": samples(sources, refs, served),
            }
        )
        args.markdown.write_text("\n".join(report))
        args.json.write_text(json.dumps(records, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
