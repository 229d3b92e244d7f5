"""The caller's identity reaches remote upstreams: signed assertions, their JWKS, token exchange, and the
server SDK (`bastion_sdk`) that verifies them and enforces per-tool rules inside a server."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import jwt
import mcp_types as types
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion.app import create_app
from bastion.live import LiveServer, free_port
from bastion_sdk import AssertionRejected, BastionIdentity, authorize_tool, current_caller
from governance.assertion import ASSERTION_HEADER, ASSERTION_TYPE
from registry.context import RegistryContext
from registry.gateway.identity import AssertionSigner
from registry.settings import RegistrySettings
from tests.gateway_fixtures import GATEWAY_TOKEN, start_gateway
from tests.gateway_harness import (
    DESTRUCTIVE,
    READ_ONLY,
    Gateway,
    HeaderRecorder,
    builtin_tools,
    remote_items,
    remote_tools,
    text,
)

pytestmark = pytest.mark.anyio

SECURE = "dev.test/secure"


def caller_json() -> str:
    caller = current_caller()
    if caller is None:
        return json.dumps(None)
    return json.dumps(
        {
            "subject": caller.subject,
            "groups": sorted(caller.groups),
            "clearance": caller.clearance.value,
            "clientId": caller.client_id,
            "approvalId": caller.approval_id,
            "source": caller.source,
            "audience": caller.audience,
        }
    )


def guarded_tools(server: MCPServer[Any], runs: list[str]) -> None:
    """The same rules, whether the server runs remotely (with the SDK) or in-process as a builtin."""

    @server.tool(annotations=READ_ONLY)
    def whoami() -> str:
        """Say who is calling."""
        return caller_json()

    @server.tool(annotations=READ_ONLY)
    @authorize_tool(groups=["ads-eng"])
    def get_revenue_metrics(day: str) -> str:
        """Revenue of a day."""
        runs.append(day)
        return f"revenue {day}=42"

    @server.tool(annotations=READ_ONLY)
    @authorize_tool(clearance="confidential")
    async def read_salaries(ctx: Context) -> str:
        """Read salaries."""
        runs.append("salaries")
        assert isinstance(ctx, Context)  # the SDK's context injection still works under the decorator
        return "salaries"

    @server.tool(annotations=DESTRUCTIVE)
    def drop_partition(day: str) -> str:
        """Drop one day of data."""
        runs.append(f"drop {day}")
        return caller_json()


class SdkUpstream:
    """A remote MCP server written with the SDK: it verifies the gateway's assertions and enforces its rules."""

    def __init__(self, issuer: str, *, jwks_url: str | None = None) -> None:
        self.server: MCPServer[Any] = MCPServer(SECURE)
        self.identity = BastionIdentity(issuer=issuer, audience=SECURE, jwks_url=jwks_url).install(self.server)
        self.runs: list[str] = []
        guarded_tools(self.server, self.runs)
        self.recorder = AllHeaders(self.server.streamable_http_app())
        self.live = LiveServer(self.recorder)

    @property
    def mcp_url(self) -> str:
        return f"{self.live.url}/mcp"


class AllHeaders(HeaderRecorder):
    """Every request's headers (the Authorization header is in `seen`, as in the harness)."""

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.requests: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.requests.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await super().__call__(scope, receive, send)


@pytest.fixture
def secure(gw: Gateway) -> Iterator[SdkUpstream]:
    upstream = SdkUpstream(gw.url)
    upstream.live.start()
    yield upstream
    upstream.live.stop()


async def publish_secure(gw: Gateway, upstream: SdkUpstream, **fields: Any) -> None:
    gw.team("data-eng", ["data-eng"])
    gw.publish(SECURE, "secure", "data-eng", await remote_tools(upstream.mcp_url),
               transport="streamable-http", endpoint=upstream.mcp_url, **fields)  # fmt: skip


async def direct_call(url: str, tool: str, headers: dict[str, str], arguments: dict[str, Any] | None = None) -> Any:
    """Call an upstream directly, as someone who bypasses the gateway would."""
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="legacy", cache=None) as client,
    ):
        return await client.call_tool(tool, arguments or {})


def signed(key: Any, kid: str, **claims: Any) -> str:
    now = int(time.time())
    body = {"iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(8), "groups": ["ads-eng"],
            "clearance": "internal", "sub": "eli", **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid, "typ": ASSERTION_TYPE})


