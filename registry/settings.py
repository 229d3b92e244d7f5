"""Registry and gateway settings, read from ``BASTION_*`` environment variables."""

from __future__ import annotations

import os
import secrets
import socket
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from governance import Classification, ReviewKind, ReviewRequirements


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_", env_file=".env", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface the platform listens on.")
    port: int = Field(8400, description="Port the platform listens on.")
    public_url: str | None = Field(
        None, description="URL clients use to reach the platform (default: http://HOST:PORT)."
    )
    data_dir: Path = Field(Path(".bastion"), description="Directory for embedded data (SQLite, generated secrets).")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the registry database (default: SQLite in DATA_DIR/registry.db)."
    )
    jwt_secret: SecretStr | None = Field(
        None,
        description="HS256 secret for bearer JWTs. Default: generated once into DATA_DIR/jwt-secret. "
        "Set it explicitly when running several replicas.",
    )
    jwks_url: str | None = Field(None, description="JWKS URL for RS256/ES256 tokens from an identity provider.")
    jwt_issuer: str = Field("bastion", description="Expected `iss` claim.")
    jwt_audience: str = Field("bastion", description="Expected `aud` claim.")
    admin_groups: Annotated[list[str], NoDecode] = Field(
        ["bastion-admins"], description="Comma-separated groups whose members are registry admins."
    )
    reviewer_groups: Annotated[list[str], NoDecode] = Field(
        ["bastion-reviewers"], description="Comma-separated groups whose members are reviewers."
    )
    default_clearance: Classification = Field(
        Classification.INTERNAL, description="Clearance of a token without a `clearance` claim."
    )
    required_reviews: dict[Classification, list[ReviewKind]] | None = Field(
        None,
        description='JSON map classification → review kinds, e.g. {"internal":["security"]}. '
        "Default: public/internal security; confidential +privacy; restricted +genai.",
    )
    seed_file: Path = Field(Path("seed/registry.yaml"), description="Seed applied by `bastion registry seed`.")
    discovery_anonymous: bool = Field(
        False, description="Allow /v0.1 discovery without a token (prod, approved servers only)."
    )
    registry_cache_ttl: float = Field(
        1.0,
        ge=0,
        description="Seconds a replica trusts its cached access facts before re-reading the registry "
        "revision (its own writes apply at once; other replicas' within this bound).",
    )
    gateway_stateless: bool = Field(
        False,
        description="Serve 2025-11-25 MCP clients without sessions (for several replicas behind a load "
        "balancer without sticky sessions). 2026-07-28 requests are always stateless.",
    )
    gateway_state_keys: Annotated[list[str], NoDecode] = Field(
        [],
        description="Comma-separated secrets (>= 32 bytes each; the first seals) protecting 2026-07-28 "
        "request state. Default: generated once into DATA_DIR/gateway-state-key. Share them across replicas.",
    )
    redis_url: str | None = Field(None, description="Redis URL; rate limits are shared across replicas through it.")
    rate_limit_per_user: int = Field(600, ge=1, description="Tool calls per minute per user (all tools).")
    rate_limit_per_tool: int = Field(
        120, ge=1, description="Tool calls per minute per user and tool, unless a policy sets its own."
    )
    approval_ttl: float = Field(3600.0, gt=0, description="Seconds a parked call may wait for, and keep, approval.")
    upstream_timeout: float = Field(30.0, gt=0, description="Seconds to wait for a remote upstream's answer.")
    upstream_token: SecretStr | None = Field(
        None, description="The gateway's own bearer credential for remote upstreams (callers' tokens never are)."
    )
    health_interval: float = Field(30.0, gt=0, description="Seconds between health probes of remote upstreams.")
    assertion_keys: Annotated[list[Path], NoDecode] = Field(
        [],
        description="Comma-separated PEM files of Ed25519 private keys signing caller assertions to remote "
        "upstreams; the first signs, the others stay in the JWKS for verification (rotation). Default: "
        "generated once into DATA_DIR/assertion-key.pem. Share them across replicas.",
    )
    assertion_ttl: int = Field(60, ge=5, le=600, description="Seconds a caller assertion sent to an upstream is valid.")
    token_exchange_url: str | None = Field(
        None,
        description="Token endpoint of the authorization server for servers in `token-exchange` identity mode "
        "(RFC 8693).",
    )
    token_exchange_client_id: str | None = Field(
        None, description="The gateway's client id at the token endpoint (HTTP Basic authentication)."
    )
    token_exchange_client_secret: SecretStr | None = Field(
        None, description="The gateway's client secret at the token endpoint."
    )
    audit_pii_keys: Annotated[list[str], NoDecode] = Field(
        ["email", "phone", "ssn", "ip_address", "device_id", "address"],
        description="Comma-separated argument names redacted (like secrets) in audit rows and approvals.",
    )
    authorization_servers: Annotated[list[str], NoDecode] = Field(
        [], description="Comma-separated OAuth authorization servers named in protected-resource metadata."
    )
    replica_id: str = Field("", description="Name of this replica in audit rows (default: host:pid).")
    extra_builtins: Annotated[list[str], NoDecode] = Field(
        [],
        description="Comma-separated `name=module:factory` entries: more in-process MCP servers "
        "(factory() returns an MCPServer; name is the registry short name).",
    )
    log_level: str = Field("INFO", description="Log level.")
    jwt_leeway: float = Field(
        0.0, ge=0, le=300,
        description="Seconds a JWT is still accepted after its `exp` (and before `nbf`/`iat`): clock skew between "
        "the identity provider and the gateway. 0 by default: an expired token is refused.",
    )  # fmt: skip
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token that may read /metrics (for a Prometheus scraper). Without it, /metrics "
        "needs an admin credential. Metrics name servers and tools, so they are not public.",
    )
    audit_queue_max_rows: int = Field(
        100_000, ge=100,
        description="Audit rows queued at most before the gateway refuses new calls (audit_backlog) rather than "
        "run calls it cannot audit; the database being down for a while fills the queue.",
    )  # fmt: skip

    @field_validator(
        "admin_groups",
        "reviewer_groups",
        "gateway_state_keys",
        "audit_pii_keys",
        "authorization_servers",
        "extra_builtins",
        "assertion_keys",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'registry.db').as_posix()}"

    @cached_property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @cached_property
    def review_requirements(self) -> ReviewRequirements:
        if self.required_reviews is None:
            return ReviewRequirements()
        return ReviewRequirements(by_classification=self.required_reviews)

    def hs_secret(self) -> str:
        """The HS256 secret: configured, or generated once and kept in the data directory."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        return self._generated_secret("jwt-secret")

    def state_keys(self) -> list[str]:
        """Keys sealing MCP request state: configured, or generated once into the data directory."""
        return list(self.gateway_state_keys) or [self._generated_secret("gateway-state-key")]

    def assertion_key_pems(self) -> list[bytes]:
        """Private keys (PEM) for caller assertions: configured, or one generated once into the data directory.
        The first signs; the others are published for verification only."""
        if self.assertion_keys:
            return [path.read_bytes() for path in self.assertion_keys]
        path = self.data_dir / "assertion-key.pem"
        if not path.exists():
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import ed25519

            key = ed25519.Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            self._write_once(path, pem)
        return [path.read_bytes()]

    @property
    def effective_replica_id(self) -> str:
        return self.replica_id or f"{socket.gethostname()}:{os.getpid()}"

    def _generated_secret(self, name: str) -> str:
        path = self.data_dir / name
        if path.exists():
            return path.read_text().strip()
        self._write_once(path, secrets.token_urlsafe(48).encode())
        return path.read_text().strip()

    def _write_once(self, path: Path, content: bytes) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a concurrent reader never sees a half-written secret.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(content)
        tmp.chmod(0o600)
        tmp.replace(path)


def normalize_database_url(url: str) -> str:
    """Map bare PostgreSQL URLs onto the psycopg 3 driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
