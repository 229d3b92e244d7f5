"""`BastionIdentity`: verify the gateway's caller assertion on every tool call an MCP server receives.

Installed on an `MCPServer` (SDK 2.x) as message middleware, it reads the `X-Bastion-Assertion` header of
each `tools/call`, checks it (an EdDSA signature by a key of the gateway's JWKS, fetched and cached; the
`typ`; issuer; audience = this server's registered name; expiry with a small leeway; a bounded lifetime;
each `jti` accepted once) and runs the tool with the caller available through `current_caller()`. A call
without a valid assertion is refused with a tool error naming the reason, before the tool runs.

The assertion is a standard compact JWS, checked here directly rather than through a generic JWT library:
one algorithm, one key type and a fixed claim set make that short, and it halves the cost of a check that
runs on every call. The signature is checked by libsodium (PyNaCl), whose Ed25519 verification takes less
than half the time of OpenSSL's (through `cryptography`); the JWKS is still read with PyJWT.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from collections import OrderedDict
from typing import Any

import anyio
import httpx2
import jwt
import mcp_types as types
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST
from nacl.bindings import crypto_sign_BYTES
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from bastion_sdk.caller import Caller, _verified_caller
from governance import Classification
from governance.assertion import ASSERTION_ALGORITHM, ASSERTION_HEADER, ASSERTION_TYPE, JWKS_PATH, REQUIRED_CLAIMS

log = logging.getLogger("bastion_sdk")

MAX_ASSERTION_LENGTH = 8192
# What acts for a caller, so needs one: calling a tool, getting a prompt, reading a resource.
GUARDED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
MAX_GROUPS = 1000
MAX_SEEN = 1_000_000  # remembered assertion ids at most (each until it expires)
# A compact JWS: three base64url segments (which `base64` would otherwise decode leniently).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_BAD_SIGNATURE = "the caller assertion's signature does not verify"
_HEADERS_CACHED = 64  # a gateway signs with one key at a time: its JOSE header is the same for every assertion


class AssertionRejected(Exception):
    """The assertion is missing or not acceptable; the message says why (safe to show the caller)."""


class _Jwks:
    """The gateway's public keys by `kid`: fetched on first use, re-read after `ttl` seconds, and at once
    for an unknown `kid` (a rotated key), but not more often than every `min_interval` seconds."""

    def __init__(self, url: str, ttl: float, min_interval: float, http: httpx2.AsyncClient | None) -> None:
        self.url = url
        self.ttl = ttl
        self.min_interval = min_interval
        self._http = http
        self._keys: dict[str, VerifyKey] = {}
        self._fetched_at = float("-inf")
        self._lock = anyio.Lock()

    async def key(self, kid: str) -> VerifyKey:
        now = time.monotonic()
        key = self._keys.get(kid)
        if key is not None and now - self._fetched_at < self.ttl:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            fresh = time.monotonic() - self._fetched_at
            if (key is None and fresh >= self.min_interval) or fresh >= self.ttl:
                await self._fetch()
                key = self._keys.get(kid)
        if key is None:
            if not self._keys:
                raise AssertionRejected("cannot read the gateway's signing keys (JWKS); try again shortly")
            raise AssertionRejected("the caller assertion is signed by a key the gateway does not publish")
        return key

    async def _fetch(self) -> None:
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(10.0))
        try:
            response = await self._http.get(self.url)
            response.raise_for_status()
            found = jwt.PyJWKSet.from_dict(response.json())
        except Exception as exc:
            self._fetched_at = time.monotonic()  # back off for min_interval; known keys stay usable
            log.warning("cannot read the gateway's JWKS at %s: %s", self.url, exc)
            return
        self._keys = {
            k.key_id: VerifyKey(k.key.public_bytes_raw())  # the JWK's `x`, as libsodium takes it
            for k in found.keys
            if k.key_id and isinstance(k.key, Ed25519PublicKey)
        }
        self._fetched_at = time.monotonic()


class BastionIdentity:
    """Verifies caller assertions from a Bastion gateway and exposes the caller to tools.

    ``issuer`` is the gateway's public URL (its `BASTION_PUBLIC_URL`), ``audience`` the name this server is
    registered under (e.g. ``dev.acme/presto``). ``require=False`` lets calls without an assertion run with no
    caller (tools may still demand one with `@authorize_tool`); an invalid assertion is always refused.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        leeway: float = 5.0,
        max_lifetime: float = 600.0,
        require: bool = True,
        jwks_ttl: float = 300.0,
        jwks_min_interval: float = 10.0,
        http: httpx2.AsyncClient | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self.require = require
        self.jwks = _Jwks(jwks_url or self.issuer + JWKS_PATH, jwks_ttl, jwks_min_interval, http)
        # Assertion ids seen, until they expire: each assertion is accepted once.
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._headers: dict[str, str] = {}  # encoded JOSE header → its key id, once checked

    def install(self, server: MCPServer[Any]) -> BastionIdentity:
        """Check every tools/call, prompts/get and resources/read of ``server`` (listing needs no caller: the
        gateway's health probes list for nobody in particular)."""
        server.middleware.append(self)
        return self

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method not in GUARDED_METHODS:
            return await call_next(ctx)
        request = ctx.request
        headers = getattr(request, "headers", None)
        token = headers.get(ASSERTION_HEADER) if headers is not None else None
        if token is None and not self.require:
            return await call_next(ctx)
        try:
            if token is None:
                raise AssertionRejected("no caller assertion; call this server through the Bastion gateway")
            caller = await self.verify(token)
        except AssertionRejected as exc:
            if ctx.method != "tools/call":  # prompts and resources have no error result: a JSON-RPC error
                raise MCPError(
                    code=INVALID_REQUEST, message=f"refused: {exc}", data={"error": "unauthenticated"}
                ) from None
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=f"refused: {exc}")],
                structured_content={"error": "unauthenticated", "reason": str(exc)},
                is_error=True,
            )
        reset = _verified_caller.set(caller)
        try:
            return await call_next(ctx)
        finally:
            _verified_caller.reset(reset)

    async def verify(self, token: str) -> Caller:
        """The caller the assertion names, or AssertionRejected saying what is wrong with it."""
        if len(token) > MAX_ASSERTION_LENGTH:
            raise AssertionRejected("the caller assertion is too long")
        if not _COMPACT_JWS.fullmatch(token):
            raise AssertionRejected("the caller assertion is not a well-formed JWT")
        signed_end = token.rindex(".")
        head = token[: token.index(".")]
        key = await self.jwks.key(self._kid(head))
        _verify_signature(key, token[:signed_end].encode(), _decode(token[signed_end + 1 :]))
        claims = _json_object(_decode(token[len(head) + 1 : signed_end]), "claims")
        now = time.time()
        self._check_claims(claims, now)
        caller = _caller_of(claims)
        self._remember(claims["jti"], float(claims["exp"]), now)
        return caller

    def _kid(self, head: str) -> str:
        kid = self._headers.get(head)
        if kid is not None:
            return kid
        header = _json_object(_decode(head), "header fields")
        if header.get("typ") != ASSERTION_TYPE or header.get("alg") != ASSERTION_ALGORITHM:
            raise AssertionRejected(f"not a Bastion caller assertion (typ {ASSERTION_TYPE}, alg {ASSERTION_ALGORITHM})")
        if "crit" in header:
            raise AssertionRejected("the caller assertion has critical header parameters this server does not know")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AssertionRejected("the caller assertion names no signing key (kid)")
        if len(self._headers) >= _HEADERS_CACHED:
            self._headers.clear()
        self._headers[head] = kid
        return kid

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            raise AssertionRejected(f"the caller assertion lacks {', '.join(missing)}")
        times = {name: claims.get(name) for name in ("iat", "exp", "nbf")}
        for name, value in times.items():
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            ):
                raise AssertionRejected(f"the caller assertion's {name} is not a time")
        if claims["iss"] != self.issuer:
            raise AssertionRejected(f"the caller assertion is not from the gateway at {self.issuer}")
        audience = claims["aud"]
        if not (audience == self.audience or (isinstance(audience, list) and self.audience in audience)):
            raise AssertionRejected(f"the caller assertion is for another server (this is {self.audience})")
        if claims["exp"] + self.leeway <= now:
            raise AssertionRejected("the caller assertion has expired")
        if claims["iat"] - self.leeway > now or (times["nbf"] is not None and times["nbf"] - self.leeway > now):
            raise AssertionRejected("the caller assertion is issued in the future (check the clocks)")
        lifetime = claims["exp"] - claims["iat"]
        if lifetime > self.max_lifetime:
            raise AssertionRejected(f"the caller assertion lives {lifetime:g} s, longer than {self.max_lifetime:g} s")

    def _remember(self, jti: str, expires: float, now: float) -> None:
        while self._seen:  # ordered by arrival; lifetimes are bounded, so old entries expire first
            until = next(iter(self._seen.values()))
            if until >= now and len(self._seen) < MAX_SEEN:
                break
            self._seen.popitem(last=False)
        if jti in self._seen:
            raise AssertionRejected("the caller assertion was already used (replayed)")
        self._seen[jti] = expires + self.leeway


