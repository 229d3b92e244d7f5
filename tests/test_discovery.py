"""/v0.1 answers like the official MCP registry, showing only what the caller may see."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from registry.schemas.serverjson import BASTION_META, OFFICIAL_META, ServerJson
from tests.helpers import Api, Tokens, tool

USER = {"user": "ursula", "groups": ["analysts"]}


@pytest.fixture
def catalog(api: Api) -> Api:
    api.team("ads-eng", groups=["ads-eng"])
    api.server("dev.bastion/ads", "ads-eng", environment="prod", title="Ads metrics")
    api.publish("dev.bastion/ads", "1.0.0", [tool("spend"), tool("revenue")])
    api.publish("dev.bastion/ads", "1.1.0", [tool("spend")])
    api.version("dev.bastion/ads", "2.0.0")  # a draft: invisible in discovery
    api.server("dev.bastion/lab", "ads-eng", environment="dev")
    api.publish("dev.bastion/lab", "0.1.0")
    api.server("dev.bastion/search", "ads-eng", environment="prod", description="Search tables by meaning")
    api.publish("dev.bastion/search", "1.0.0")
    return api


def get(client: TestClient, tokens: Tokens, path: str, who: dict[str, object] | None = None, **params: object):  # type: ignore[no-untyped-def]
    headers = tokens(**(who or USER))  # type: ignore[arg-type]
    return client.get(path, params=params, headers=headers)


def test_list_has_the_official_shape(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    body = get(client, tokens, "/v0.1/servers").json()
    assert set(body) == {"servers", "metadata"}
    entry = body["servers"][0]
    assert set(entry) == {"server", "_meta"}
    ServerJson.model_validate(entry["server"])  # a valid server.json
    official = entry["_meta"][OFFICIAL_META]
    assert set(official) >= {"status", "publishedAt", "updatedAt", "isLatest"}
    assert official["status"] == "active"
    ours = entry["_meta"][BASTION_META]
    assert ours["owner"] == {"team": "ads-eng", "supportChannel": "#ads-eng"}
    assert ours["classification"] == "internal"
    assert ours["reviewStatus"] == "approved"
    assert ours["health"]["status"] == "unknown"
    assert entry["server"]["remotes"][0]["url"] == "http://testserver/servers/ads/mcp"


def test_users_see_published_prod_versions_only(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    listed = [
        (e["server"]["name"], e["server"]["version"]) for e in get(client, tokens, "/v0.1/servers").json()["servers"]
    ]
    assert listed == [("dev.bastion/ads", "1.0.0"), ("dev.bastion/ads", "1.1.0"), ("dev.bastion/search", "1.0.0")]
    owner = get(client, tokens, "/v0.1/servers", {"user": "o", "groups": ["ads-eng"]}).json()["servers"]
    assert ("dev.bastion/lab", "0.1.0") in [(e["server"]["name"], e["server"]["version"]) for e in owner]


def test_version_latest_filter_and_is_latest(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    body = get(client, tokens, "/v0.1/servers", version="latest").json()
    assert [(e["server"]["name"], e["server"]["version"]) for e in body["servers"]] == [
        ("dev.bastion/ads", "1.1.0"),
        ("dev.bastion/search", "1.0.0"),
    ]
    assert all(e["_meta"][OFFICIAL_META]["isLatest"] for e in body["servers"])
    exact = get(client, tokens, "/v0.1/servers", version="1.0.0").json()["servers"]
    assert {e["server"]["name"] for e in exact} == {"dev.bastion/ads", "dev.bastion/search"}


def test_search_matches_name_title_and_description(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    by_desc = get(client, tokens, "/v0.1/servers", search="MEANING").json()["servers"]
    assert {e["server"]["name"] for e in by_desc} == {"dev.bastion/search"}
    by_title = get(client, tokens, "/v0.1/servers", search="ads metrics").json()["servers"]
    assert {e["server"]["name"] for e in by_title} == {"dev.bastion/ads"}
    assert get(client, tokens, "/v0.1/servers", search="100%_").json()["servers"] == []


def test_cursor_pagination_visits_every_entry_once(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    seen = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        body = get(client, tokens, "/v0.1/servers", **params).json()
        seen += [(e["server"]["name"], e["server"]["version"]) for e in body["servers"]]
        assert body["metadata"]["count"] == len(body["servers"])
        cursor = body["metadata"].get("nextCursor")
        if not cursor:
            break
    assert len(seen) == 3 and len(set(seen)) == 3


def test_versions_endpoint_and_single_version(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    versions = get(client, tokens, "/v0.1/servers/dev.bastion%2Fads/versions").json()["servers"]
    assert [e["server"]["version"] for e in versions] == ["1.1.0", "1.0.0"]
    latest = get(client, tokens, "/v0.1/servers/dev.bastion%2Fads/versions/latest").json()
    assert latest["server"]["version"] == "1.1.0"
    tools = latest["_meta"][BASTION_META]["tools"]
    assert [t["name"] for t in tools] == ["spend"]
    assert tools[0]["inputSchema"]["type"] == "object"
    assert latest["_meta"][BASTION_META]["reviews"][0]["kind"] == "security"
    exact = get(client, tokens, "/v0.1/servers/dev.bastion/ads/versions/1.0.0").json()
    assert exact["_meta"][OFFICIAL_META]["isLatest"] is False


@pytest.mark.parametrize(
    "path",
    [
        "/v0.1/servers/dev.bastion%2Fnope/versions",
        "/v0.1/servers/dev.bastion%2Fads/versions/2.0.0",  # a draft
        "/v0.1/servers/dev.bastion%2Flab/versions/latest",  # another team's dev server
    ],
)
def test_invisible_things_are_404(client: TestClient, tokens: Tokens, catalog: Api, path: str) -> None:
    response = get(client, tokens, path)
    assert response.status_code == 404
    assert response.json()["error"] == "Server not found"


def test_deprecated_and_revoked_versions(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    catalog.status("dev.bastion/ads", "1.0.0", "deprecated")
    catalog.status("dev.bastion/ads", "1.1.0", "revoked")
    entries = get(client, tokens, "/v0.1/servers/dev.bastion%2Fads/versions").json()["servers"]
    assert [(e["server"]["version"], e["_meta"][OFFICIAL_META]["status"]) for e in entries] == [("1.0.0", "deprecated")]
    with_deleted = get(client, tokens, "/v0.1/servers/dev.bastion%2Fads/versions", include_deleted=True).json()
    statuses = {e["server"]["version"]: e["_meta"][OFFICIAL_META]["status"] for e in with_deleted["servers"]}
    assert statuses == {"1.1.0": "deleted", "1.0.0": "deprecated"}


def test_updated_since_includes_deletions(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    mark = datetime.now(UTC).isoformat()
    catalog.status("dev.bastion/search", "1.0.0", "revoked")
    body = get(client, tokens, "/v0.1/servers", updated_since=mark).json()
    assert [(e["server"]["name"], e["_meta"][OFFICIAL_META]["status"]) for e in body["servers"]] == [
        ("dev.bastion/search", "deleted")
    ]


def test_discovery_requires_a_token_unless_configured(client: TestClient) -> None:
    assert client.get("/v0.1/servers").status_code == 401


def test_list_entries_carry_a_light_tool_summary(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    entry = get(client, tokens, "/v0.1/servers", version="latest").json()["servers"][0]
    tools = entry["_meta"][BASTION_META]["tools"]
    assert tools == [{"name": "spend", "annotations": {"readOnlyHint": True, "destructiveHint": False}}]


def test_cached_entries_reflect_edits_at_once(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    def description() -> str:
        body = get(client, tokens, "/v0.1/servers", version="latest", search="ads").json()
        return str(body["servers"][0]["server"]["description"])

    assert description() == "dev.bastion/ads server"  # now cached
    response = client.patch("/admin/v1/servers/dev.bastion/ads", json={"description": "Ad spend"}, headers=tokens.admin)
    assert response.status_code == 200
    assert description() == "Ad spend"
    client.patch("/admin/v1/teams/ads-eng", json={"supportChannel": "#ads-new"}, headers=tokens.admin)
    body = get(client, tokens, "/v0.1/servers", version="latest", search="ads").json()
    assert body["servers"][0]["_meta"][BASTION_META]["owner"]["supportChannel"] == "#ads-new"


def test_leaving_a_team_hides_its_dev_servers(client: TestClient, tokens: Tokens, catalog: Api) -> None:
    owner = {"user": "o", "groups": ["ads-eng"]}
    names = lambda: {e["server"]["name"] for e in get(client, tokens, "/v0.1/servers", owner).json()["servers"]}  # noqa: E731
    assert "dev.bastion/lab" in names()
    client.patch("/admin/v1/teams/ads-eng", json={"groups": ["ads-platform"]}, headers=tokens.admin)
    assert "dev.bastion/lab" not in names()
