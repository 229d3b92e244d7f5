"""HTTP adapters of the registry: thin routes over the services."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from registry.api import admin, clients, discovery, health, operations
from registry.api.errors import install_error_handlers

# The console runs only its own scripts and styles and talks only to this server: an injected string can
# neither load a script nor send data elsewhere, and no other site may frame it (clickjacking).
CONSOLE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ConsoleFiles(StaticFiles):
    """The console's static files, with headers that confine what the page may load and do."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(CONSOLE_HEADERS)
        return response


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
    app.mount("/ui", ConsoleFiles(directory=Path(__file__).parent / "static", html=True), name="ui")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/ui/")


__all__ = ["install"]
