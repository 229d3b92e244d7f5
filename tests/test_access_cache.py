"""The access-facts cache: local writes apply at once, other replicas' within the TTL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bastion.app import create_app
from registry.context import RegistryContext
from registry.settings import RegistrySettings
from tests.helpers import Api, Tokens, tool

S = "dev.bastion/ads"


def replica(settings: RegistrySettings, ttl: float) -> tuple[TestClient, RegistryContext]:
    custom = settings.model_copy(update={"registry_cache_ttl": ttl})
    ctx = RegistryContext.create(custom)
    return TestClient(create_app(custom, ctx)), ctx


@pytest.fixture
def replica_b(settings: RegistrySettings) -> Iterator[TestClient]:
    client, ctx = replica(settings, ttl=0.3)
    with client:
        yield client
    ctx.db.dispose()


def allowed(client: TestClient, headers: dict[str, str], **body: str) -> bool:
    response = client.post("/v1/authz/check", json={"server": S, **body}, headers=headers)
    assert response.status_code == 200, response.text
    return bool(response.json()["allowed"])


@pytest.fixture
def published(api: Api) -> Api:
    api.team("ads-eng")
    api.server(S, "ads-eng", environment="prod")
    api.publish(S, "1.0.0", [tool("spend")])
    return api


def test_local_revocation_applies_immediately(client: TestClient, tokens: Tokens, published: Api) -> None:
    user = tokens("ann", ["analysts"])
    assert allowed(client, user)  # now cached
    published.status(S, "1.0.0", "revoked")
    assert not allowed(client, user)


def test_local_policy_change_applies_immediately(client: TestClient, tokens: Tokens, published: Api) -> None:
    user = tokens("ann", ["analysts"])
    assert allowed(client, user, tool="spend")
    published.policy(S, {"allowedGroups": ["ads-eng"]}, tool_name="spend")
    assert not allowed(client, user, tool="spend")


def test_other_replicas_converge_within_the_ttl(
    client: TestClient, replica_b: TestClient, tokens: Tokens, published: Api
) -> None:
    user = tokens("ann", ["analysts"])
    assert allowed(replica_b, user)
    published.status(S, "1.0.0", "revoked")  # through replica A
    deadline = time.monotonic() + 0.3 + 2.0
    while allowed(replica_b, user):
        assert time.monotonic() < deadline, "replica B never saw the revocation"
        time.sleep(0.05)


def test_key_revoked_on_one_replica_is_refused_on_another(
    client: TestClient, replica_b: TestClient, tokens: Tokens
) -> None:
    secret = client.post("/admin/v1/keys", json={"name": "bot"}, headers=tokens.admin).json()["key"]
    bearer = {"Authorization": f"Bearer {secret}"}
    assert replica_b.get("/v1/catalog", headers=bearer).status_code == 200
    assert client.delete("/admin/v1/keys/bot", headers=tokens.admin).status_code == 200
    time.sleep(0.35)
    assert replica_b.get("/v1/catalog", headers=bearer).status_code == 401
