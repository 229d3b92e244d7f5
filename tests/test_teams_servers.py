"""Teams and servers: validation, ownership, governed fields."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.helpers import Api, Tokens


def test_team_create_conflict_and_validation(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng", groups=["ads-eng"])
    dup = client.post("/admin/v1/teams", json={"name": "ads-eng", "supportChannel": "#x"}, headers=tokens.admin)
    assert dup.status_code == 409
    assert dup.json()["field"] == "name"
    bad = client.post("/admin/v1/teams", json={"name": "Ads Eng", "supportChannel": "#x"}, headers=tokens.admin)
    assert bad.status_code == 422
    assert bad.json()["field"] == "body.name"
    missing = client.post("/admin/v1/teams", json={"name": "ok"}, headers=tokens.admin)
    assert missing.status_code == 422
    assert missing.json()["field"] == "body.supportChannel"


def test_team_members_may_edit_their_team_but_not_others(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng", groups=["ads-eng"])
    api.team("search", groups=["search"])
    own = client.patch("/admin/v1/teams/ads-eng", json={"supportChannel": "#ads"}, headers=tokens("a", ["ads-eng"]))
    assert own.status_code == 200
    assert own.json()["supportChannel"] == "#ads"
    other = client.patch("/admin/v1/teams/search", json={"supportChannel": "#x"}, headers=tokens("a", ["ads-eng"]))
    assert other.status_code == 403


def test_team_with_servers_cannot_be_deleted(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng")
    api.server("dev.bastion/ads", "ads-eng")
    response = client.delete("/admin/v1/teams/ads-eng", headers=tokens.admin)
    assert response.status_code == 409
    assert "still owns 1 server" in response.json()["error"]


def test_team_that_owned_servers_before_is_kept(client: TestClient, api: Api, tokens: Tokens) -> None:
    """A 500 (foreign key of the ownership history) before: now a 409 that says why."""
    api.team("ads-eng")
    api.team("search")
    api.server("dev.bastion/ads", "ads-eng")
    moved = client.patch("/admin/v1/servers/dev.bastion/ads", json={"team": "search"}, headers=tokens.admin)
    assert moved.status_code == 200, moved.text
    response = client.delete("/admin/v1/teams/ads-eng", headers=tokens.admin)
    assert response.status_code == 409
    assert "ownership history" in response.json()["error"]
    assert client.get("/admin/v1/teams/ads-eng", headers=tokens.admin).status_code == 200


@pytest.mark.parametrize(
    ("patch", "field", "reason"),
    [
        ({"name": "no-slash"}, "body.name", "reverse-DNS"),
        ({"name": "a/b/c"}, "body.name", "reverse-DNS"),
        ({"description": "x" * 101}, "body.description", "at most 100 characters"),
        ({"environment": "staging"}, "body.environment", "'dev' or 'prod'"),
        ({"classification": "secret"}, "body.classification", "restricted"),
        ({"shortName": "Bad_Name"}, "body.shortName", "lowercase"),
        ({"transport": "streamable-http", "endpoint": "ftp://x"}, "body.endpoint", "http"),
    ],
)
def test_invalid_server_fields_name_the_field(
    client: TestClient, api: Api, tokens: Tokens, patch: dict[str, str], field: str, reason: str
) -> None:
    api.team("ads-eng")
    body = {"name": "dev.bastion/ads", "team": "ads-eng", "description": "d", "transport": "builtin", **patch}
    response = client.post("/admin/v1/servers", json=body, headers=tokens.admin)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["field"] == field
    assert reason in error["error"]


def test_transport_and_endpoint_must_agree(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng")
    base = {"name": "dev.bastion/ads", "team": "ads-eng", "description": "d"}
    remote = client.post("/admin/v1/servers", json={**base, "transport": "streamable-http"}, headers=tokens.admin)
    assert remote.status_code == 422
    assert remote.json()["field"] == "endpoint"
    builtin = client.post(
        "/admin/v1/servers", json={**base, "transport": "builtin", "endpoint": "http://x/mcp"}, headers=tokens.admin
    )
    assert builtin.status_code == 422


def test_unknown_team_is_404_naming_team(client: TestClient, tokens: Tokens) -> None:
    body = {"name": "dev.bastion/ads", "team": "ghosts", "description": "d", "transport": "builtin"}
    response = client.post("/admin/v1/servers", json=body, headers=tokens.admin)
    assert response.status_code == 404
    assert response.json()["field"] == "team"


def test_short_names_are_unique_because_tool_names_would_collide(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng")
    first = api.server("dev.bastion/sql", "ads-eng")
    assert first["shortName"] == "sql"
    clash = client.post(
        "/admin/v1/servers",
        json={"name": "com.other/sql", "team": "ads-eng", "description": "d", "transport": "builtin"},
        headers=tokens.admin,
    )
    assert clash.status_code == 409
    assert clash.json()["field"] == "shortName"
    renamed = api.server("com.other/sql", "ads-eng", shortName="other-sql")
    assert renamed["shortName"] == "other-sql"


def test_owners_register_servers_for_their_own_team_only(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng", groups=["ads-eng"])
    api.team("search", groups=["search"])
    body = {"name": "dev.bastion/ads", "team": "ads-eng", "description": "d", "transport": "builtin"}
    assert client.post("/admin/v1/servers", json=body, headers=tokens("o", ["ads-eng"])).status_code == 201
    other = {**body, "name": "dev.bastion/search", "team": "search"}
    assert client.post("/admin/v1/servers", json=other, headers=tokens("o", ["ads-eng"])).status_code == 403


def test_owners_edit_descriptions_but_reviewers_govern_access(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng", groups=["ads-eng"])
    api.server("dev.bastion/ads", "ads-eng")
    owner = tokens("o", ["ads-eng"])
    ok = client.patch("/admin/v1/servers/dev.bastion/ads", json={"description": "new"}, headers=owner)
    assert ok.status_code == 200
    assert ok.json()["description"] == "new"
    widen = client.patch("/admin/v1/servers/dev.bastion/ads", json={"allowedGroups": ["everyone"]}, headers=owner)
    assert widen.status_code == 403
    assert "allowed_groups" in widen.json()["error"]
    promote = client.patch("/admin/v1/servers/dev.bastion/ads", json={"environment": "prod"}, headers=owner)
    assert promote.status_code == 403
    by_reviewer = client.patch(
        "/admin/v1/servers/dev.bastion/ads", json={"environment": "prod"}, headers=tokens.reviewer
    )
    assert by_reviewer.status_code == 200
    assert by_reviewer.json()["environment"] == "prod"


def test_non_members_cannot_see_servers_in_the_admin_api(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng", groups=["ads-eng"])
    api.server("dev.bastion/ads", "ads-eng")
    outsider = tokens("eve", ["search"])
    assert client.get("/admin/v1/servers/dev.bastion/ads", headers=outsider).status_code == 404
    assert client.get("/admin/v1/servers", headers=outsider).json()["items"] == []
    assert client.get("/admin/v1/servers", headers=tokens("o", ["ads-eng"])).json()["items"][0]["name"] == (
        "dev.bastion/ads"
    )


def test_encoded_and_raw_server_names_both_route(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng")
    api.server("dev.bastion/ads", "ads-eng")
    assert client.get("/admin/v1/servers/dev.bastion%2Fads", headers=tokens.admin).status_code == 200
    assert client.get("/admin/v1/servers/dev.bastion/ads", headers=tokens.admin).status_code == 200


def test_admin_lists_paginate(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("t")
    for i in range(5):
        api.server(f"dev.bastion/s{i}", "t")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/admin/v1/servers", params=params, headers=tokens.admin).json()
        seen += [s["name"] for s in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert seen == [f"dev.bastion/s{i}" for i in range(5)]
    bad = client.get("/admin/v1/servers", params={"cursor": "garbage!"}, headers=tokens.admin)
    assert bad.status_code == 400
    assert bad.json()["field"] == "cursor"
    # The bounds are in the schema (1-100), so out of range is a validation error naming the parameter.
    too_many = client.get("/admin/v1/servers", params={"limit": 1000}, headers=tokens.admin)
    assert too_many.status_code == 422
    assert too_many.json()["field"] == "query.limit"
