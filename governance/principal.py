"""Who is asking: the identity every authorisation decision is made for."""

from __future__ import annotations

from contextvars import ContextVar
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

from governance.classification import Classification


class Role(StrEnum):
    """Platform roles. Server ownership is not a role: it follows from team membership."""

    ADMIN = "admin"
    REVIEWER = "reviewer"
    USER = "user"


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    groups: frozenset[str] = frozenset()
    clearance: Classification = Classification.INTERNAL
    roles: frozenset[Role] = frozenset({Role.USER})
    # The OAuth client (`azp`/`client_id`) or the API key the call came through.
    client_id: str | None = None
    auth_method: Literal["jwt", "api_key", "system"] = "jwt"
    # When one of the platform's own clients (the chat agent) calls on the user's behalf, `client_id` is that
    # client and this is the client the user came through; the rules of both apply.
    origin_client_id: str | None = None
    # An API key may be scoped to named servers; None means no key-level restriction.
    server_scope: frozenset[str] | None = None

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles

    @property
    def is_reviewer(self) -> bool:
        return Role.REVIEWER in self.roles or self.is_admin


class TeamFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    members: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def has_member(self, principal: Principal) -> bool:
        return principal.subject in self.members or bool(principal.groups & self.groups)


SYSTEM = Principal(
    subject="system",
    roles=frozenset({Role.ADMIN}),
    clearance=Classification.RESTRICTED,
    auth_method="system",
)


# The authenticated caller of the tool call in progress. The gateway sets it around every
# in-process (builtin) tool call, so a builtin server can apply per-caller rules of its own.
current_principal: ContextVar[Principal | None] = ContextVar("bastion_current_principal", default=None)
# The human approval the builtin tool call in progress runs under, when it needed one (set with the principal).
current_approval: ContextVar[str | None] = ContextVar("bastion_current_approval", default=None)