# --- the gateway tells the upstream who calls; the upstream decides -----------------------------------------


async def test_an_sdk_upstream_refuses_a_user_outside_its_group_though_the_registry_allows(
    gw: Gateway, secure: SdkUpstream
) -> None:
    await publish_secure(gw, secure)  # no registry policy: everyone may call every tool
    secure.recorder.requests.clear()  # publishing listed the tools directly
    eve_token = gw.token("eve", ["analysts"])
    async with gw.client(eve_token) as client:
        assert "secure__get_revenue_metrics" in {t.name for t in (await client.list_tools()).tools}
        refused = await client.call_tool("secure__get_revenue_metrics", {"day": "2026-12-01"})
        assert refused.is_error
        assert "get_revenue_metrics is for members of ads-eng; eve is not one" in text(refused)
        low = await client.call_tool("secure__read_salaries", {})
        assert low.is_error and "needs clearance confidential; eve has internal" in text(low)
    assert secure.runs == []

    eli_token = gw.token("eli", ["ads-eng"], client_id="ide-1", clearance="confidential")
    async with gw.client(eli_token) as client:
        ok = await client.call_tool("secure__get_revenue_metrics", {"day": "2026-12-01"})
        assert not ok.is_error, text(ok)
        assert text(ok) == "revenue 2026-12-01=42"
        assert text(await client.call_tool("secure__read_salaries", {})) == "salaries"
        who = json.loads(text(await client.call_tool("secure__whoami", {})))
    assert who == {"subject": "eli", "groups": ["ads-eng"], "clearance": "confidential", "clientId": "ide-1",
                   "approvalId": None, "source": "assertion", "audience": SECURE}  # fmt: skip
    assert secure.runs == ["2026-12-01", "salaries"]

    # The upstream got the gateway's own credential and an assertion, never a caller's token.
    calls = [r for r in secure.recorder.requests if ASSERTION_HEADER.lower() in r]
    assert len(calls) >= 5
    assert all(r.get("authorization") == f"Bearer {GATEWAY_TOKEN}" for r in secure.recorder.requests)
    assert not any(tok in json.dumps(secure.recorder.requests) for tok in (eve_token, eli_token))
    # Each request carries its own assertion (a fresh jti): none is ever sent twice.
    assert len({r[ASSERTION_HEADER.lower()] for r in calls}) == len(calls)
    refused_rows = gw.audit(kind="call", tool="get_revenue_metrics", outcome="error")
    assert [r["subject"] for r in refused_rows] == ["eve"] and refused_rows[0]["decision"] == "allowed"


async def test_prompts_and_resources_reach_an_sdk_upstream_as_the_caller(gw: Gateway, secure: SdkUpstream) -> None:
    @secure.server.prompt(description="Who is asking.")
    def greet(topic: str) -> str:
        caller = current_caller()
        return f"{caller.subject if caller else 'nobody'} asks about {topic}"

    @secure.server.resource("secure://reports/{day}", name="report", description="A day's report.")
    def report(day: str) -> str:
        caller = current_caller()
        return f"report {day} for {caller.subject if caller else 'nobody'}"

    gw.team("data-eng", ["data-eng"])
    gw.publish(SECURE, "secure", "data-eng", await remote_tools(secure.mcp_url), await remote_items(secure.mcp_url),
               transport="streamable-http", endpoint=secure.mcp_url)  # fmt: skip
    async with gw.client(gw.token("eli", ["ads-eng"])) as client:
        got = await client.get_prompt("secure__greet", {"topic": "revenue"})
        assert [m.content.text for m in got.messages if isinstance(m.content, types.TextContent)] == [
            "eli asks about revenue"
        ]
        read = await client.read_resource("bastion://secure/secure://reports/2026-12-01")
        [content] = read.contents
        assert isinstance(content, types.TextResourceContents)
        assert (
            content.text == "report 2026-12-01 for eli"
            and content.uri == "bastion://secure/secure://reports/2026-12-01"
        )
    # Bypassing the gateway: no assertion, no prompt and no resource.
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {GATEWAY_TOKEN}"}, timeout=30) as http,
        Client(streamable_http_client(secure.mcp_url, http_client=http), mode="legacy", cache=None) as direct,
    ):
        with pytest.raises(MCPError, match="no caller assertion"):
            await direct.get_prompt("greet", {"topic": "x"})
        with pytest.raises(MCPError, match="no caller assertion"):
            await direct.read_resource("secure://reports/2026-12-01")


