"""HTTP adapters of the registry: thin routes over the services."""

from fastapi import FastAPI

from registry.api import admin, clients, discovery, health, operations
from registry.api.errors import install_error_handlers


def install(app: FastAPI) -> None:
    """Mount the registry's routes and error handlers on an app."""
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(discovery.router)
    app.include_router(clients.router)
    app.include_router(operations.router)
    app.include_router(admin.router)


__all__ = ["install"]
