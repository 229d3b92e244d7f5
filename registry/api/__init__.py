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
    # Every route below authenticates before it reads the request (`AuthenticatedRoute`).
    routers = [discovery.router, clients.router, operations.router, admin.router]
    for router in routers:
        app.include_router(router)
    # Routes taking a server name, for a 404 naming a malformed one (see registry.api.convertors).
    app.state.server_routes = [route for router in routers for route in router.routes]
    # The web page: static files; every datum it shows comes from the APIs above, with the
    # caller's own token, so it can show nobody more than the API would.
    app.mount("/ui", StaticFiles(directory=Path(__file__).parent / "static", html=True), name="ui")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/")


__all__ = ["install"]
