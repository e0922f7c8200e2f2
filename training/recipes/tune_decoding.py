"""Pick the serving beam size and length penalty on the validation set, never on test.

``python -m training.recipes.tune_decoding --package PKG --checkpoint CKPT --data-dir DIR``

Decodes the validation set with every (num_beams, length_penalty) pair of the grid through
the service runtime (the decode the server runs), scores each with sacreBLEU and writes the
best pair into the checkpoint's ``generation_config.json``, so the next export carries it
as the package's generation defaults (what the service uses when a request says nothing).
The grid and its scores go to ``decoding.json`` beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from export.evaluate import package_translator, read_texts, score

log = logging.getLogger("tune_decoding")
T = TypeVar("T")


def parse_grid(spec: str, kind: Callable[[str], T]) -> list[T]:
    """``"4,5,6"`` -> ``[4, 5, 6]`` with ``kind`` converting each item."""
    return [kind(item) for item in spec.split(",") if item.strip()]


def tune(
    package: Path,
    sources: list[str],
    references: list[str],
    beams: list[int],
    penalties: list[float],
    precision: str,
    batch_size: int = 32,
) -> list[dict[str, float]]:
    """BLEU of every grid point, best first."""
    translate = package_translator(package, precision, batch_size, None)
    rows: list[dict[str, float]] = []
    for num_beams in beams:
        for penalty in penalties if num_beams > 1 else [1.0]:
            started = time.monotonic()
            hypotheses = translate(sources, num_beams, penalty)
            bleu = score("translation", hypotheses, references)["BLEU"]
            secs = time.monotonic() - started
            log.info("beams %d, lp %.2f: BLEU %.2f (%.0fs)", num_beams, penalty, bleu, secs)
            rows.append({"num_beams": num_beams, "length_penalty": penalty, "BLEU": bleu})
    return sorted(rows, key=lambda row: -row["BLEU"])


def write_choice(checkpoint: Path, best: dict[str, float], grid: list[dict[str, float]]) -> None:
    """Put the chosen pair into the checkpoint's generation config; record the grid."""
    path = checkpoint / "generation_config.json"
    config = json.loads(path.read_text())
    config["num_beams"] = int(best["num_beams"])
    config["length_penalty"] = float(best["length_penalty"])
    path.write_text(json.dumps(config, indent=2) + "\n")
    record = {"selected": best, "grid": grid, "selected_on": "validation set"}
    (checkpoint / "decoding.json").write_text(json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--package", type=Path, required=True, help="exported package of CHECKPOINT")
    p.add_argument("--checkpoint", type=Path, required=True, help="its Hugging Face checkpoint")
    p.add_argument("--data-dir", type=Path, required=True, help="folder with val.{lang}.gz")
    p.add_argument("--src-lang", default="en")
    p.add_argument("--tgt-lang", default="de")
    p.add_argument("--beams", default="4,5,6", help="comma list (default 4,5,6)")
    p.add_argument("--length-penalties", default="0.6,1.0,1.4", help="comma list")
    p.add_argument("--precision", default="int8", help="the variant the service runs")
    p.add_argument("--limit", type=int, default=None, help="tune on the first N pairs")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sources = read_texts(str(args.data_dir / f"val.{args.src_lang}.gz"), args.limit)
    references = read_texts(str(args.data_dir / f"val.{args.tgt_lang}.gz"), args.limit)
    grid = tune(
        args.package,
        sources,
        references,
        parse_grid(args.beams, int),
        parse_grid(args.length_penalties, float),
        args.precision,
    )
    write_choice(args.checkpoint, grid[0], grid)
    log.info(
        "selected num_beams %d length_penalty %.2f (val BLEU %.2f) into %s",
        grid[0]["num_beams"],
        grid[0]["length_penalty"],
        grid[0]["BLEU"],
        args.checkpoint / "generation_config.json",
    )


if __name__ == "__main__":
    main()
