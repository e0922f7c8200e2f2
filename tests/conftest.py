"""Shared fixtures: locally built model checkpoints and exported packages.

Checkpoints train on generated text (``training.checkpoint_corpus``), so neither needs a data
folder. Both are cached under ``.cache/`` (keyed by a fingerprint of the recipe code), so the
first run builds them and later runs reuse them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

FAMILIES = ("marian", "bart", "t5", "pegasus", "blenderbot", "m2m100")
# The task each family's test package is exported for.
FAMILY_TASKS = {
    "marian": "translation",
    "bart": "summarization",
    "t5": "translation",
    "pegasus": "summarization",
    "blenderbot": "chat",
    "m2m100": "translation",
}


@pytest.fixture(autouse=True, scope="session")
def _sessions_keep_their_own_thread_pools() -> Iterator[None]:
    """The service's registry makes ONNX Runtime share one thread pool process-wide, and
    from then on ORT refuses every session with a pool of its own, which the export's
    optimizer, quantizer and validation create. Tests load services and export packages in
    one process, so here the registry leaves sessions their own pools; the shared pool is
    tested in a child process (tests/unit/runtime/test_runtime_thread_pool.py)."""
    import service.engine.registry as registry

    patch = pytest.MonkeyPatch()
    patch.setattr(registry, "share_thread_pool", lambda threads: threads)
    yield
    patch.undo()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that takes the real-data folder ``data`` (``make test-data`` runs them)."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared real-text data folder ($S2S_DATA_DIR or ../shared/data), only for tests about
    a real corpus (checkpoints train on generated text and never need it); skips if absent."""
    from training.checkpoint_data import DataMissingError, resolve_data_dir

    try:
        return resolve_data_dir()
    except DataMissingError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Callable[[str], Path]:
    """Return a function building (or reusing) the tiny trained checkpoint of a family."""
    from training.checkpoints import ensure_checkpoint

    def get(family: str) -> Path:
        return ensure_checkpoint(family, "tiny")

    return get


@pytest.fixture(scope="session")
def tiny_package() -> Callable[..., Path]:
    """Return a function exporting (or reusing) the package of a family's tiny checkpoint.

    The default (fp32 + int8) of a family the positioned decoder supports is the package
    exported with the positioned pair (``tests.support.positioned``): a superset of the
    plain one (the pair is only loaded when asked for), so the suite exports each such
    family once instead of twice."""
    from export.cache import ensure_package
    from tests.support.positioned import TASKS, positioned_package
    from training.checkpoints import ensure_checkpoint

    def get(family: str, precisions: tuple[str, ...] = ("fp32", "int8")) -> Path:
        if family in TASKS and tuple(precisions) == ("fp32", "int8"):
            return positioned_package(family)
        checkpoint = ensure_checkpoint(family, "tiny")
        return ensure_package(
            checkpoint, task=FAMILY_TASKS[family], name=f"tiny-{family}", precisions=precisions
        )

    return get
