"""`/docs` (Swagger UI) and `/redoc` from assets served by this process: they work air-gapped.

FastAPI's defaults load both from a CDN, which leaves the pages blank on a machine without internet. The
assets come from the `fastapi-offline` package (Swagger UI and ReDoc bundles); no page here loads anything
from another origin (ReDoc's Google Fonts are off).
"""

from __future__ import annotations

import functools
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
STATIC = Path(fastapi_offline.__file__).parent / "static"
# ReDoc's side menu loads its vendor's logo from a CDN: served from here instead.
REDOC_JS = "/docs-redoc.js"
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@functools.cache
def _redoc_js() -> bytes:
    return (STATIC / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO.encode(), f"{ASSETS}/favicon.png".encode())


def install(app: FastAPI) -> None:
    """Serve the docs pages on `app` (created with `docs_url=None, redoc_url=None`)."""
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="docs-assets")
    openapi = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} — API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_JS, include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(_redoc_js(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi,
            title=f"{app.title} — API",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
