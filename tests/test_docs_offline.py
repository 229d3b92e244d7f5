"""`/docs` and `/redoc` use only this server's assets (a browser renders them in tests/test_chat_web.py)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def test_docs_pages_reference_only_local_assets(client: TestClient) -> None:
    for path, asset in [("/docs", "/docs-assets/swagger-ui-bundle.js"), ("/redoc", "/docs-redoc.js")]:
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert asset in page.text
        assert re.findall(r"(?:src|href)=[\"']https?://", page.text) == [], path  # nothing from another origin
        assert "fonts.googleapis" not in page.text and "cdn.jsdelivr" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        response = client.get(f"/docs-assets/{asset}")
        assert response.status_code == 200 and len(response.content) > 1000, asset
    assert client.get("/docs/oauth2-redirect").status_code == 200
    redoc = client.get("/docs-redoc.js")
    assert redoc.status_code == 200 and b"cdn.redoc.ly" not in redoc.content and len(redoc.content) > 500_000
    assert client.get("/openapi.json").json()["info"]["title"] == "Bastion"
