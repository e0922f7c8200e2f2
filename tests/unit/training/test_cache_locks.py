"""Parallel test workers (make test runs pytest-xdist) share the artefact caches: two
processes asking for the same checkpoint or package at once build it once, and the second
gets the finished one. The builds here are fakes that wait until both processes are in,
so without the builders' file locks both would build."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from export import cache
from service.runtime.manifest import VALIDATION_FILE
from tests.support.artefacts import BUILD_SECONDS, share
from training import checkpoints

# Fork: the children inherit the patched modules (and need not import torch again).
FORK = multiprocessing.get_context("fork")


def _wait_for_both(shared: Path) -> None:
    """Block until both processes have asked, then a little more, so that the second is
    inside the builder (at its lock, or building too if there were none)."""
    deadline = time.monotonic() + 30
    while len(list(shared.glob("asked-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)


def _ask(shared: Path, get: Callable[[], Path]) -> None:
    """One worker: say it is asking, ask, and record the path it got."""
    name = multiprocessing.current_process().name
    (shared / f"asked-{name}").touch()
    (shared / f"got-{name}").write_text(str(get()))


def _run_two(shared: Path, get: Callable[[], Path]) -> set[str]:
    processes = [FORK.Process(target=_ask, args=(shared, get), name=f"w{i}") for i in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
        assert process.exitcode == 0, process.exitcode
    return {(shared / f"got-w{i}").read_text() for i in (0, 1)}


def test_two_processes_build_one_checkpoint_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()

    def build(family: str, size: str, out_dir: str | Path, allow_untrained: bool = False) -> Path:
        with (shared / "builds").open("a") as log:
            log.write(f"{family}-{size}\n")
        _wait_for_both(shared)
        (Path(out_dir) / "config.json").write_text("{}")
        return Path(out_dir)

    monkeypatch.setattr(checkpoints, "CACHE_DIR", tmp_path / "checkpoints")
    monkeypatch.setattr(checkpoints, "fingerprint", lambda family, size: "f00d")
    monkeypatch.setattr(checkpoints, "build_checkpoint", build)

    got = _run_two(shared, lambda: checkpoints.ensure_checkpoint("marian", "tiny"))

    assert (shared / "builds").read_text() == "marian-tiny\n"  # built once
    target = tmp_path / "checkpoints" / "marian-tiny-f00d"
    assert got == {str(target)} and (target / "config.json").is_file()
    # No staging folder left beside it.
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "marian-tiny-f00d",
        "marian-tiny-f00d.lock",
    ]


def test_two_processes_export_one_package_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()

    def export(
        checkpoint: str | Path,
        task: str,
        name: str,
        out_dir: str | Path,
        *args: object,
        **kw: object,
    ) -> Path:
        with (shared / "builds").open("a") as log:
            log.write(f"{name}\n")
        _wait_for_both(shared)
        package = Path(out_dir) / name
        package.mkdir(parents=True, exist_ok=True)
        (package / "manifest.json").write_text("{}")
        (package / VALIDATION_FILE).write_text("{}")
        return package

    def fingerprint(
        checkpoint: Path, task: str, precisions: Sequence[str], positioned: bool = False
    ) -> str:
        return "beef"

    monkeypatch.setattr(cache, "PACKAGE_CACHE", tmp_path / "packages")
    monkeypatch.setattr(cache, "package_fingerprint", fingerprint)
    monkeypatch.setattr(cache, "export_package", export)

    got = _run_two(
        shared, lambda: cache.ensure_package(tmp_path / "checkpoint", "translation", "tiny-x")
    )

    assert (shared / "builds").read_text() == "tiny-x\n"  # exported once
    assert got == {str(tmp_path / "packages" / "tiny-x-beef" / "tiny-x")}


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_the_workers_shares_cover_every_build_once(workers: int) -> None:
    shares = [share(i, workers) for i in range(workers)]
    built = [unit for units in shares for unit in units]
    assert sorted(built) == sorted(BUILD_SECONDS)
    loads = [sum(BUILD_SECONDS[u] for u in units) for units in shares]
    # Longest first to the least loaded: no worker ends more than one build behind another.
    assert max(loads) - min(loads) <= max(BUILD_SECONDS.values())
    with pytest.raises(ValueError):
        share(workers, workers)
