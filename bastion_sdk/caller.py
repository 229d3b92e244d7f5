"""The caller of the tool call in progress, and `@authorize_tool`: one way to write a rule inside a server."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from governance import Classification, current_approval, current_principal


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as the Bastion gateway established it."""

    subject: str
    groups: frozenset[str]
    clearance: Classification
    client_id: str | None = None
    # When the platform's own client (the chat agent) calls for a user: the client the user came through.
    origin_client_id: str | None = None
    # The human approval this call runs under, when it needed one.
    approval_id: str | None = None
    # `assertion`: verified from the gateway's signed assertion; `in-process`: a builtin server of the gateway.
    source: Literal["assertion", "in-process"] = "assertion"
    issuer: str | None = None
    audience: str | None = None
    assertion_id: str | None = None
    expires_at: int | None = None

    def in_any(self, groups: Iterable[str]) -> bool:
        return not self.groups.isdisjoint(groups)


# Set by `BastionIdentity` around every tools/call whose assertion it verified.
_verified_caller: ContextVar[Caller | None] = ContextVar("bastion_sdk_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the tool call in progress: verified from the gateway's assertion (a remote server with
    `BastionIdentity` installed), or the principal the gateway sets around an in-process builtin's call.
    None when there is no authenticated caller (e.g. a direct, unauthenticated call)."""
    caller = _verified_caller.get()
    if caller is not None:
        return caller
    principal = current_principal.get()
    if principal is None:
        return None
    return Caller(
        subject=principal.subject,
        groups=principal.groups,
        clearance=principal.clearance,
        client_id=principal.client_id,
        origin_client_id=principal.origin_client_id,
        approval_id=current_approval.get(),
        source="in-process",
    )


def require_caller() -> Caller:
    """The caller, or a tool error saying the call did not come through the gateway."""
    caller = current_caller()
    if caller is None:
        raise ToolError("refused: no authenticated caller; call this tool through the Bastion gateway")
    return caller


F = TypeVar("F", bound=Callable[..., Any])


def authorize_tool(
    *, groups: Iterable[str] | None = None, clearance: Classification | str | None = None
) -> Callable[[F], F]:
    """Refuse the tool (a tool error, `isError: true`) unless the caller is in one of ``groups`` and holds at
    least ``clearance``; with neither, an authenticated caller is all it asks. Put it under `@server.tool()`:

        @server.tool()
        @authorize_tool(groups=["ads-eng"], clearance="confidential")
        def get_revenue_metrics(day: str) -> dict[str, float]: ...
    """
    allowed = frozenset(groups or ())
    needed = Classification(clearance) if clearance is not None else None

    def check(name: str) -> None:
        caller = require_caller()
        if allowed and not caller.in_any(allowed):
            raise ToolError(
                f"refused by the server's rule: {name} is for members of {', '.join(sorted(allowed))}; "
                f"{caller.subject} is not one"
            )
        if needed is not None and not caller.clearance.covers(needed):
            raise ToolError(
                f"refused by the server's rule: {name} needs clearance {needed.value}; "
                f"{caller.subject} has {caller.clearance.value}"
            )

    def decorate(fn: F) -> F:
        name = fn.__name__
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                check(name)
                return await fn(*args, **kwargs)

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check(name)
            return fn(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate
