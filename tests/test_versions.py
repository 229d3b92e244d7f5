"""Versions: validation, immutability, reviews, lifecycle, latest-version bookkeeping."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bastion.app import create_app
from registry.context import RegistryContext
from registry.db.models import Server, ServerVersion, Tool
from registry.settings import RegistrySettings
from tests.helpers import Api, Tokens, tool

S = "dev.bastion/ads"


@pytest.fixture
def owned(api: Api) -> Api:
    api.team("ads-eng", groups=["ads-eng"])
    api.server(S, "ads-eng")
    return api


def post_version(client: TestClient, tokens: Tokens, body: dict[str, Any]) -> Any:
    return client.post(f"/admin/v1/servers/{S}/versions", json=body, headers=tokens.admin)


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"version": "latest"}, "body.version", "reserved"),
        ({"version": "1.0"}, "body.version", "not a semantic version"),
        ({"version": "^1.2.3"}, "body.version", "not a semantic version"),
        (
            {"version": "1.0.0", "tools": [{**tool("q"), "inputSchema": {"type": "object", "properties": 5}}]},
            "body.tools.0.inputSchema",
            "not a valid JSON Schema",
        ),
        (
            {"version": "1.0.0", "tools": [{**tool("q"), "inputSchema": {"type": "string"}}]},
            "body.tools.0.inputSchema",
            "must describe an object",
        ),
        ({"version": "1.0.0", "tools": [tool("q"), tool("q")]}, "body.tools", "duplicate tool name"),
        ({"version": "1.0.0", "tools": [{**tool("q"), "name": "has space"}]}, "body.tools.0.name", "[a-zA-Z0-9_-]"),
        (
            {"version": "1.0.0", "tools": [{**tool("q"), "annotations": {"readOnly": True}}]},
            "body.tools.0.annotations",
            "unknown annotation",
        ),
    ],
)
def test_bad_versions_are_refused_naming_the_field(
    client: TestClient, owned: Api, tokens: Tokens, body: dict[str, Any], field: str, reason: str
) -> None:
    response = post_version(client, tokens, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert reason in response.json()["error"]


def test_namespaced_tool_names_must_fit_64_characters(client: TestClient, owned: Api, tokens: Tokens) -> None:
    long_name = "x" * 60  # 'ads__' + 60 = 65 characters
    response = post_version(client, tokens, {"version": "1.0.0", "tools": [tool(long_name)]})
    assert response.status_code == 422
    assert response.json()["field"] == "tools[0].name"


def test_duplicate_version_is_409_and_nothing_is_half_written(
    client: TestClient, owned: Api, tokens: Tokens, ctx: RegistryContext
) -> None:
    owned.version(S, "1.0.0", [tool("a"), tool("b")])
    again = post_version(client, tokens, {"version": "1.0.0", "tools": [tool("c")]})
    assert again.status_code == 409
    assert again.json()["field"] == "version"
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(ServerVersion)) == 1
        assert sorted(session.scalars(select(Tool.name))) == ["a", "b"]


def test_tool_hashes_are_stored_per_definition(client: TestClient, owned: Api, tokens: Tokens) -> None:
    out = owned.version(S, "1.0.0", [tool("a"), tool("b", description="other")])
    hashes = {t["name"]: t["contentHash"] for t in out["tools"]}
    assert all(h.startswith("sha256:") for h in hashes.values())
    assert hashes["a"] != hashes["b"]
    same = owned.version(S, "1.0.1", [tool("a")])
    assert same["tools"][0]["contentHash"] == hashes["a"]


def test_drafts_are_editable_then_immutable_once_submitted(client: TestClient, owned: Api, tokens: Tokens) -> None:
    owned.version(S, "1.0.0", [tool("a")])
    edited = client.patch(f"/admin/v1/servers/{S}/versions/1.0.0", json={"tools": [tool("b")]}, headers=tokens.admin)
    assert edited.status_code == 200
    assert [t["name"] for t in edited.json()["tools"]] == ["b"]
    owned.status(S, "1.0.0", "in_review")
    frozen = client.patch(f"/admin/v1/servers/{S}/versions/1.0.0", json={"tools": [tool("c")]}, headers=tokens.admin)
    assert frozen.status_code == 409
    assert "immutable" in frozen.json()["error"]


def test_a_version_without_tools_cannot_be_submitted(client: TestClient, owned: Api, tokens: Tokens) -> None:
    owned.version(S, "1.0.0", [])
    response = client.post(
        f"/admin/v1/servers/{S}/versions/1.0.0/status", json={"status": "in_review"}, headers=tokens.admin
    )
    assert response.status_code == 422
    assert response.json()["field"] == "tools"


def test_approval_without_required_reviews_is_refused(client: TestClient, owned: Api, tokens: Tokens) -> None:
    owned.version(S, "1.0.0")
    owned.status(S, "1.0.0", "in_review")
    response = client.post(
        f"/admin/v1/servers/{S}/versions/1.0.0/status", json={"status": "approved"}, headers=tokens.admin
    )
    assert response.status_code == 422
    assert response.json()["field"] == "status"
    assert "security" in response.json()["error"]


@pytest.mark.parametrize(
    ("classification", "kinds"),
    [
        ("internal", ["security"]),
        ("confidential", ["security", "privacy"]),
        ("restricted", ["security", "privacy", "genai"]),
    ],
)
def test_required_reviews_follow_classification(
    client: TestClient, api: Api, tokens: Tokens, classification: str, kinds: list[str]
) -> None:
    api.team("ads-eng")
    api.server(S, "ads-eng", classification=classification)
    api.version(S, "1.0.0")
    out = api.status(S, "1.0.0", "in_review")
    assert out["requiredReviews"] == kinds
    for i, kind in enumerate(kinds):
        out = api.review(S, "1.0.0", kind)
        expected = "approved" if i == len(kinds) - 1 else "in_review"
        assert out["status"] == expected, (kind, out["missingReviews"])
    assert out["isLatest"] is True


def test_a_rejection_is_final(client: TestClient, owned: Api, tokens: Tokens) -> None:
    owned.version(S, "1.0.0")
    owned.status(S, "1.0.0", "in_review")
    out = owned.review(S, "1.0.0", "security", "reject")
    assert out["status"] == "rejected"
    retry = client.post(
        f"/admin/v1/servers/{S}/versions/1.0.0/status", json={"status": "in_review"}, headers=tokens.admin
    )
    assert retry.status_code == 409
    assert "rejected is final" in retry.json()["error"]


def test_reviews_need_reviewers_and_separation_of_duties(client: TestClient, api: Api, tokens: Tokens) -> None:
    api.team("ads-eng", groups=["ads-eng"])
    api.server(S, "ads-eng")
    api.version(S, "1.0.0")
    api.status(S, "1.0.0", "in_review")
    url = f"/admin/v1/servers/{S}/versions/1.0.0/reviews"
    body = {"kind": "security", "decision": "approve"}
    assert client.post(url, json=body, headers=tokens("u", ["analysts"])).status_code == 403
    own_team_reviewer = tokens("r2", ["bastion-reviewers", "ads-eng"])
    response = client.post(url, json=body, headers=own_team_reviewer)
    assert response.status_code == 403
    assert "separation of duties" in response.json()["error"]


def test_team_flip_cannot_bypass_separation_of_duties(client: TestClient, api: Api, tokens: Tokens) -> None:
    """The red-team path: a reviewer in the owning team moves the server to another team, reviews it, and moves
    it back. Old code: the version was approved by its own team's member and stayed approved."""
    api.team("ads-eng", groups=["ads-eng"])
    api.team("other", groups=["other-eng"])
    api.server(S, "ads-eng")
    api.version(S, "1.0.0")
    api.status(S, "1.0.0", "in_review")
    insider = tokens("mallory", ["bastion-reviewers", "ads-eng"])
    server_url, review_url = f"/admin/v1/servers/{S}", f"/admin/v1/servers/{S}/versions/1.0.0/reviews"
    assert client.patch(server_url, json={"team": "other"}, headers=insider).status_code == 200
    review = client.post(review_url, json={"kind": "security", "decision": "approve"}, headers=insider)
    assert review.status_code == 403 and "owned" in review.json()["error"]  # her team owned it during the review
    assert client.patch(server_url, json={"team": "ads-eng"}, headers=insider).status_code == 200
    version = client.get(f"{server_url}/versions/1.0.0", headers=tokens.admin).json()
    assert version["status"] == "in_review" and version["missingReviews"] == ["security"]


