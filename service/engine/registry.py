"""The served models: discovery in the models folder, loading, warm-up, state and lookup.

Each configured package becomes a :class:`ModelEntry`; once loaded it holds the model's
:class:`~service.engine.service.ModelService`, the only thing routes talk to. Lookups
raise the engine layer's typed errors (unknown model, wrong task, unsupported pair, not
ready, failed), which the API maps to HTTP statuses in one table.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from service.engine.engine import Engine
from service.engine.errors import (
    DrainingError,
    ModelFailedError,
    ModelNotFoundError,
    ModelNotReadyError,
    NoModelError,
    UnsupportedLanguagePairError,
    WrongTaskError,
)
from service.engine.observer import EngineObserver
from service.engine.ports import Runtime
from service.engine.scheduler import EngineConfig
from service.engine.service import ModelService
from service.runtime import (
    ChecksumMismatchError,
    Manifest,
    PackageError,
    load_runtime,
    share_thread_pool,
)
from service.runtime.manifest import Task
from service.runtime.sessions import default_intra_op_threads

log = logging.getLogger("service.models")

ModelState = Literal["loading", "ready", "failed"]
ReadyPolicy = Literal["all", "any"]
Loader = Callable[[Path], Runtime]
ObserverFactory = Callable[[str], EngineObserver]


@dataclass(frozen=True)
class LoadConfig:
    """How packages are loaded and served."""

    device: str = "auto"
    precision: str = "auto"
    # CPU threads (None: the cores this process may use).
    intra_op_threads: int | None = None
    # CPU: every session of the process on one ORT thread pool of intra_op_threads threads
    # (service.runtime.thread_pool), what the service runs. A process-wide switch that
    # cannot be undone, so in-process tests of the loader may leave it off.
    shared_thread_pool: bool = True
    warmup: bool = True
    engine: EngineConfig = field(default_factory=EngineConfig)
    # Check every loaded file's size and sha256 against the manifest (refuse on mismatch).
    verify: bool = True
    # /ready: "all" configured models ready, or "any": loading is over and one is ready.
    ready_policy: ReadyPolicy = "any"


def public_failure(exc: BaseException, stage: str, package: Path | None = None) -> str:
    """Why a model failed, for /ready and 503 bodies: the model's own terms, never a
    server path or an ONNX Runtime message (those go to the log)."""
    if isinstance(exc, ChecksumMismatchError):
        return f"package file {exc.file} does not match the manifest (size or sha256)"
    if isinstance(exc, PackageError):
        message = str(exc)
        if package is not None:  # the runtime names files by their full path
            message = message.replace(str(package / "manifest.json"), "manifest.json")
            message = message.replace(str(package), package.name)
        if "/" in message or "\\" in message:
            return f"invalid package ({stage}); see the server log"
        return f"invalid package: {message}"
    return f"{stage} failed ({type(exc).__name__}); see the server log"


@dataclass
class ModelEntry:
    """One configured package: its manifest, load state and (once loaded) its service."""

    name: str
    path: Path | None
    manifest: Manifest | None = None
    service: ModelService | None = None
    load_state: ModelState = "loading"
    load_failure: str = ""
    # The task an invalid manifest still names (best effort), so that a broken package is
    # reported as the failed model for its task, not as no model at all.
    declared_task: str = ""

    @property
    def state(self) -> ModelState:
        """loading, ready or failed (failed to load, or its worker died)."""
        service = self.service
        if self.load_state == "ready" and service is not None and service.engine.state == "failed":
            return "failed"
        return self.load_state

    @property
    def reason(self) -> str:
        """Why the model is failed ("" otherwise)."""
        if self.load_state == "failed":
            return self.load_failure
        if self.state == "failed" and self.service is not None:
            return self.service.engine.failure
        return ""

    @property
    def task(self) -> str:
        """translation, summarization or chat (from an invalid manifest, the task it
        names; "" when it names none or cannot be read)."""
        return self.manifest.task if self.manifest is not None else self.declared_task

    def serves_pair(self, source: str, target: str) -> bool:
        """True for a translation package that serves ``source`` -> ``target`` (the
        manifest's ``pairs`` when listed, else any of its sources into any of its
        targets)."""
        if self.manifest is None or self.task != "translation":
            return False
        return self.manifest.languages.serves(source, target)

    def pairs(self) -> list[str]:
        """ "src->tgt" of every direction a translation package serves."""
        if self.manifest is None or self.task != "translation":
            return []
        return [f"{s}->{t}" for s, t in self.manifest.languages.directions()]


def discover(models_dir: Path, names: Sequence[str]) -> list[tuple[str, Path]]:
    """(name, dir) of every package folder (one holding manifest.json) directly in models_dir."""
    found = sorted((p.name, p) for p in models_dir.iterdir() if (p / "manifest.json").is_file())
    if names:
        found = [(n, p) for n, p in found if n in names]
    return found


def default_loader(config: LoadConfig) -> Loader:
    """Load a package with the runtime (device, precision and threads from ``config``;
    the positioned pair too in continuous mode). The runtime's exact load-time rewrites
    (signed int8 weights on VNNI CPUs, beams sharing one cross K/V copy) always apply."""

    def load(path: Path) -> Runtime:
        if config.shared_thread_pool and config.device != "cuda":
            share_thread_pool(config.intra_op_threads or default_intra_op_threads())
        return load_runtime(
            path,
            device=config.device,
            precision=config.precision,
            intra_op_threads=config.intra_op_threads,
            verify=config.verify,
            positioned=config.engine.mode == "continuous",
        )

    return load


def _declared_task(package: Path) -> str:
    """The task an invalid manifest names ("" when it names no known task or is no JSON
    object)."""
    try:
        data = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    task = data.get("task") if isinstance(data, dict) else None
    return task if isinstance(task, str) and task in get_args(Task) else ""


class ModelRegistry:
    """Loads every configured package in the background and hands out ready services."""

    def __init__(
        self,
        models_dir: Path,
        names: Sequence[str],
        config: LoadConfig,
        observer_for: ObserverFactory,
        runtimes: Mapping[str, Runtime] | None = None,
        loader: Loader | None = None,
    ) -> None:
        self.config = config
        self._loader = loader or default_loader(config)
        self._observers: dict[str, EngineObserver] = {}
        self._runtimes: dict[str, Runtime] = dict(runtimes or {})
        self.entries: dict[str, ModelEntry] = {}
        if runtimes is not None:
            for name, runtime in runtimes.items():
                self.entries[name] = ModelEntry(name, None, runtime.manifest)
        else:
            for name, path in discover(models_dir, names):
                self.entries[name] = self._read_manifest(ModelEntry(name, path))
            for name in sorted(set(names) - set(self.entries)):
                self.entries[name] = ModelEntry(
                    name, None, load_state="failed", load_failure="no such package in models_dir"
                )
                log.error("model %s failed to load: no such package in models_dir", name)
            if not self.entries:
                log.error("no model packages in %s (no folder holds a manifest.json)", models_dir)
        for name in self.entries:
            self._observers[name] = observer_for(name)
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _read_manifest(entry: ModelEntry) -> ModelEntry:
        """Read the manifest up front so /models shows task and languages while loading."""
        assert entry.path is not None
        try:
            entry.manifest = Manifest.load(entry.path)
        except PackageError as exc:
            entry.load_state, entry.load_failure = (
                "failed",
                public_failure(exc, "manifest", entry.path),
            )
            entry.declared_task = _declared_task(entry.path)
            log.error("model %s failed to load: %s", entry.name, exc)
        return entry

    @property
    def all_ready(self) -> bool:
        """True when there is at least one model and every model is ready."""
        return bool(self.entries) and all(e.state == "ready" for e in self.entries.values())

    @property
    def ready(self) -> bool:
        """Ready by the configured policy: ``all`` models, or ``any`` (no model still
        loading and at least one ready; a broken package then leaves the others serving,
        and /ready still names it)."""
        if self.config.ready_policy == "all":
            return self.all_ready
        states = [e.state for e in self.entries.values()]
        return "ready" in states and "loading" not in states

    async def start(self) -> None:
        """Begin loading in the background (the server answers /health meanwhile)."""
        self._task = asyncio.create_task(self._load_all())

    async def wait_loaded(self) -> None:
        """Wait until every model is ready or failed."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self, drain_timeout_s: float) -> None:
        """Stop every model, letting accepted work finish for up to drain_timeout_s."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        services = [e.service for e in self.entries.values() if e.service is not None]
        await asyncio.gather(*(s.stop(drain_timeout_s) for s in services))

    def abort_all(self) -> None:
        """Fail all accepted work of every model with DrainingError (503) now."""
        for entry in self.entries.values():
            if entry.service is not None:
                entry.service.engine.abort(
                    DrainingError("the server's drain grace period ended before this finished")
                )

    async def _load_all(self) -> None:
        # One at a time: loading is CPU- and memory-heavy, and order keeps logs readable.
        for entry in self.entries.values():
            if entry.load_state == "loading":
                await self._load(entry)

    async def _load(self, entry: ModelEntry) -> None:
        observer = self._observers[entry.name]
        try:
            runtime = self._runtimes.get(entry.name)
            if runtime is None:
                assert entry.path is not None
                runtime = await asyncio.to_thread(self._loader, entry.path)
            entry.manifest = runtime.manifest
            engine = Engine(runtime, self.config.engine, observer, entry.name)
            service = ModelService(entry.name, runtime, engine)
            await service.start()
            entry.service = service
            observer.watch(engine.status)
            if self.config.warmup:
                await service.warm_up()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            entry.load_state = "failed"
            entry.load_failure = public_failure(
                exc, "warm-up" if entry.service else "load", entry.path
            )
            log.error("model %s failed to load: %s: %s", entry.name, type(exc).__name__, exc)
            return
        observer.on_model_ready(runtime.info, entry.task)
        entry.load_state = "ready"
        log.info(
            "model %s ready (%s, %s)", entry.name, runtime.info.precision, runtime.info.provider
        )

    # ---- lookup ----------------------------------------------------------------------
    def get(self, name: str) -> ModelService:
        """The ready model called ``name`` (ModelNotFoundError, ModelNotReadyError,
        ModelFailedError)."""
        entry = self.entries.get(name)
        if entry is None:
            raise ModelNotFoundError(name, sorted(self.entries))
        return self._ready(entry)

    @staticmethod
    def _ready(entry: ModelEntry) -> ModelService:
        state = entry.state
        if state == "loading":
            raise ModelNotReadyError(f"model {entry.name!r} is still loading")
        if state == "failed" or entry.service is None:
            what = "failed to load" if entry.load_state == "failed" else "is not available"
            raise ModelFailedError(f"model {entry.name!r} {what}", entry.reason)
        return entry.service

    def _entry_for_task(self, task: str, name: str | None) -> ModelEntry:
        if name is not None:
            entry = self.entries.get(name)
            if entry is None:
                raise ModelNotFoundError(name, sorted(self.entries))
            self._ready(entry)
            if entry.task != task:
                raise WrongTaskError(f"model {name!r} does {entry.task}, not {task}")
            return entry
        candidates = [e for e in self.entries.values() if e.task == task]
        if not candidates:
            self._raise_unknown_failures(f"no {task} model is ready")
            raise NoModelError(f"no {task} model is served")
        ready = [e for e in candidates if e.state == "ready"]
        return ready[0] if ready else candidates[0]

    def _raise_unknown_failures(self, what: str) -> None:
        """ModelFailedError when a package whose manifest could not be read (so whose task
        is unknown) failed: it may be the one that serves the request, so the answer is
        503 model_failed naming it, not "no such model" (a client error)."""
        unknown = sorted(
            e.name for e in self.entries.values() if e.state == "failed" and not e.task
        )
        if unknown:
            reason = "; ".join(f"{n}: {self.entries[n].reason}" for n in unknown)
            raise ModelFailedError(f"{what}: model(s) {', '.join(unknown)} failed to load", reason)

    def for_task(self, task: str, name: str | None) -> ModelService:
        """The named model (checked to do ``task``) or the first model doing ``task``."""
        return self._ready(self._entry_for_task(task, name))

    def for_pair(self, source: str, target: str, name: str | None) -> ModelService:
        """The translation model for a language pair: the named one (checked), else the
        ready package serving the most directions (first by name among equals)."""
        if name is not None:
            entry = self._entry_for_task("translation", name)
            assert entry.manifest is not None
            languages = entry.manifest.languages
            # A package that lists no languages is taken at its word when named explicitly.
            unlisted = not languages.source and not languages.target
            if not unlisted and not entry.serves_pair(source, target):
                raise UnsupportedLanguagePairError(
                    f"model {name!r} does not translate {source}->{target}", entry.pairs()
                )
            return self._ready(entry)
        # When several packages serve the pair, the general one answers by default: the one
        # serving the most directions (a caption specialist is reached by naming it).
        candidates = sorted(
            (e for e in self.entries.values() if e.serves_pair(source, target)),
            key=lambda e: -len(e.pairs()),
        )
        if not candidates:
            self._raise_unknown_failures(f"no model translating {source}->{target} is ready")
            pairs = sorted({p for e in self.entries.values() for p in e.pairs()})
            raise UnsupportedLanguagePairError(f"no model translates {source}->{target}", pairs)
        ready = [e for e in candidates if e.state == "ready"]
        return self._ready(ready[0] if ready else candidates[0])


__all__ = ["LoadConfig", "ModelEntry", "ModelRegistry", "ModelState", "discover"]