async def test_the_assertion_carries_the_approval_the_call_runs_under(gw: Gateway, secure: SdkUpstream) -> None:
    await publish_secure(gw, secure)
    async with gw.client(gw.token("eli", ["ads-eng"])) as client:
        parked = await client.call_tool("secure__drop_partition", {"day": "d1"})
        assert parked.structured_content is not None
        approval_id = parked.structured_content["approvalId"]
        gw.ok(gw.admin.post("/admin/v1/approvals/decide", json={"ids": [approval_id], "decision": "approve"}))
        ran = await client.call_tool("secure__drop_partition", {"day": "d1", "_approval_id": approval_id})
    assert not ran.is_error, text(ran)
    assert json.loads(text(ran))["approvalId"] == approval_id
    assert secure.runs == ["drop d1"]


async def test_forged_expired_foreign_replayed_and_missing_assertions_are_refused(
    gw: Gateway, secure: SdkUpstream
) -> None:
    url = secure.mcp_url
    signer = AssertionSigner.from_settings(gw.settings)  # the gateway's own key, from its data directory
    key = serialization.load_pem_private_key(gw.settings.assertion_key_pems()[0], password=None)
    principal_claims = {"iss": gw.url, "aud": SECURE}

    async def call(token: str | None) -> tuple[bool, str]:
        headers = {ASSERTION_HEADER: token} if token is not None else {}
        result = await direct_call(url, "get_revenue_metrics", headers, {"day": "d"})
        return bool(result.is_error), text(result)

    valid = signed(key, signer.kid, **principal_claims)
    assert await call(valid) == (False, "revenue d=42")
    assert await call(valid) == (True, "refused: the caller assertion was already used (replayed)")

    other_key = ed25519.Ed25519PrivateKey.generate()
    cases = {
        "no assertion": (None, "no caller assertion; call this server through the Bastion gateway"),
        "forged": (signed(other_key, signer.kid, **principal_claims), "signature does not verify"),
        "unknown key": (signed(other_key, "not-a-kid", **principal_claims), "a key the gateway does not publish"),
        "expired": (
            signed(key, signer.kid, **principal_claims, iat=int(time.time()) - 120, exp=int(time.time()) - 60),
            "has expired",
        ),
        "other audience": (signed(key, signer.kid, iss=gw.url, aud="dev.test/other"), "is for another server"),
        "other issuer": (signed(key, signer.kid, iss="https://evil.example", aud=SECURE), "not from the gateway"),
        "too long-lived": (
            signed(key, signer.kid, **principal_claims, exp=int(time.time()) + 86_400),
            "longer than 600 s",
        ),
        "issued in the future": (
            signed(key, signer.kid, **principal_claims, iat=int(time.time()) + 600, exp=int(time.time()) + 660),
            "issued in the future",
        ),
        "no jti": (signed(key, signer.kid, **principal_claims, jti=None), "has no id (jti)"),
        "a time that is not finite": (signed(key, signer.kid, **principal_claims, exp=float("nan")), "is not a time"),
        "HMAC with our typ": (
            jwt.encode({"sub": "eli"}, "k" * 32, algorithm="HS256", headers={"kid": signer.kid, "typ": ASSERTION_TYPE}),
            "not a Bastion caller assertion",
        ),
        "a user's access token": (gw.token("eli", ["ads-eng"]), "not a Bastion caller assertion"),
        "garbage": ("not.a.jwt", "not a well-formed JWT"),
    }
    for case, (token, reason) in cases.items():
        refused, message = await call(token)
        assert refused and message.startswith("refused: ") and reason in message, (case, message)
    assert secure.runs == ["d"]  # only the one valid assertion ran the tool


async def test_assertions_are_minted_by_the_gateway_only_for_the_registered_server(
    gw: Gateway, secure: SdkUpstream
) -> None:
    """A server registered under another name gets assertions for that name, which the SDK refuses."""
    gw.team("data-eng", ["data-eng"])
    gw.publish("dev.test/impostor", "impostor", "data-eng", await remote_tools(secure.mcp_url),
               transport="streamable-http", endpoint=secure.mcp_url)  # fmt: skip
    async with gw.client(gw.token("eli", ["ads-eng"])) as client:
        result = await client.call_tool("impostor__whoami", {})
    assert result.is_error and f"is for another server (this is {SECURE})" in text(result)


