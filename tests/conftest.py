"""Shared fixtures: locally built model checkpoints and exported packages.

Checkpoints train on generated text (``training.checkpoint_corpus``), so neither needs a data
folder. Both are cached under ``.cache/`` (keyed by a fingerprint of the recipe code), so the
first run builds them and later runs reuse them.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.artefacts import build_share

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# Parallel workers share the cores: OpenMP threads (PyTorch) that spin-wait at every
# barrier while the other worker holds the core run many times slower than sleeping ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Fixtures that build the cached tiny artefacts (directly or through another fixture).
_ARTEFACT_FIXTURES = {"tiny_checkpoint", "tiny_package", "copy_summarizer"}


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
    """Mark every test that takes the real-data folder ``data`` (``make test-data`` runs them),
    and put the files with the most ``slow`` tests first: pytest-xdist's ``loadfile`` hands
    files out in collection order, so a long file started last would leave the other
    workers idle at the end."""
    for item in items:
        if "data_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)

    def file_of(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    slow_per_file = Counter(file_of(i) for i in items if i.get_closest_marker("slow"))
    items.sort(key=lambda item: -slow_per_file[file_of(item)])


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
    from tests.support.artefacts import tiny_checkpoint

    return tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_package() -> Callable[..., Path]:
    """Return a function exporting (or reusing) the package of a family's tiny checkpoint
    (``tests.support.artefacts.tiny_package``: the default of a family the positioned
    decoder supports is its positioned package)."""
    from tests.support.artefacts import tiny_package

    return tiny_package


@pytest.fixture(scope="session")
def copy_summarizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """training.defaults' summarization fallback (``copy-summarizer``: a tiny BART trained
    to copy, int8 only, no positioned graphs), shipped into a temporary models folder as
    ``make defaults`` ships it (``tests.support.artefacts.copy_summarizer``); tests that
    need a package like the committed ones use it. Shared by the session: copy it before
    changing it."""
    from tests.support.artefacts import copy_summarizer

    return copy_summarizer(tmp_path_factory.mktemp("defaults"))


@pytest.hookimpl(wrapper=True)
def pytest_runtestloop(session: pytest.Session) -> Iterator[object]:
    """In a pytest-xdist worker (``make test``), first build this worker's share of the
    cached tiny artefacts (``tests.support.artefacts``), so that on a fresh clone the
    workers build them side by side instead of waiting on each other's locks. Only when
    some collected test uses them; outside any test, so no test's timeout counts it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if (
        worker.startswith("gw")
        and workers > 1
        and not session.config.option.collectonly
        and any(_ARTEFACT_FIXTURES & set(getattr(i, "fixturenames", ())) for i in session.items)
    ):
        for unit, exc in build_share(int(worker[2:]), workers):
            print(f"[{worker}] building {unit} failed: {exc!r}", file=sys.stderr)
    return (yield)
