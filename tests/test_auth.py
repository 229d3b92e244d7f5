"""Authentication: JWT (HS256 and JWKS), API keys; 401 versus 403."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from sqlalchemy import select

from bastion.app import create_app
from registry.context import RegistryContext
from registry.db.models import AdminEvent, ApiKey
from registry.settings import RegistrySettings
from tests.helpers import Api, Tokens


def test_missing_token_is_401_with_challenge(client: TestClient) -> None:
    response = client.get("/v1/catalog")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("claims", "secret", "expected"),
    [
        ({"aud": "someone-else"}, None, "audience"),
        ({"iss": "evil"}, None, "issuer"),
        ({"exp": int(time.time()) - 3600}, None, "expired"),
        ({}, "wrong-secret-" + "y" * 40, "invalid token"),
    ],
)
def test_bad_tokens_are_refused_with_the_reason(
    client: TestClient, settings: RegistrySettings, claims: dict[str, Any], secret: str | None, expected: str
) -> None:
    now = int(time.time())
    payload = {"iss": "bastion", "aud": "bastion", "sub": "mallory", "iat": now, "exp": now + 60, **claims}
    token = jwt.encode(payload, secret or settings.hs_secret(), algorithm="HS256")
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert expected in response.json()["error"]


def test_garbage_and_alg_none_are_refused(client: TestClient) -> None:
    assert client.get("/v1/me", headers={"Authorization": "Bearer not-a-jwt"}).status_code == 401
    unsigned = jwt.encode({"sub": "x", "iss": "bastion", "aud": "bastion", "exp": 2**31}, None, algorithm="none")
    response = client.get("/v1/me", headers={"Authorization": f"Bearer {unsigned}"})
    assert response.status_code == 401
    assert "not accepted" in response.json()["error"]


def test_token_claims_become_the_principal(client: TestClient, tokens: Tokens, api: Api) -> None:
    api.team("ads", groups=["ads-eng"])
    api.team("growth", members=["bob"])
    me = client.get("/v1/me", headers=tokens("alice", ["ads-eng", "analysts"], clearance="confidential")).json()
    assert me == {
        "subject": "alice",
        "groups": ["ads-eng", "analysts"],
        "clearance": "confidential",
        "roles": ["user"],
        "clientId": None,
        "authMethod": "jwt",
        "teams": ["ads"],  # by group; ownership of the team's servers follows from it
    }
    assert client.get("/v1/me", headers=tokens.admin).json()["roles"] == ["admin", "user"]
    assert client.get("/v1/me", headers=tokens("bob")).json()["teams"] == ["growth"]


def test_authenticated_but_not_allowed_is_403(client: TestClient, tokens: Tokens) -> None:
    response = client.post(
        "/admin/v1/teams", json={"name": "x", "supportChannel": "#x"}, headers=tokens("alice", ["ads-eng"])
    )
    assert response.status_code == 403
    assert "only admins" in response.json()["error"]


class _Jwks:
    """A real JWKS endpoint on loopback, as an identity provider would serve it."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        keys = []
        for kid, key, alg in (("rsa-1", self.rsa, "RS256"), ("ec-1", self.ec, "ES256")):
            jwk = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        body = json.dumps({"keys": keys}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def token(self, kid: str, **claims: Any) -> str:
        now = int(time.time())
        payload = {"iss": "https://idp.example", "aud": "bastion", "sub": "idp-user", "iat": now, "exp": now + 300}
        payload.update(claims)
        key, alg = (self.rsa, "RS256") if kid == "rsa-1" else (self.ec, "ES256")
        return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def jwks() -> Iterator[_Jwks]:
    server = _Jwks()
    yield server
    server.httpd.shutdown()


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_identity_provider_tokens_via_jwks(settings: RegistrySettings, jwks: _Jwks, kid: str) -> None:
    idp_settings = settings.model_copy(update={"jwks_url": jwks.url, "jwt_issuer": "https://idp.example"})
    ctx = RegistryContext.create(idp_settings)
    with TestClient(create_app(idp_settings, ctx)) as client:
        token = jwks.token(kid, groups=["analysts"])
        me = client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["groups"] == ["analysts"]
        forged = jwks.token(kid)[:-4] + "AAAA"
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    ctx.db.dispose()


def test_api_key_lifecycle_and_hashing_at_rest(client: TestClient, tokens: Tokens, ctx: RegistryContext) -> None:
    created = client.post(
        "/admin/v1/keys", json={"name": "ci-bot", "role": "reviewer", "groups": ["ci"]}, headers=tokens.admin
    )
    assert created.status_code == 201, created.text
    secret = created.json()["key"]
    assert secret.startswith("bst_")

    me = client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()
    assert me["subject"] == "key:ci-bot"
    assert "reviewer" in me["roles"]
    assert me["authMethod"] == "api_key"

    listed = client.get("/admin/v1/keys", headers=tokens.admin).json()["items"]
    assert [k["name"] for k in listed] == ["ci-bot"]
    assert "key" not in listed[0]

    with ctx.db.session() as session:
        row = session.scalars(select(ApiKey)).one()
        stored = json.dumps([str(getattr(row, c.key)) for c in ApiKey.__table__.columns])
        events = json.dumps([e.details for e in session.scalars(select(AdminEvent))])
    secret_part = secret.split("_", 2)[2]
    assert secret_part not in stored, "the secret must not be stored"
    assert secret_part not in events, "the secret must not reach the change log"

    assert client.delete("/admin/v1/keys/ci-bot", headers=tokens.admin).status_code == 200
    revoked = client.get("/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["error"]


def test_wrong_api_key_secret_is_refused(client: TestClient, tokens: Tokens) -> None:
    secret = client.post("/admin/v1/keys", json={"name": "k1"}, headers=tokens.admin).json()["key"]
    tampered = secret[:-3] + ("AAA" if not secret.endswith("AAA") else "BBB")
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    assert client.get("/v1/me", headers={"Authorization": "Bearer bst_nope"}).status_code == 401