def test_changing_the_owning_team_sends_approved_versions_back_to_review(
    client: TestClient, api: Api, tokens: Tokens
) -> None:
    api.team("ads-eng", groups=["ads-eng"])
    api.team("other", groups=["other-eng"])
    api.server(S, "ads-eng")
    api.publish(S, "1.0.0")
    assert client.get(f"/v0.1/servers/{S}/versions/latest", headers=tokens.admin).status_code == 200
    moved = client.patch(f"/admin/v1/servers/{S}", json={"team": "other"}, headers=tokens.reviewer)
    assert moved.status_code == 200
    version = client.get(f"/admin/v1/servers/{S}/versions/1.0.0", headers=tokens.admin).json()
    assert version["status"] == "in_review" and version["missingReviews"] == ["security"]
    assert all(r["invalidatedAt"] for r in version["reviews"])  # kept for the record, no longer counted
    assert "owning team changed from ads-eng to other" in version["transitions"][-1]["reason"]
    assert client.get(f"/v0.1/servers/{S}/versions/latest", headers=tokens.admin).status_code == 404  # unpublished
    # Someone outside both teams reviews it again; members of the former owner cannot.
    former = tokens("ann", ["bastion-reviewers", "ads-eng"])
    url = f"/admin/v1/servers/{S}/versions/1.0.0/reviews"
    assert client.post(url, json={"kind": "security", "decision": "approve"}, headers=former).status_code == 403
    assert api.review(S, "1.0.0", "security")["status"] == "approved"


