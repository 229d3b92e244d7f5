"""HTTP adapters of the registry: thin routes over the services."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

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
    # The web page: static files; every datum it shows comes from the APIs above, with the
    # caller's own token, so it can show nobody more than the API would.
    app.mount("/ui", StaticFiles(directory=Path(__file__).parent / "static", html=True), name="ui")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/")


__all__ = ["install"]
