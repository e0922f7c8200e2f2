"""The served models: discovery in the models folder, loading, warm-up and lookup."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from service.api.errors import ApiError, not_found_model
from service.api.metrics import Metrics
from service.engine import Engine, EngineConfig, GenerationRequest
from service.settings import Settings

log = logging.getLogger("service.models")

ModelState = Literal["loading", "ready", "failed"]
Loader = Callable[[Path], Any]


@dataclass
class ModelEntry:
    """One served package and its state."""

    name: str
    path: Path | None
    state: ModelState = "loading"
    reason: str = ""
    runtime: Any = None
    engine: Engine | None = None
    manifest: Any = None

    @property
    def task(self) -> str:
        """translation, summarization or chat ("" until the manifest is read)."""
        return str(getattr(self.manifest, "task", ""))

    def describe(self) -> dict[str, Any]:
        """The /models entry."""
        manifest = self.manifest
        languages = getattr(manifest, "languages", None)
        info = getattr(self.runtime, "info", None)
        out: dict[str, Any] = {
            "name": self.name,
            "task": self.task or None,
            "family": getattr(manifest, "family", None),
            "description": getattr(manifest, "description", None),
            "languages": {
                "source": list(getattr(languages, "source", []) or []),
                "target": list(getattr(languages, "target", []) or []),
            },
            "precision": getattr(info, "precision", None),
            "provider": getattr(info, "provider", None),
            "state": self.state,
        }
        if self.reason:
            out["reason"] = self.reason
        if self.engine is not None:
            out["batching"] = self.engine.status()
        return out

    def serves_pair(self, source: str, target: str) -> bool:
        """True for a translation package listing both languages."""
        languages = getattr(self.manifest, "languages", None)
        return (
            self.task == "translation"
            and source in (getattr(languages, "source", None) or [])
            and target in (getattr(languages, "target", None) or [])
        )


def discover(models_dir: Path, names: list[str]) -> list[tuple[str, Path]]:
    """(name, dir) of every package folder (one holding manifest.json) directly in models_dir."""
    found = sorted((p.name, p) for p in models_dir.iterdir() if (p / "manifest.json").is_file())
    if names:
        found = [(n, p) for n, p in found if n in names]
    return found


def _read_manifest(entry: ModelEntry) -> ModelEntry:
    """Read the manifest up front so /models shows task and languages while loading."""
    from service.runtime.manifest import Manifest, PackageError

    assert entry.path is not None
    try:
        entry.manifest = Manifest.load(entry.path)
    except PackageError as exc:
        entry.state, entry.reason = "failed", str(exc)
    return entry


def _default_loader(settings: Settings) -> Loader:
    def load(path: Path) -> Any:
        from service.runtime import load_runtime

        return load_runtime(
            path,
            device=settings.device,
            precision=settings.precision,
            intra_op_threads=settings.intra_op_threads,
        )

    return load


class ModelRegistry:
    """Loads every configured package in the background and hands out ready engines."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        runtimes: dict[str, Any] | None = None,
        loader: Loader | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._loader = loader or _default_loader(settings)
        self._preloaded = runtimes
        self.entries: dict[str, ModelEntry] = {}
        if runtimes is not None:
            for name, runtime in runtimes.items():
                self.entries[name] = ModelEntry(
                    name, None, runtime=runtime, manifest=runtime.manifest
                )
        else:
            for name, path in discover(settings.models_dir, settings.models):
                self.entries[name] = _read_manifest(ModelEntry(name, path))
            missing = set(settings.models) - set(self.entries)
            for name in sorted(missing):
                self.entries[name] = ModelEntry(
                    name, None, state="failed", reason="no such package in models_dir"
                )
        for name in self.entries:
            metrics.model_ready.labels(model=name).set(0)
        self._task: asyncio.Task[None] | None = None

    @property
    def all_ready(self) -> bool:
        """True when there is at least one model and every model is ready."""
        return bool(self.entries) and all(e.state == "ready" for e in self.entries.values())

    async def start(self) -> None:
        """Begin loading in the background (the server answers /health meanwhile)."""
        self._task = asyncio.create_task(self._load_all())

    async def wait_loaded(self) -> None:
        """Wait until every model is ready or failed."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self, drain_timeout_s: float) -> None:
        """Stop every engine, letting accepted work finish for up to drain_timeout_s."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        engines = [e.engine for e in self.entries.values() if e.engine is not None]
        await asyncio.gather(*(engine.stop(drain_timeout_s) for engine in engines))

    async def _load_all(self) -> None:
        # One at a time: loading is CPU- and memory-heavy, and order keeps logs readable.
        for entry in self.entries.values():
            if entry.state == "loading":
                await self._load(entry)

    async def _load(self, entry: ModelEntry) -> None:
        try:
            if entry.runtime is None:
                assert entry.path is not None
                entry.runtime = await asyncio.to_thread(self._loader, entry.path)
                entry.manifest = entry.runtime.manifest
            s = self.settings
            config = EngineConfig(
                mode=s.batch_mode,
                max_batch_size=s.max_batch_size,
                max_batch_tokens=s.max_batch_tokens,
                max_wait_ms=s.max_wait_ms,
                join_every_steps=s.join_every_steps,
                max_queue=s.max_queue,
                default_timeout_ms=s.default_timeout_ms,
            )
            engine = Engine(entry.runtime, config, self.metrics.observer(entry.name), entry.name)
            await engine.start()
            entry.engine = engine
            self.metrics.track_engine(
                entry.name,
                lambda: float(engine.status()["queue_depth"]),
                lambda: float(engine.status()["in_flight"]),
            )
            if s.warmup:
                await self._warm_up(entry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            entry.state = "failed"
            entry.reason = f"{type(exc).__name__}: {exc}"
            log.error("model %s failed to load: %s", entry.name, entry.reason)
            return
        info = entry.runtime.info
        self.metrics.model_info.labels(
            model=entry.name,
            precision=str(info.precision),
            provider=str(info.provider),
            task=entry.task,
        ).set(1)
        self.metrics.model_ready.labels(model=entry.name).set(1)
        entry.state = "ready"
        log.info("model %s ready (%s, %s)", entry.name, info.precision, info.provider)

    async def _warm_up(self, entry: ModelEntry) -> None:
        """One short generation so the first real request pays no lazy-initialisation cost."""
        from service.api.generation import make_options

        runtime = entry.runtime
        languages = entry.manifest.languages
        source = (languages.source or [None])[0]
        target = (languages.target or [None])[0]
        ids = await asyncio.to_thread(
            runtime.encode_texts, ["Hello."], source_lang=source, target_lang=target
        )
        opts = runtime.resolve(make_options({"max_new_tokens": 2}), target_lang=target)
        assert entry.engine is not None
        # A generous deadline: a cold model on a busy machine may be slow the first time.
        deadline = GenerationRequest.deadline_in(600_000)
        await entry.engine.submit(GenerationRequest(ids[0], opts, deadline))

    # ---- lookup ----------------------------------------------------------------------
    def get(self, name: str) -> ModelEntry:
        """The ready entry called ``name``: 404 if unknown, 503 if not ready."""
        entry = self.entries.get(name)
        if entry is None:
            raise not_found_model(name, sorted(self.entries))
        return self._ready(entry)

    def _ready(self, entry: ModelEntry) -> ModelEntry:
        if entry.state == "loading":
            raise ApiError(
                503,
                "not_ready",
                f"model {entry.name!r} is still loading",
                headers={"Retry-After": "5"},
            )
        if entry.state == "failed":
            raise ApiError(
                503, "model_failed", f"model {entry.name!r} failed to load", reason=entry.reason
            )
        return entry

    def for_task(self, task: str, name: str | None) -> ModelEntry:
        """The named model (checked to do ``task``) or the first model doing ``task``."""
        if name is not None:
            entry = self.get(name)
            if entry.task != task:
                raise ApiError(422, "wrong_task", f"model {name!r} does {entry.task}, not {task}")
            return entry
        candidates = [e for e in self.entries.values() if e.task == task]
        if not candidates:
            raise ApiError(422, "no_model", f"no {task} model is served")
        ready = [e for e in candidates if e.state == "ready"]
        return ready[0] if ready else self._ready(candidates[0])

    def for_pair(self, source: str, target: str, name: str | None) -> ModelEntry:
        """The translation model for a language pair (the named one, checked, or the first)."""
        if name is not None:
            entry = self.for_task("translation", name)
            languages = entry.manifest.languages
            # A package that lists no languages is taken at its word when named explicitly.
            unlisted = not languages.source and not languages.target
            if not unlisted and not entry.serves_pair(source, target):
                raise ApiError(
                    422,
                    "unsupported_language_pair",
                    f"model {name!r} does not translate {source}->{target}",
                    pairs=_pairs(entry),
                )
            return entry
        candidates = [e for e in self.entries.values() if e.serves_pair(source, target)]
        if not candidates:
            pairs = sorted({p for e in self.entries.values() for p in _pairs(e)})
            raise ApiError(
                422,
                "unsupported_language_pair",
                f"no model translates {source}->{target}",
                pairs=pairs,
            )
        ready = [e for e in candidates if e.state == "ready"]
        return ready[0] if ready else self._ready(candidates[0])


def _pairs(entry: ModelEntry) -> list[str]:
    if entry.task != "translation":
        return []
    languages = entry.manifest.languages
    return [f"{s}->{t}" for s in languages.source for t in languages.target if s != t]


__all__ = ["ModelEntry", "ModelRegistry", "discover"]