def test_raising_the_classification_needs_the_stricter_reviews(client: TestClient, api: Api, tokens: Tokens) -> None:
    """Lower to public, get one security review, raise to restricted: the privacy and GenAI reviews are owed."""
    api.team("ads-eng", groups=["ads-eng"])
    api.server(S, "ads-eng", classification="restricted")
    api.version(S, "1.0.0")
    api.status(S, "1.0.0", "in_review")
    server_url = f"/admin/v1/servers/{S}"
    assert client.patch(server_url, json={"classification": "public"}, headers=tokens.reviewer).status_code == 200
    assert api.review(S, "1.0.0", "security")["status"] == "approved"
    assert client.patch(server_url, json={"classification": "restricted"}, headers=tokens.reviewer).status_code == 200
    version = client.get(f"{server_url}/versions/1.0.0", headers=tokens.admin).json()
    assert version["status"] == "in_review" and version["missingReviews"] == ["privacy", "genai"]


def test_every_transition_is_recorded_with_who_and_when(client: TestClient, owned: Api, tokens: Tokens) -> None:
    owned.publish(S, "1.0.0")
    owned.status(S, "1.0.0", "deprecated")
    out = client.get(f"/admin/v1/servers/{S}/versions/1.0.0", headers=tokens.admin).json()
    moves = [(t["fromStatus"], t["toStatus"], t["actor"]) for t in out["transitions"]]
    assert moves == [
        (None, "draft", "root"),
        ("draft", "in_review", "root"),
        ("in_review", "approved", "rita"),
        ("approved", "deprecated", "root"),
    ]
    assert all(t["at"] for t in out["transitions"])


