"""HTTP layer: FastAPI app, routes, schemas, errors, metrics, auth."""

from service.api.app import create_app

__all__ = ["create_app"]