def _verify_signature(key: VerifyKey, signing_input: bytes, signature: bytes) -> None:
    """Ed25519 (RFC 8032) by libsodium, which also refuses non-canonical signatures and small-order keys."""
    if len(signature) != crypto_sign_BYTES:  # (PyNaCl would raise a ValueError)
        raise AssertionRejected(_BAD_SIGNATURE)
    try:
        key.verify(signing_input, signature)
    except BadSignatureError:
        raise AssertionRejected(_BAD_SIGNATURE) from None


def _decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise AssertionRejected("the caller assertion is not a well-formed JWT") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise AssertionRejected(f"the caller assertion is not a well-formed JWT (its {what} are not a JSON object)")
    return value


def _caller_of(claims: dict[str, Any]) -> Caller:
    sub, groups, jti = claims["sub"], claims["groups"], claims["jti"]
    if not isinstance(sub, str) or not sub:
        raise AssertionRejected("the caller assertion has no subject")
    if not isinstance(jti, str) or not jti:
        raise AssertionRejected("the caller assertion has no id (jti)")
    if not isinstance(groups, list) or len(groups) > MAX_GROUPS or not all(isinstance(g, str) for g in groups):
        raise AssertionRejected("the caller assertion's groups are not a list of names")
    try:
        clearance = Classification(claims["clearance"])
    except ValueError:
        raise AssertionRejected("the caller assertion's clearance is not a known level") from None
    optional: dict[str, str | None] = {}
    for name in ("client_id", "origin_client_id", "approval_id"):
        value = claims.get(name)
        if value is not None and not isinstance(value, str):
            raise AssertionRejected(f"the caller assertion's {name} is not a string")
        optional[name] = value
    return Caller(
        subject=sub,
        groups=frozenset(groups),
        clearance=clearance,
        client_id=optional["client_id"],
        origin_client_id=optional["origin_client_id"],
        approval_id=optional["approval_id"],
        source="assertion",
        issuer=claims["iss"],
        audience=claims["aud"] if isinstance(claims["aud"], str) else None,
        assertion_id=jti,
        expires_at=int(claims["exp"]),
    )