def test_latest_tracks_the_highest_approved_version(client: TestClient, owned: Api, tokens: Tokens) -> None:
    def latest() -> str | None:
        out = client.get(f"/admin/v1/servers/{S}", headers=tokens.admin).json()
        return out["latestVersion"]

    owned.publish(S, "1.0.0")
    owned.publish(S, "1.10.0")
    owned.publish(S, "1.2.0")
    assert latest() == "1.10.0"  # semver order, not string order
    owned.status(S, "1.10.0", "deprecated")
    assert latest() == "1.2.0"  # approved beats deprecated
    owned.status(S, "1.2.0", "revoked")
    owned.status(S, "1.0.0", "revoked")
    assert latest() == "1.10.0"  # only the deprecated one is left
    owned.status(S, "1.10.0", "revoked")
    assert latest() is None


def test_owners_deprecate_but_cannot_approve(client: TestClient, owned: Api, tokens: Tokens) -> None:
    owner = tokens("o", ["ads-eng"])
    owned.version(S, "1.0.0")
    owned.status(S, "1.0.0", "in_review", headers=owner)
    approve = client.post(f"/admin/v1/servers/{S}/versions/1.0.0/status", json={"status": "approved"}, headers=owner)
    assert approve.status_code == 403
    owned.review(S, "1.0.0", "security")
    owned.status(S, "1.0.0", "deprecated", headers=owner)
    owned.status(S, "1.0.0", "approved", headers=owner)  # reinstating needs no new reviews


def test_review_mapping_is_configurable(
    settings: RegistrySettings, monkeypatch: pytest.MonkeyPatch, tokens: Tokens
) -> None:
    monkeypatch.setenv("BASTION_REQUIRED_REVIEWS", '{"internal": ["security", "genai"]}')
    custom = RegistrySettings(**settings.model_dump(exclude={"required_reviews"}))
    ctx = RegistryContext.create(custom)
    with TestClient(create_app(custom, ctx)) as client:
        api = Api(client, tokens)
        api.team("ads-eng")
        api.server(S, "ads-eng", classification="internal")
        api.version(S, "1.0.0")
        assert api.status(S, "1.0.0", "in_review")["requiredReviews"] == ["security", "genai"]
        assert api.review(S, "1.0.0", "security")["status"] == "in_review"
        assert api.review(S, "1.0.0", "genai")["status"] == "approved"
    ctx.db.dispose()


def test_versions_list_newest_first_with_cursor(client: TestClient, owned: Api, tokens: Tokens) -> None:
    for v in ["1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1"]:
        owned.version(S, v)
    page1 = client.get(f"/admin/v1/servers/{S}/versions", params={"limit": 2}, headers=tokens.admin).json()
    page2 = client.get(
        f"/admin/v1/servers/{S}/versions", params={"limit": 2, "cursor": page1["nextCursor"]}, headers=tokens.admin
    ).json()
    assert [v["version"] for v in page1["items"] + page2["items"]] == ["2.0.0-rc.1", "1.10.0", "1.2.0", "1.0.0"]
    assert page2["nextCursor"] is None


def test_unknown_server_and_version_are_404(client: TestClient, owned: Api, tokens: Tokens) -> None:
    assert client.get("/admin/v1/servers/dev.bastion/nope/versions", headers=tokens.admin).status_code == 404
    missing = client.get(f"/admin/v1/servers/{S}/versions/9.9.9", headers=tokens.admin)
    assert missing.status_code == 404
    assert missing.json()["field"] == "version"


def test_server_row_untouched_when_a_later_step_fails(
    client: TestClient, api: Api, tokens: Tokens, ctx: RegistryContext
) -> None:
    """Import creates a server and a version in one transaction: a bad version leaves no server."""
    api.team("ads-eng")
    doc = {
        "name": "dev.bastion/fresh",
        "description": "d",
        "version": "1.0.0",
        "_meta": {"dev.bastion/registry": {"team": "ads-eng", "tools": [{**tool("q"), "name": "x" * 80}]}},
    }
    response = client.post("/admin/v1/import", json=doc, headers=tokens.admin)
    assert response.status_code == 422
    with ctx.db.session() as session:
        assert session.scalar(select(Server).where(Server.name == "dev.bastion/fresh")) is None