async def test_identity_none_sends_nothing_about_the_caller(gw: Gateway, secure: SdkUpstream) -> None:
    await publish_secure(gw, secure)
    assert gw.ok(gw.admin.get(f"/admin/v1/servers/{SECURE}"))["identity"] == "assertion"
    owner = gw.auth("dana", ["data-eng"])
    changed = gw.ok(gw.admin.patch(f"/admin/v1/servers/{SECURE}", json={"identity": "none"}, headers=owner))
    assert changed["identity"] == "none"
    assert gw.admin.patch(f"/admin/v1/servers/{SECURE}", json={"identity": None}).status_code == 422
    assert gw.admin.patch(f"/admin/v1/servers/{SECURE}", json={"identity": "cookie"}).status_code == 422
    secure.recorder.requests.clear()
    async with gw.client(gw.token("eli", ["ads-eng"])) as client:
        result = await client.call_tool("secure__whoami", {})
    assert result.is_error and "no caller assertion" in text(result)
    assert not any(ASSERTION_HEADER.lower() in r for r in secure.recorder.requests)
    exported = gw.ok(gw.admin.get(f"/admin/v1/servers/{SECURE}/export"))
    assert exported["_meta"]["dev.bastion/registry"]["identity"] == "none"


async def test_builtin_servers_use_the_same_decorator(tmp_path: Path, sqlite_url: str) -> None:
    """In-process, the gateway sets the caller directly; the same `@authorize_tool` and `current_caller()`."""
    runs: list[str] = []
    builtin: MCPServer[Any] = MCPServer("dev.test/guarded")
    guarded_tools(builtin, runs)
    port = free_port()
    settings = RegistrySettings(
        data_dir=tmp_path / "data", database_url=sqlite_url, jwt_secret="test-secret-" + "x" * 40,
        public_url=f"http://127.0.0.1:{port}", gateway_state_keys=["state-key-" + "k" * 40],
    )  # fmt: skip
    ctx = RegistryContext.create(settings)
    live = LiveServer(create_app(settings, ctx, builtins={"guarded": builtin}), port).start()
    gw = Gateway(settings, live)
    try:
        gw.team("data-eng", ["data-eng"])
        gw.publish("dev.test/guarded", "guarded", "data-eng", await builtin_tools(builtin))
        async with gw.client(gw.token("eve", ["analysts"])) as client:
            refused = await client.call_tool("guarded__get_revenue_metrics", {"day": "d"})
            assert refused.is_error and "is for members of ads-eng; eve is not one" in text(refused)
        async with gw.client(gw.token("eli", ["ads-eng"], clearance="confidential")) as client:
            assert text(await client.call_tool("guarded__get_revenue_metrics", {"day": "d"})) == "revenue d=42"
            assert text(await client.call_tool("guarded__read_salaries", {})) == "salaries"
            who = json.loads(text(await client.call_tool("guarded__whoami", {})))
        assert who["subject"] == "eli" and who["source"] == "in-process" and who["groups"] == ["ads-eng"]
        assert runs == ["d", "salaries"]
        # A call that needed a person's approval: the builtin sees which approval it runs under.
        async with gw.client(gw.token("eli", ["ads-eng"], clearance="confidential")) as client:
            parked = await client.call_tool("guarded__drop_partition", {"day": "d2"})
            assert parked.structured_content is not None, text(parked)
            approval_id = parked.structured_content["approvalId"]
            gw.ok(gw.admin.post("/admin/v1/approvals/decide", json={"ids": [approval_id], "decision": "approve"}))
            ran = await client.call_tool("guarded__drop_partition", {"day": "d2", "_approval_id": approval_id})
        assert json.loads(text(ran))["approvalId"] == approval_id and runs[-1] == "drop d2"
        # Called directly (no gateway, no caller), the decorated tool refuses.
        with pytest.raises(Exception, match="no authenticated caller"):
            await builtin.call_tool("get_revenue_metrics", {"day": "x"})
    finally:
        live.stop()
        ctx.db.dispose()


# --- JWKS and key rotation ---------------------------------------------------------------------------------


