"""server.json import/export round-trips, and bad documents are refused precisely."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import Api, Tokens, tool

DOC: dict[str, Any] = {
    "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
    "name": "io.github.acme/weather",
    "description": "Weather forecasts.",
    "version": "2.1.0",
    "title": "Weather",
    "websiteUrl": "https://example.com/weather",
    "repository": {"url": "https://github.com/acme/weather", "source": "github"},
    "remotes": [{"type": "streamable-http", "url": "https://weather.example.com/mcp"}],
    "packages": [
        {
            "registryType": "pypi",
            "identifier": "acme-weather",
            "version": "2.1.0",
            "transport": {"type": "stdio"},
        }
    ],
    "_meta": {
        "io.modelcontextprotocol.registry/publisher-provided": {"tool": "ci", "build": 42},
        "dev.bastion/registry": {
            "team": "ads-eng",
            "environment": "prod",
            "classification": "public",
            "allowedGroups": ["analysts"],
            "tools": [tool("forecast"), tool("alerts")],
        },
    },
}


def test_import_then_export_round_trips(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng")
    imported = client.post("/admin/v1/import", json=DOC, headers=tokens.admin)
    assert imported.status_code == 201, imported.text
    assert imported.json()["status"] == "draft"
    server = client.get("/admin/v1/servers/io.github.acme/weather", headers=tokens.admin).json()
    assert server["transport"] == "streamable-http"
    assert server["endpoint"] == "https://weather.example.com/mcp"
    assert server["classification"] == "public"

    exported = client.get("/admin/v1/servers/io.github.acme/weather/export", headers=tokens.admin).json()
    assert exported["_meta"]["io.modelcontextprotocol.registry/publisher-provided"] == {"tool": "ci", "build": 42}
    ours = exported["_meta"]["dev.bastion/registry"]
    assert [t["name"] for t in ours["tools"]] == ["alerts", "forecast"]
    for key in ("name", "description", "version", "title", "websiteUrl", "repository", "remotes", "packages"):
        assert exported[key] == DOC[key], key

    # Import the export as the next version: same document apart from the version.
    again = {**exported, "version": "2.2.0"}
    assert client.post("/admin/v1/import", json=again, headers=tokens.admin).status_code == 201
    second = client.get(
        "/admin/v1/servers/io.github.acme/weather/export", params={"version": "2.2.0"}, headers=tokens.admin
    ).json()
    assert {**second, "version": "2.1.0"} == exported


def test_import_with_submit_goes_to_review(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng")
    out = client.post("/admin/v1/import", params={"submit": True}, json=DOC, headers=tokens.admin).json()
    assert out["status"] == "in_review"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "weather"}, "name"),
        ({"description": "x" * 101}, "description"),
        ({"version": "latest"}, "version"),
        ({"remotes": [{"type": "carrier-pigeon", "url": "https://x"}]}, "remotes.0.type"),
        (
            {"packages": [{"registryType": "npm", "identifier": "x", "version": "^1.0.0", "transport": {}}]},
            "packages.0.version",
        ),
    ],
)
def test_bad_server_json_names_the_field(
    client: TestClient, api: Api, tokens: Tokens, change: dict[str, Any], field: str
) -> None:
    api.team("ads-eng")
    response = client.post("/admin/v1/import", json={**DOC, **change}, headers=tokens.admin)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_new_server_needs_a_team(client: TestClient, tokens: Tokens) -> None:
    doc = {k: v for k, v in DOC.items() if k != "_meta"}
    response = client.post("/admin/v1/import", json=doc, headers=tokens.admin)
    assert response.status_code == 422
    assert response.json()["field"] == "team"
