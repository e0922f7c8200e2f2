"""Operations endpoints: /health, /ready, /models, /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.api.metrics import CONTENT_TYPE
from service.engine import ModelEntry

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: 200 whenever the process can answer."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """200 only when every model is loaded and warmed (and its worker alive) and the
    server is not draining; otherwise 503 naming each model's state."""
    state = request.app.state
    models = {
        name: {"state": e.state, **({"reason": e.reason} if e.reason else {})}
        for name, e in state.registry.entries.items()
    }
    is_ready = state.registry.ready and not state.drain.draining
    body = {"ready": is_ready, "draining": state.drain.draining, "models": models}
    return JSONResponse(body, status_code=200 if is_ready else 503)


def describe(entry: ModelEntry) -> dict[str, Any]:
    """The /models entry of one package."""
    manifest = entry.manifest
    service = entry.service
    out: dict[str, Any] = {
        "name": entry.name,
        "task": entry.task or None,
        "family": manifest.family if manifest else None,
        "description": manifest.description if manifest else None,
        "languages": {
            "source": list(manifest.languages.source) if manifest else [],
            "target": list(manifest.languages.target) if manifest else [],
            "pairs": entry.pairs(),
        },
        "precision": service.info.precision if service else None,
        "provider": service.info.provider if service else None,
        "threads": service.info.intra_op_threads if service else None,
        "state": entry.state,
    }
    if entry.reason:
        out["reason"] = entry.reason
    if service is not None:
        out["batching"] = dict(service.engine.status())
    return out


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    """Every configured package: task, languages, precision, provider, state."""
    return {"models": [describe(e) for e in request.app.state.registry.entries.values()]}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)