def _pem(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


async def test_jwks_serves_the_public_keys_and_a_rotated_key_still_verifies(tmp_path: Path, sqlite_url: str) -> None:
    new_key, old_key = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "new.pem").write_bytes(_pem(new_key))
    (tmp_path / "old.pem").write_bytes(_pem(old_key))
    gw, ctx = start_gateway(tmp_path, sqlite_url, assertion_keys=f"{tmp_path / 'new.pem'},{tmp_path / 'old.pem'}")
    upstream = SdkUpstream(gw.url)
    upstream.live.start()
    try:
        response = httpx.get(f"{gw.url}/.well-known/jwks.json")  # public: no credential
        assert response.status_code == 200 and "max-age" in response.headers["cache-control"]
        keys = response.json()["keys"]
        new_signer = AssertionSigner([_pem(new_key)], gw.url, 60)
        old_signer = AssertionSigner([_pem(old_key)], gw.url, 60)
        assert [k["kid"] for k in keys] == [new_signer.kid, old_signer.kid]
        for k in keys:
            assert k["kty"] == "OKP" and k["crv"] == "Ed25519" and k["alg"] == "EdDSA" and k["use"] == "sig"
            assert "d" not in k  # never the private half
        # The gateway signs with the first key...
        await publish_secure(gw, upstream)
        async with gw.client(gw.token("eli", ["ads-eng"])) as client:
            assert not (await client.call_tool("secure__whoami", {})).is_error
        sent = next(r[ASSERTION_HEADER.lower()] for r in upstream.recorder.requests if ASSERTION_HEADER.lower() in r)
        assert jwt.get_unverified_header(sent) == {"alg": "EdDSA", "kid": new_signer.kid, "typ": ASSERTION_TYPE}
        # A standard JWT library verifies it with the published key.
        published = jwt.PyJWKSet.from_dict(response.json())[new_signer.kid].key
        claims = jwt.decode(sent, published, algorithms=["EdDSA"], audience=SECURE, issuer=gw.url)
        assert claims["sub"] == "eli" and claims["groups"] == ["ads-eng"] and claims["exp"] - claims["iat"] == 60
        # ...and an assertion signed with the previous key (in flight during a rotation) still verifies.
        from governance import Principal

        late = old_signer.sign(Principal(subject="eli", groups=frozenset({"ads-eng"})), SECURE)
        result = await direct_call(upstream.mcp_url, "get_revenue_metrics", {ASSERTION_HEADER: late}, {"day": "r"})
        assert not result.is_error, text(result)
    finally:
        upstream.live.stop()
        gw.live.stop()
        ctx.db.dispose()


async def test_an_unreachable_jwks_is_a_clear_refusal() -> None:
    identity = BastionIdentity(issuer="http://127.0.0.1:1", audience=SECURE)  # nothing listens on port 1
    token = signed(ed25519.Ed25519PrivateKey.generate(), "k1", iss="http://127.0.0.1:1", aud=SECURE)
    for _ in range(2):  # and again within the back-off
        with pytest.raises(AssertionRejected, match="cannot read the gateway's signing keys"):
            await identity.verify(token)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def test_libsodium_signs_standard_assertions_and_refuses_tampered_ones() -> None:
    """The gateway signs and the SDK verifies with libsodium; the wire format stays standard Ed25519 JWS."""
    from governance import Principal

    issuer, key = "https://gw.example", ed25519.Ed25519PrivateKey.generate()
    signer = AssertionSigner([_pem(key)], issuer, 60)
    other_ec = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = {**jwt.algorithms.ECAlgorithm.to_jwk(other_ec.public_key(), as_dict=True), "kid": "ec-key"}
    jwks = {"keys": [ec_jwk, *signer.jwks()["keys"]]}  # a key of another type is published, and ignored
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(lambda _: httpx2.Response(200, json=jwks)))
    identity = BastionIdentity(issuer=issuer, audience=SECURE, http=http)

    async def refusal(token: str) -> str:
        try:
            await identity.verify(token)
        except AssertionRejected as exc:
            return str(exc)
        return "accepted"

    principal = Principal(subject="eli", groups=frozenset({"ads-eng", "data-eng"}), client_id="cli")

    token = signer.sign(principal, SECURE, approval_id="ap-1")
    head, body, signature = token.split(".")
    assert json.loads(_unb64url(head)) == {"alg": "EdDSA", "kid": signer.kid, "typ": ASSERTION_TYPE}
    # Ed25519 is deterministic: libsodium's signature is the one OpenSSL makes with the same key.
    assert _unb64url(signature) == key.sign(f"{head}.{body}".encode())
    assert jwt.decode(token, key.public_key(), algorithms=["EdDSA"], audience=SECURE)["sub"] == "eli"
    caller = await identity.verify(token)
    assert (caller.subject, caller.groups, caller.client_id, caller.approval_id, caller.audience) == (
        "eli", frozenset({"ads-eng", "data-eng"}), "cli", "ap-1", SECURE)  # fmt: skip
    assert await refusal(token) == "the caller assertion was already used (replayed)"
    # Signed elsewhere (OpenSSL through PyJWT) with the gateway's key: libsodium verifies it too.
    assert (await identity.verify(signed(key, signer.kid, iss=issuer, aud=SECURE))).subject == "eli"

    fresh = signer.sign(principal, SECURE).split(".")
    raw = _unb64url(fresh[2])
    flipped = bytes([raw[0] ^ 0x01]) + raw[1:]
    other_body = _b64url(json.dumps({**json.loads(_unb64url(fresh[1])), "sub": "root"}).encode())
    tampered = {
        "a flipped signature bit": f"{fresh[0]}.{fresh[1]}.{_b64url(flipped)}",
        "a signature cut short": f"{fresh[0]}.{fresh[1]}.{_b64url(raw[:-1])}",
        "a signature too long": f"{fresh[0]}.{fresh[1]}.{_b64url(raw + b'x')}",
        "no signature": f"{fresh[0]}.{fresh[1]}.",
        "changed claims": f"{fresh[0]}.{other_body}.{fresh[2]}",
        "another key's signature": signed(ed25519.Ed25519PrivateKey.generate(), signer.kid, iss=issuer, aud=SECURE),
    }
    for case, forged in tampered.items():
        assert "signature does not verify" in await refusal(forged), case
    # An EC key in the JWKS is not an assertion key: naming it is naming an unknown key.
    assert "a key the gateway does not publish" in await refusal(signed(key, "ec-key", iss=issuer, aud=SECURE))
    # The untampered assertion was refused nowhere above: it still verifies, once.
    assert (await identity.verify(".".join(fresh))).subject == "eli"
    await http.aclose()


