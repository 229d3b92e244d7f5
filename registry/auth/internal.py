"""Clients of the platform's own (the chat agent) calling the gateway as the user.

The chat service holds the user's own credential and calls /mcp with it; a header proves the call comes from
the service, so the gateway audits it under the client id `bastion-chat` (keeping the client the user came
through as `origin_client_id`, whose rules still apply). The proof is an HMAC, under the gateway's state keys
(shared by replicas), of the client, a five-minute window and a digest of the very credential it travels with:
it is worth nothing with another credential, expires within ten minutes, and is made per request. A wrong or
stale proof is refused (401), never ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from registry.errors import Unauthorized
from registry.settings import RegistrySettings

INTERNAL_CLIENT_HEADER = "x-bastion-internal-client"
INTERNAL_CLIENTS = frozenset({"bastion-chat"})
WINDOW = 300  # seconds; the current and the previous window are accepted


def _proof(key: str, client: str, window: int, token: str) -> str:
    credential = hashlib.sha256(token.encode()).hexdigest()
    message = f"bastion-internal-client:{client}:{window}:{credential}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def header_value(settings: RegistrySettings, client: str, token: str, now: float | None = None) -> str:
    """The header for one request of `client` carrying the bearer `token`."""
    if client not in INTERNAL_CLIENTS:
        raise ValueError(f"{client!r} is not an internal client")
    window = int((time.time() if now is None else now) // WINDOW)
    return f"{client} {window} {_proof(settings.state_keys()[0], client, window, token)}"


def internal_client(settings: RegistrySettings, value: str, token: str, now: float | None = None) -> str:
    """The internal client a header value proves for this bearer token, or Unauthorized."""
    refused = Unauthorized(f"the {INTERNAL_CLIENT_HEADER} header does not carry a valid proof")
    parts = value.split(" ")
    if len(parts) != 3 or parts[0] not in INTERNAL_CLIENTS or not parts[1].isdigit() or len(parts[1]) > 12:
        raise refused
    client, window, proof = parts[0], int(parts[1]), parts[2]
    current = int((time.time() if now is None else now) // WINDOW)
    if window not in (current, current - 1):
        raise refused
    for key in settings.state_keys():  # every key in rotation
        if hmac.compare_digest(proof.encode(), _proof(key, client, window, token).encode()):
            return client
    raise refused
