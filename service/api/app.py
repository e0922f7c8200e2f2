"""The FastAPI application factory and its lifespan (load and warm models, then drain)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service.api import errors
from service.api.drain import DrainState
from service.api.metrics import Metrics
from service.api.middleware import ServiceMiddleware
from service.api.routes import chat, deepl, libretranslate, openai, ops, summarize, translate, ui
from service.api.usage import CharacterUsage
from service.engine import EngineConfig, LoadConfig, ModelRegistry, Runtime, Translator
from service.engine.registry import Loader
from service.settings import Settings


def load_config(settings: Settings) -> LoadConfig:
    """How the registry loads and serves packages, from the settings."""
    return LoadConfig(
        device=settings.device,
        precision=settings.precision,
        intra_op_threads=settings.intra_op_threads,
        warmup=settings.warmup,
        verify=settings.verify_packages,
        ready_policy=settings.ready_policy,
        engine=EngineConfig(
            mode=settings.batch_mode,
            max_batch_size=settings.max_batch_size,
            max_batch_tokens=settings.max_batch_tokens,
            max_batch_cache_tokens=settings.max_batch_cache_tokens,
            max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue,
            max_queue_cost=settings.max_queue_cost,
            max_request_cost=settings.max_request_cost,
            default_timeout_ms=settings.default_timeout_ms,
            worker_restart_delay_s=settings.worker_restart_delay_s,
        ),
    )


def create_app(
    settings: Settings,
    runtimes: Mapping[str, Runtime] | None = None,
    loader: Loader | None = None,
) -> FastAPI:
    """Build the app for ``settings``.

    Models are the packages in ``settings.models_dir``, loaded in the background after
    start-up (``/ready`` turns 200 once all are warmed), or the given ``runtimes``
    (name -> runtime; tests use this).
    """
    metrics = Metrics()
    registry = ModelRegistry(
        settings.models_dir,
        settings.models,
        load_config(settings),
        metrics.observer,
        runtimes,
        loader,
    )
    drain = DrainState()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await registry.start()
        try:
            yield
        finally:
            drain.begin()
            await registry.stop(settings.drain_grace_s)

    app = FastAPI(
        title="seq2seq-serve",
        version="0.1.0",
        summary="Batched translation, summarization and chat with seq2seq models on ONNX Runtime.",
        lifespan=lifespan,
        # /translate/ is a JSON 404 like any unknown path, not a bodiless 307 redirect.
        redirect_slashes=False,
        # FastAPI's /docs and /redoc load Swagger UI and ReDoc from a CDN: blank on an
        # offline network, and third-party script on the API's origin (where a key may be
        # typed into "Authorize"). The schema stays at /openapi.json; docs/api.md is the
        # documentation.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.registry = registry
    app.state.translator = Translator(registry)
    app.state.usage = CharacterUsage(settings.character_limit)
    app.state.drain = drain
    errors.install(app)
    for module in (translate, summarize, chat, openai, ops, libretranslate, deepl):
        app.include_router(module.router)
    if settings.ui:
        app.include_router(ui.router())
    app.add_middleware(ServiceMiddleware, settings=settings, metrics=metrics, drain=drain)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    return app