def test_the_generated_key_is_kept_private_and_stable(tmp_path: Path) -> None:
    settings = RegistrySettings(data_dir=tmp_path)
    first = AssertionSigner.from_settings(settings)
    assert AssertionSigner.from_settings(RegistrySettings(data_dir=tmp_path)).kid == first.kid
    assert (tmp_path / "assertion-key.pem").stat().st_mode & 0o077 == 0
    with pytest.raises(ValueError, match="Ed25519"):
        AssertionSigner([_pem(ec.generate_private_key(ec.SECP256R1()))], "http://x", 60)


# --- RFC 8693 token exchange -------------------------------------------------------------------------------


class TokenEndpoint:
    """An authorization server's token endpoint of ours: it checks the subject token (a Bastion assertion for
    itself, verified with the SDK against the gateway's JWKS) and issues an access token per exchange."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/token"
        self.forms: list[dict[str, str]] = []
        self.auth: list[str | None] = []
        self.failing: dict[str, Any] | None = None
        self.verifier: BastionIdentity | None = None
        app = Starlette(routes=[Route("/token", self.token, methods=["POST"])])
        self.live = LiveServer(app, self.port)

    async def token(self, request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.forms.append(form)
        self.auth.append(request.headers.get("authorization"))
        if self.failing is not None:
            return JSONResponse(self.failing, status_code=400)
        assert self.verifier is not None
        caller = await self.verifier.verify(form["subject_token"])
        n = len(self.forms)
        return JSONResponse({"access_token": f"xt-{caller.subject}-{form['audience']}-{n}", "token_type": "Bearer",
                             "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                             "expires_in": 300})  # fmt: skip


class BearerUpstream:
    """A remote server that reports the bearer credential each call arrived with (a resource server would
    validate it with its authorization server)."""

    def __init__(self) -> None:
        self.server: MCPServer[Any] = MCPServer("dev.test/remote")
        self.runs = 0

        @self.server.tool(annotations=READ_ONLY)
        def bearer(ctx: Context) -> str:
            """Which credential this call came with."""
            self.runs += 1
            request = ctx.request_context.request
            assert request is not None
            return str(request.headers.get("authorization"))

        self.live = LiveServer(self.server.streamable_http_app())

    @property
    def mcp_url(self) -> str:
        return f"{self.live.url}/mcp"


ExchangeSetup = tuple[Gateway, TokenEndpoint, BearerUpstream]


@asynccontextmanager
async def exchange_setup(tmp_path: Path, sqlite_url: str) -> AsyncIterator[ExchangeSetup]:
    endpoint = TokenEndpoint()
    endpoint.live.start()
    upstream = BearerUpstream()
    upstream.live.start()
    gw, ctx = start_gateway(tmp_path, sqlite_url, token_exchange_url=endpoint.url,
                            token_exchange_client_id="bastion-gw", token_exchange_client_secret="s3cret")  # fmt: skip
    endpoint.verifier = BastionIdentity(issuer=gw.url, audience=endpoint.url)
    try:
        gw.team("platform-eng", ["platform-eng"])
        gw.publish("dev.test/remote", "remote", "platform-eng", await remote_tools(upstream.mcp_url),
                   transport="streamable-http", endpoint=upstream.mcp_url, identity="token-exchange")  # fmt: skip
        yield gw, endpoint, upstream
    finally:
        gw.live.stop()
        ctx.db.dispose()
        upstream.live.stop()
        endpoint.live.stop()


async def test_token_exchange_sends_an_exchanged_token_cached_per_user_and_upstream(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with exchange_setup(tmp_path, sqlite_url) as (gw, endpoint, upstream):
        ann_token = gw.token("ann", ["analysts"])
        async with gw.client(ann_token) as client:
            first = await client.call_tool("remote__bearer", {})
            second = await client.call_tool("remote__bearer", {})
        assert text(first) == text(second) == "Bearer xt-ann-dev.test/remote-1"
        assert len(endpoint.forms) == 1  # the second call made no second exchange
        form = endpoint.forms[0]
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:token-exchange"
        assert form["subject_token_type"] == "urn:ietf:params:oauth:token-type:jwt"
        assert form["requested_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
        assert form["audience"] == "dev.test/remote"
        assert ann_token not in json.dumps(form)  # the subject token is the gateway's assertion, not the caller's
        assert endpoint.auth[0] == "Basic " + base64.b64encode(b"bastion-gw:s3cret").decode()

        async with gw.client(gw.token("bob", ["analysts"])) as client:  # per user
            assert text(await client.call_tool("remote__bearer", {})) == "Bearer xt-bob-dev.test/remote-2"
        assert len(endpoint.forms) == 2
        assert upstream.runs == 3

        async with gw.client(gw.token("cleo")) as client, anyio.create_task_group() as tg:  # at once: one exchange
            for _ in range(5):
                tg.start_soon(client.call_tool, "remote__bearer", {})
        assert len(endpoint.forms) == 3 and upstream.runs == 8


async def test_a_failing_token_exchange_is_a_clear_tool_error(tmp_path: Path, sqlite_url: str) -> None:
    async with exchange_setup(tmp_path, sqlite_url) as (gw, endpoint, upstream):
        async with gw.client(gw.token("ann")) as client:
            assert not (await client.call_tool("remote__bearer", {})).is_error
        endpoint.failing = {"error": "invalid_target", "error_description": "no such audience here"}
        async with gw.client(gw.token("carl")) as client:
            refused = await client.call_tool("remote__bearer", {})
            assert refused.is_error
            assert text(refused) == (
                "token exchange for upstream dev.test/remote failed: "
                "the authorization server answered 400 invalid_target: no such audience here"
            )
            assert refused.structured_content == {"error": "identity", "upstream": "dev.test/remote"}
        async with gw.client(gw.token("ann")) as client:  # a cached token needs no exchange
            assert not (await client.call_tool("remote__bearer", {})).is_error
        endpoint.live.stop()
        async with gw.client(gw.token("dora")) as client:
            down = await client.call_tool("remote__bearer", {})
        assert down.is_error and "the token endpoint is unreachable" in text(down)
        assert upstream.runs == 2  # ann's two calls; carl's and dora's never reached the upstream
        failed = gw.audit(kind="call", outcome="error")
        assert {r["subject"] for r in failed} == {"carl", "dora"}


async def test_token_exchange_without_a_token_endpoint_is_a_clear_tool_error(gw: Gateway, secure: SdkUpstream) -> None:
    await publish_secure(gw, secure, identity="token-exchange")
    async with gw.client(gw.token("eli", ["ads-eng"])) as client:
        result = await client.call_tool("secure__whoami", {})
    assert result.is_error
    assert "needs token exchange, but no token endpoint is configured (BASTION_TOKEN_EXCHANGE_URL)" in text(result)
    assert secure.runs == []
