"""Pick the summarizer's serving decoding on DialogSum validation, never on a test set.

``python -m training.recipes.tune_summarize --package PKG --checkpoint CKPT
--data-dir ../shared/data [--beams 2,4,6] [--length-penalties 0.8,1.0,1.5]
[--no-repeat 0,3] [--limit 200]``

Decodes the first ``--limit`` DialogSum validation dialogues with every (num_beams,
length_penalty, no_repeat_ngram_size) of the grid through the service runtime (the int8
variant the server runs), scores each by the mean of ROUGE-1/2/L F1 and writes the best
into the checkpoint's ``generation_config.json``, so the next export carries it as the
package's defaults (what ``/summarize`` uses when a request says nothing). The grid and
its scores go to ``decoding.json`` beside it. ``max_length`` stays the recipe's
(``--max-target-len``, longer than any reference summary).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from export.evaluate import score
from training.recipes.eval_summarize import Decoding, Summarize, package_summarizer
from training.recipes.summarization_data import DIALOGSUM_VALIDATION, Dialogue, read_csv
from training.recipes.tune_decoding import parse_grid

log = logging.getLogger("tune_summarize")


def tune(
    summarize: Summarize, dialogues: list[Dialogue], grid: list[Decoding]
) -> list[dict[str, float]]:
    """ROUGE of every grid point (with ``mean`` of ROUGE-1/2/L), best first."""
    sources = [d.dialogue for d in dialogues]
    references = [d.summary for d in dialogues]
    rows: list[dict[str, float]] = []
    for decoding in grid:
        started = time.monotonic()
        hypotheses, _ = summarize(sources, decoding)
        rouge = score("summarization", hypotheses, references)
        mean = sum(rouge.values()) / len(rouge)
        row = {
            "num_beams": decoding.num_beams,
            "length_penalty": decoding.length_penalty or 1.0,
            "no_repeat_ngram_size": decoding.no_repeat_ngram_size or 0,
            **rouge,
            "mean": mean,
        }
        log.info("%s (%.0fs)", json.dumps(row), time.monotonic() - started)
        rows.append(row)
    return sorted(rows, key=lambda row: -row["mean"])


def make_grid(beams: list[int], penalties: list[float], no_repeat: list[int]) -> list[Decoding]:
    """Every combination (greedy only once per n-gram block: a length penalty needs beams)."""
    grid: list[Decoding] = []
    for num_beams in beams:
        for penalty in penalties if num_beams > 1 else [1.0]:
            grid += [Decoding(num_beams, penalty, n) for n in no_repeat]
    return grid


def write_choice(checkpoint: Path, best: dict[str, float], grid: list[dict[str, float]]) -> None:
    """Put the chosen decoding into the checkpoint's generation config; record the grid."""
    path = checkpoint / "generation_config.json"
    config = json.loads(path.read_text())
    config["num_beams"] = int(best["num_beams"])
    config["length_penalty"] = float(best["length_penalty"])
    config["no_repeat_ngram_size"] = int(best["no_repeat_ngram_size"]) or None
    path.write_text(json.dumps(config, indent=2) + "\n")
    record = {"selected": best, "grid": grid, "selected_on": "DialogSum validation"}
    (checkpoint / "decoding.json").write_text(json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--package", type=Path, required=True, help="exported package of CHECKPOINT")
    p.add_argument("--checkpoint", type=Path, required=True, help="its Hugging Face checkpoint")
    p.add_argument("--data-dir", type=Path, required=True, help="folder with dialogsum/")
    p.add_argument("--beams", default="2,4,6", help="comma list")
    p.add_argument("--length-penalties", default="0.8,1.0,1.5", help="comma list")
    p.add_argument("--no-repeat", default="0,3", help="comma list of no_repeat_ngram_size")
    p.add_argument("--precision", default="int8", help="the variant the service runs")
    p.add_argument("--limit", type=int, default=200, help="tune on the first N dialogues")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    dialogues = read_csv(args.data_dir / DIALOGSUM_VALIDATION, args.limit)
    grid = make_grid(
        parse_grid(args.beams, int),
        parse_grid(args.length_penalties, float),
        parse_grid(args.no_repeat, int),
    )
    rows = tune(package_summarizer(args.package, args.precision), dialogues, grid)
    write_choice(args.checkpoint, rows[0], rows)
    log.info("selected %s into %s", json.dumps(rows[0]), args.checkpoint)


if __name__ == "__main__":
    main()
