"""Build the default model packages the service serves out of the box.

``python -m models.defaults --models-dir DIR`` makes sure DIR holds a translation, a
summarization and a chat package. A task that some package in DIR already serves (for
example the trained demo translation model) is skipped; otherwise the package is built
from the locally trained tiny checkpoints (``models.checkpoints``) and exported with
``export.pipeline`` (cached under ``.cache/``), then copied into DIR atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("models.defaults")


@dataclass(frozen=True)
class Default:
    """One default package: its name in the models folder, task and checkpoint family."""

    name: str
    task: str
    family: str


DEFAULTS = (
    Default("tiny-marian", "translation", "marian"),
    Default("tiny-bart", "summarization", "bart"),
    Default("tiny-blenderbot", "chat", "blenderbot"),
)
PRECISIONS = ("fp32", "int8")


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
    """Build (or reuse from the cache) one default package and copy it into models_dir."""
    from export.pipeline import ensure_package
    from models.checkpoints import ensure_checkpoint

    checkpoint = ensure_checkpoint(default.family, "tiny")
    package = ensure_package(
        checkpoint, task=default.task, name=default.name, precisions=PRECISIONS
    )
    target = models_dir / default.name
    staging = Path(tempfile.mkdtemp(prefix=f".{default.name}-", dir=models_dir))
    try:
        shutil.copytree(package, staging, dirs_exist_ok=True)
        os.chmod(staging, 0o755)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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
        prog="python -m models.defaults",
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
