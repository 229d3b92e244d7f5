"""HTTP edge of the gateway: OAuth 2.1 resource-server checks, then the MCP transport."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio.to_thread
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from opentelemetry.trace import StatusCode
from starlette.types import Receive, Scope, Send

from governance import Principal, evaluate
from registry.auth import authenticate
from registry.auth.apikeys import looks_like_key
from registry.auth.internal import INTERNAL_CLIENT_HEADER, internal_client
from registry.auth.principals import bearer_token, principal_from_claims
from registry.errors import RegistryError, Unauthorized
from registry.gateway.core import GatewayCore, principal_key
from registry.gateway.server import PRINCIPAL_KEY, VIEW_KEY
from registry.gateway.tracing import TRACE_STATE_KEY, HttpStamp, cut, incoming_parent
from registry.services.facts import client_rules

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url(public_url: str, resource_path: str) -> str:
    return f"{public_url}{WELL_KNOWN}{resource_path}"


def resource_metadata(core: GatewayCore, resource_path: str) -> dict[str, Any]:
    """RFC 9728 protected-resource metadata for an MCP endpoint of this gateway."""
    settings = core.settings
    servers = list(settings.authorization_servers)
    if not servers and settings.jwt_issuer.startswith(("http://", "https://")):
        servers = [settings.jwt_issuer]
    return {
        "resource": f"{settings.effective_public_url}{resource_path}",
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
        "scopes_supported": [],
        "resource_name": "Bastion MCP gateway",
        "resource_documentation": f"{settings.effective_public_url}/docs",
    }


async def _json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    head += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": raw})


def _auth_method(headers: dict[str, str]) -> str:
    header = headers.get("authorization")
    if header is None:
        return "none"
    try:
        return "api_key" if looks_like_key(bearer_token(header)) else "jwt"
    except RegistryError:
        return "invalid"


class GatewayEndpoint:
    """ASGI app for `/mcp` (every server) and `/servers/{short}/mcp` (one server)."""

    def __init__(self, core: GatewayCore, manager: StreamableHTTPSessionManager) -> None:
        self.core = core
        self.manager = manager

    async def authenticate(self, header: str | None) -> Principal:
        ctx = self.core.ctx
        token = bearer_token(header)
        if looks_like_key(token):
            # API keys are looked up in the database: off the event loop.
            def check() -> Principal:
                with ctx.db.read() as session:
                    return authenticate(ctx.settings, ctx.verifier, session, header, ctx.facts)

            return await anyio.to_thread.run_sync(check)
        return principal_from_claims(ctx.settings, ctx.verifier.verify(token))

    async def gate(self, principal: Principal, short: str) -> tuple[int, str] | None:
        """Business-group gating before a session on one server's endpoint is accepted."""
        facts = self.core.ctx.facts

        def check() -> tuple[int, str] | None:
            with self.core.ctx.db.read() as session:
                name = self.core.name_for_short(session, short)
                entry = facts.server(session, name) if name else None
                if entry is None:
                    return 404, f"no server with short name {short!r}"
                decision = evaluate(
                    principal, entry.facts, list(entry.rules), None, client_rules(facts, session, principal)
                )
            if decision.allowed:
                return None
            return 403, f"denied by rule {decision.denied_by}: {decision.reasons[-1]}"

        return await anyio.to_thread.run_sync(check)

    def _refused(self, started: int, headers: dict[str, str], scope: Scope, status: int) -> None:
        """A request refused at authentication never reaches the MCP layer: its span is made here."""
        tracing = self.core.tracing
        method, path, how = str(scope.get("method", "")), cut(scope["path"]), _auth_method(headers)
        attributes = {
            "http.request.method": method,
            "url.path": path,
            "http.response.status_code": status,
            "bastion.auth.method": how,
            "bastion.outcome": "unauthenticated",
        }
        with tracing.request_span(f"{method} {path}", attributes, incoming_parent(headers), started) as span:
            stage = {"bastion.auth.method": how, "bastion.outcome": "refused"}
            tracing.stage("bastion.authentication", started, time.time_ns(), stage)
            span.set_attribute("error.type", str(status))
            span.set_status(StatusCode.ERROR)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].rstrip("/")
        short = None if path == "/mcp" else path.split("/")[2]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        resource_path = path
        tracing = self.core.tracing
        started = time.time_ns() if tracing.on else 0
        try:
            principal = await self.authenticate(headers.get("authorization"))
            if (proof := headers.get(INTERNAL_CLIENT_HEADER)) is not None:
                # The chat service, calling as the user: audited and governed as its own client.
                client = internal_client(self.core.settings, proof, bearer_token(headers.get("authorization")))
                # Its calls are audited and governed as its own client's, and the rules of the client the
                # user came through still apply (governance.Principal.origin_client_id).
                principal = principal.model_copy(update={"client_id": client, "origin_client_id": principal.client_id})
        except Unauthorized as exc:
            if tracing.on:
                self._refused(started, headers, scope, 401)
            challenge = (
                f'Bearer resource_metadata="{metadata_url(self.core.settings.effective_public_url, resource_path)}"'
            )
            if "authorization" in headers:
                challenge += f', error="invalid_token", error_description="{exc.message}"'
            await _json(
                send,
                401,
                {
                    "error": "invalid_token" if "authorization" in headers else "unauthorized",
                    "error_description": exc.message,
                },
                {"WWW-Authenticate": challenge},
            )
            return
        except RegistryError as exc:
            if tracing.on:
                self._refused(started, headers, scope, exc.status)
            await _json(send, exc.status, exc.body())
            return
        if tracing.on:
            scope.setdefault("state", {})
            scope["state"][TRACE_STATE_KEY] = HttpStamp(
                started, time.time_ns(), incoming_parent(headers), _auth_method(headers)
            )
        if short is not None:
            denial = await self.gate(principal, short)
            if denial is not None:
                status, message = denial
                await _json(
                    send, status, {"error": "forbidden" if status == 403 else "not_found", "error_description": message}
                )
                return
        scope.setdefault("state", {})
        scope["state"][PRINCIPAL_KEY] = principal
        scope["state"][VIEW_KEY] = short
        # The SDK binds a session to the credential that opened it (client, issuer, subject).
        scope["user"] = AuthenticatedUser(
            AccessToken(
                token=principal_key(principal),
                client_id=principal.client_id or principal.subject,
                scopes=[],
                subject=principal.subject,
                claims={"iss": self.core.settings.jwt_issuer},
            )
        )
        await self.manager.handle_request(scope, receive, send)
