"""The cached tiny checkpoints and packages the tests use, and how pytest-xdist workers
share building them.

Each builder (``training.checkpoints.ensure_checkpoint``, ``export.cache.ensure_package``,
``training.checkpoint_multilingual.ensure_multi_target_marian``) holds a file lock per
artefact and reuses what is built, so parallel workers never build one twice or read a
half-written one. On a fresh clone, though, the workers soon need the same artefacts in
the same order (the end-to-end tests, first in the order, all need marian, bart and
blenderbot), so one builds while the other waits for its lock. ``build_share`` instead
gives each worker its own share of the builds up front (longest first, each to the
least-loaded worker), so the builds run side by side; whatever a test needs from another
worker's share it then waits for under that artefact's lock.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

# The task each family's test package is exported for.
FAMILY_TASKS = {
    "marian": "translation",
    "bart": "summarization",
    "t5": "translation",
    "pegasus": "summarization",
    "blenderbot": "chat",
    "m2m100": "translation",
}
FAMILIES = tuple(FAMILY_TASKS)
MULTI_TARGET = "multi-target"
# training.defaults' summarization fallback (``copy_summarizer``): no longer in models/, so
# the tests that want a package like the committed ones build it.
COPY_SUMMARIZER = "copy-summarizer"
# Rough seconds to build each unit from nothing on one core (recipe.json's build_seconds
# on a busy 2-core host; exporting takes seconds): only to balance the workers' shares.
BUILD_SECONDS = {
    "m2m100": 256.0,
    "marian": 123.0,
    "t5": 111.0,
    "pegasus": 105.0,
    MULTI_TARGET: 100.0,
    "blenderbot": 60.0,
    "bart": 51.0,
    COPY_SUMMARIZER: 20.0,  # the bart checkpoint exported once more, under its own name
}


def tiny_checkpoint(family: str) -> Path:
    """The tiny trained checkpoint of ``family`` (built once into ``.cache/checkpoints``)."""
    from training.checkpoints import ensure_checkpoint

    return ensure_checkpoint(family, "tiny")


def tiny_package(family: str, precisions: Sequence[str] = ("fp32", "int8")) -> Path:
    """The package of ``family``'s tiny checkpoint (exported once into ``.cache/packages``).

    The default (fp32 + int8) of a family the positioned decoder supports is the package
    exported with the positioned pair (``tests.support.positioned``): a superset of the
    plain one (the pair is only loaded when asked for), so the suite exports each such
    family once instead of twice."""
    from export.cache import ensure_package
    from tests.support.positioned import TASKS, positioned_package

    if family in TASKS and tuple(precisions) == ("fp32", "int8"):
        return positioned_package(family)
    return ensure_package(
        tiny_checkpoint(family),
        task=FAMILY_TASKS[family],
        name=f"tiny-{family}",
        precisions=tuple(precisions),
    )


def multi_target_package() -> Path:
    """The fp32 + int8 package of the tiny multi-target Marian (en -> de / fr)."""
    from export.cache import ensure_package
    from training.checkpoint_multilingual import ensure_multi_target_marian

    return ensure_package(
        ensure_multi_target_marian(), "translation", "tiny-multi-target", ("fp32", "int8")
    )


def copy_summarizer(models_dir: Path) -> Path:
    """Ship training.defaults' summarization fallback into ``models_dir`` as ``make defaults``
    builds it for a folder with no summarizer: the tiny BART trained to copy its input,
    exported fp32 + int8 (cached in ``.cache/packages``), int8 shipped with the plumbing
    description. A package like the committed ones (int8 only, manifest rewritten by
    ``training.recipes.ship``, no positioned graphs); it was committed as
    ``models/copy-summarizer`` until a real summarizer replaced it."""
    from training.defaults import DEFAULTS, build_default

    (default,) = (d for d in DEFAULTS if d.name == COPY_SUMMARIZER)
    return build_default(default, models_dir)


def _build_unit(unit: str) -> None:
    if unit == MULTI_TARGET:
        multi_target_package()
        return
    if unit == COPY_SUMMARIZER:
        with tempfile.TemporaryDirectory() as folder:  # builds the cached export
            copy_summarizer(Path(folder))
        return
    tiny_package(unit)
    if unit == "marian":
        tiny_package(unit, ("fp32", "fp16"))  # tests/unit/export/test_export_families.py


def share(index: int, workers: int) -> list[str]:
    """The units worker ``index`` of ``workers`` builds, in order: longest first, each unit
    to the worker with the least work so far (the lowest index on a tie)."""
    if not 0 <= index < workers:
        raise ValueError(f"worker {index} of {workers}")
    loads = [0.0] * workers
    mine: list[str] = []
    for unit, seconds in sorted(BUILD_SECONDS.items(), key=lambda kv: (-kv[1], kv[0])):
        worker = min(range(workers), key=lambda i: (loads[i], i))
        loads[worker] += seconds
        if worker == index:
            mine.append(unit)
    return mine


def build_share(index: int, workers: int) -> list[tuple[str, BaseException]]:
    """Build (or find built) this worker's share; return the units that failed, with their
    errors, and go on past them: a test that needs one rebuilds it and fails on its own."""
    failed: list[tuple[str, BaseException]] = []
    for unit in share(index, workers):
        try:
            _build_unit(unit)
        except Exception as exc:
            failed.append((unit, exc))
    return failed
