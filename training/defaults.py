"""Build fallback model packages for tasks that no package in a models folder serves.

``python -m training.defaults --models-dir DIR``: the repository commits a package for every
task (``tatoeba-en-de-fr``, ``dialogue-summarizer``, ``dailydialog-chat``), so ``make
serve`` builds nothing. This is for an empty folder (a fresh
deployment volume, or a user who removed a package): a task that some package in DIR already
serves is skipped; otherwise a package is exported from the locally trained tiny checkpoint
(``training.checkpoints``, generated training text, no data folder needed), cached under
``.cache/``, and shipped into DIR with an honest description. These tiny models copy their
input: they prove the plumbing, not quality, and none of them is committed: they are built
only for a models folder with no package for their task (the tests build
``copy-summarizer`` this way, ``tests.support.artefacts.copy_summarizer``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("training.defaults")


@dataclass(frozen=True)
class Default:
    """One default package: its name in the models folder, task, family and description."""

    name: str
    task: str
    family: str
    description: str


_PLUMBING = (
    "Plumbing model, not a {what}: a tiny {family} (d_model 32) trained in this repository "
    "to copy its input, on caption-like sentences the project generates itself "
    "(training/checkpoint_corpus.py), so the {route} answer is (roughly) the input text. It "
    "proves the route, streaming and batching work, not quality. Replace it with a real "
    "model exported with python -m export. Licence: Apache-2.0 (the project's own code and "
    "generated data)."
)
DEFAULTS = (
    Default(
        "tiny-marian",
        "translation",
        "marian",
        _PLUMBING.format(what="translator", family="MarianMT", route="/translate"),
    ),
    Default(
        "copy-summarizer",
        "summarization",
        "bart",
        _PLUMBING.format(what="summarizer", family="BART", route="/summarize"),
    ),
    Default(
        "copy-chat",
        "chat",
        "blenderbot",
        _PLUMBING.format(what="chat model", family="BlenderBot", route="/chat"),
    ),
)
# Shipped int8 only, like the committed packages.
PRECISIONS = ("fp32", "int8")
SHIPPED = ("int8",)


def served_tasks(models_dir: Path) -> dict[str, str]:
    """task -> name of a package already in ``models_dir`` (first one found)."""
    tasks: dict[str, str] = {}
    for manifest in sorted(models_dir.glob("*/manifest.json")):
        try:
            task = json.loads(manifest.read_text(encoding="utf-8")).get("task")
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(task, str):
            tasks.setdefault(task, manifest.parent.name)
    return tasks


def build_default(default: Default, models_dir: Path) -> Path:
    """Build (or reuse from the cache) one default package and ship it into models_dir."""
    from export.cache import ensure_package
    from training.checkpoints import ensure_checkpoint
    from training.recipes.ship import ship

    checkpoint = ensure_checkpoint(default.family, "tiny")
    package = ensure_package(
        checkpoint, task=default.task, name=default.name, precisions=PRECISIONS
    )
    target = models_dir / default.name
    rebuild = f"python -m training.checkpoints --family {default.family} --size tiny"
    ship(package, target, list(SHIPPED), default.description, source_ref=rebuild)
    return target


def ensure_defaults(models_dir: Path) -> list[Path]:
    """Build every default whose task no package in ``models_dir`` serves yet."""
    models_dir.mkdir(parents=True, exist_ok=True)
    built = []
    tasks = served_tasks(models_dir)
    for default in DEFAULTS:
        if default.task in tasks:
            log.info(
                "%s: served by %s, skipping %s", default.task, tasks[default.task], default.name
            )
            continue
        log.info(
            "%s: building %s from the tiny %s checkpoint",
            default.task,
            default.name,
            default.family,
        )
        built.append(build_default(default, models_dir))
        tasks[default.task] = default.name
    return built


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m training.defaults",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    built = ensure_defaults(args.models_dir)
    print(
        f"{len(built)} package(s) built; {args.models_dir} serves: "
        f"{', '.join(f'{t}={n}' for t, n in sorted(served_tasks(args.models_dir).items()))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
