"""Who is calling, told to remote upstreams: signed caller assertions, their JWKS, RFC 8693 token exchange.

For every request it proxies, the gateway tells the upstream who the caller is in the way the server's
`identity` setting asks:

- ``assertion`` (default): a short-lived EdDSA (Ed25519) JWT (``governance.assertion``) in the ``X-Bastion-Assertion``
  header, minted afresh for each HTTP request (a fresh ``jti`` each time, so an upstream may refuse replays);
  the public keys are served as JWKS at ``/.well-known/jwks.json``.
- ``token-exchange``: that assertion is exchanged at a configured authorization server (RFC 8693) for an
  access token for the upstream, sent as the bearer credential; tokens are cached per caller and upstream
  until they expire.
- ``none``: nothing about the caller; the upstream sees the gateway's own credential only.

The caller's own token never leaves the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import anyio
import httpx2
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm
from nacl.signing import SigningKey

from governance import Principal
from governance.assertion import ASSERTION_ALGORITHM, ASSERTION_HEADER, ASSERTION_TYPE, assertion_claims
from registry.gateway.model import principal_key
from registry.settings import RegistrySettings

log = logging.getLogger("bastion.gateway.identity")

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
EXCHANGE_CACHE_SIZE = 10_000
EXPIRY_MARGIN = 10.0  # seconds before `expires_in` at which a cached exchanged token is no longer used
DEFAULT_EXCHANGED_LIFETIME = 60.0  # when the authorization server does not say (`expires_in` is optional)
MAX_ERROR_TEXT = 200

Headers = Callable[[], dict[str, str]]


class IdentityError(Exception):
    """The caller's identity could not be prepared for an upstream (the call is not made)."""


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def key_id(public: ed25519.Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of the public key: stable across restarts and replicas sharing the key."""
    jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x")}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest()).decode()


class AssertionSigner:
    """Signs caller assertions with the first configured key; publishes every key's public half."""

    def __init__(self, pems: list[bytes], issuer: str, ttl_seconds: int) -> None:
        if not pems:
            raise ValueError("at least one assertion key is needed")
        keys: list[ed25519.Ed25519PrivateKey] = []
        for pem in pems:
            key = serialization.load_pem_private_key(pem, password=None)
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise ValueError("assertion keys must be Ed25519 private keys (PEM)")
            keys.append(key)
        self.issuer = issuer
        self.ttl = ttl_seconds
        # Signed by libsodium, faster than OpenSSL's Ed25519 through `cryptography` (which only loads the PEM):
        # the same key, so the same deterministic signatures (RFC 8032).
        self._signing_key = SigningKey(keys[0].private_bytes_raw())
        self.kid = key_id(keys[0].public_key())
        # The JOSE header is the same for every assertion: encoded once.
        header = {"alg": ASSERTION_ALGORITHM, "kid": self.kid, "typ": ASSERTION_TYPE}
        self._header = _b64(json.dumps(header, separators=(",", ":")).encode()) + b"."
        published = []
        for key in keys:
            jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
            published.append({**jwk, "kid": key_id(key.public_key()), "alg": ASSERTION_ALGORITHM, "use": "sig"})
        self._jwks = {"keys": published}

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> AssertionSigner:
        return cls(settings.assertion_key_pems(), settings.effective_public_url, settings.assertion_ttl)

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def sign(self, principal: Principal, audience: str, approval_id: str | None = None) -> str:
        """A compact JWS (RFC 7515) of the assertion claims. Encoded here rather than by PyJWT: this runs for
        every proxied request, and the generic path costs twice as much (any JWT library verifies it)."""
        claims = assertion_claims(
            principal,
            issuer=self.issuer,
            audience=audience,
            issued_at=int(time.time()),
            ttl_seconds=self.ttl,
            jti=secrets.token_urlsafe(16),
            approval_id=approval_id,
        )
        signing_input = self._header + _b64(orjson.dumps(claims))
        return (signing_input + b"." + _b64(self._signature(signing_input))).decode()

    def _signature(self, signing_input: bytes) -> bytes:
        """The Ed25519 signature (64 bytes) of the JWS signing input."""
        return self._signing_key.sign(signing_input).signature


class TokenExchanger:
    """RFC 8693 token exchange at the configured token endpoint, cached per caller and upstream until expiry."""

    def __init__(self, settings: RegistrySettings, signer: AssertionSigner) -> None:
        self.url = settings.token_exchange_url
        self.timeout = settings.upstream_timeout
        secret = settings.token_exchange_client_secret
        self._auth = (
            httpx2.BasicAuth(settings.token_exchange_client_id, secret.get_secret_value() if secret else "")
            if settings.token_exchange_client_id
            else None
        )
        self.signer = signer
        self._http: httpx2.AsyncClient | None = None
        self._cache: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._locks: dict[tuple[str, str], anyio.Lock] = {}

    def _cached(self, key: tuple[str, str]) -> str | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        token, valid_until = hit
        if time.monotonic() >= valid_until:
            self._cache.pop(key, None)
            return None
        self._cache.move_to_end(key)
        return token

    async def token_for(self, principal: Principal, audience: str, what: str) -> str:
        """An access token for ``audience`` on behalf of ``principal``; raises IdentityError with a readable
        reason. A warm cache makes no network round trip."""
        if not self.url:
            raise IdentityError(
                f"{what} needs token exchange, but no token endpoint is configured (BASTION_TOKEN_EXCHANGE_URL)"
            )
        key = (principal_key(principal), audience)
        token = self._cached(key)
        if token is not None:
            return token
        lock = self._locks.setdefault(key, anyio.Lock())
        try:
            async with lock:  # concurrent calls of one caller to one upstream exchange once
                token = self._cached(key)
                if token is None:
                    try:
                        token, lifetime = await self._exchange(principal, audience, what)
                    except IdentityError as exc:
                        log.warning("%s (caller %s)", exc, principal.subject)
                        raise
                    self._cache[key] = (token, time.monotonic() + max(0.0, lifetime - EXPIRY_MARGIN))
                    while len(self._cache) > EXCHANGE_CACHE_SIZE:
                        self._cache.popitem(last=False)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._locks.pop(key, None)
        return token

    async def _exchange(self, principal: Principal, audience: str, what: str) -> tuple[str, float]:
        assert self.url is not None
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(self.timeout))
        # The subject token is an assertion for the authorization server itself (its token endpoint), so it
        # cannot be replayed at an upstream; the upstream is named as the audience of the token asked for.
        form = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": self.signer.sign(principal, self.url),
            "subject_token_type": JWT_TOKEN_TYPE,
            "requested_token_type": ACCESS_TOKEN_TYPE,
            "audience": audience,
        }
        failed = f"token exchange for {what} failed"
        try:
            with anyio.fail_after(self.timeout):
                response = await self._http.post(self.url, data=form, auth=self._auth or httpx2.USE_CLIENT_DEFAULT)
        except TimeoutError:
            raise IdentityError(f"{failed}: the token endpoint did not answer within {self.timeout:g} s") from None
        except (httpx2.HTTPError, OSError) as exc:
            raise IdentityError(f"{failed}: the token endpoint is unreachable ({type(exc).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            reason = f"the authorization server answered {response.status_code}"
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                reason += f" {body['error'][:MAX_ERROR_TEXT]}"
                if isinstance(body.get("error_description"), str):
                    reason += f": {body['error_description'][:MAX_ERROR_TEXT]}"
            raise IdentityError(f"{failed}: {reason}")
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise IdentityError(f"{failed}: the answer has no access_token")
        token_type = body.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() not in ("bearer", "n_a"):
            raise IdentityError(f"{failed}: token type {str(token_type)[:40]!r} is not a bearer token")
        lifetime = body.get("expires_in", DEFAULT_EXCHANGED_LIFETIME)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_EXCHANGED_LIFETIME
        return body["access_token"], float(lifetime)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None


class UpstreamIdentity:
    """What a remote upstream is told about the caller of one call, by the server's identity mode."""

    def __init__(self, signer: AssertionSigner, exchanger: TokenExchanger) -> None:
        self.signer = signer
        self.exchanger = exchanger

    @classmethod
    def from_settings(cls, settings: RegistrySettings) -> UpstreamIdentity:
        signer = AssertionSigner.from_settings(settings)
        return cls(signer, TokenExchanger(settings, signer))

    async def headers(
        self, mode: str, caller: Principal, audience: str, approval_id: str | None = None
    ) -> Headers | None:
        """A function giving the headers of each HTTP request of this call (an assertion is minted per request:
        a retried request carries a fresh one), or None for nothing. Raises IdentityError."""
        if mode == "assertion":
            sign = self.signer.sign
            return lambda: {ASSERTION_HEADER: sign(caller, audience, approval_id)}
        if mode == "token-exchange":
            token = await self.exchanger.token_for(caller, audience, f"upstream {audience}")
            bearer = {"Authorization": f"Bearer {token}"}
            return lambda: bearer
        return None

    async def close(self) -> None:
        await self.exchanger.close()
