"""Usage policies per server, per tool and per prompt or resource, set by reviewers and admins.

A policy row is keyed by `policies.tool`: `*` for the server, a tool's name, or `prompt:NAME` /
`resource:NAME` for a prompt or a resource (or resource template: they share one namespace). Tool names
cannot contain `:`, so the keys never collide; the gateway evaluates a prompt or resource under its key.
"""

from __future__ import annotations

from typing import Literal, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import Classification, PolicyRule, Principal
from registry.db.models import Policy
from registry.errors import Invalid, NotFound
from registry.schemas.admin import PolicyItem, PolicyItemKind, PolicyOut, PolicyPut
from registry.schemas.names import check_tool_name
from registry.services.common import get_server, record_event, require_reviewer, visible_server_or_404

SERVER_WIDE = "*"
Target = Literal["tool"] | PolicyItemKind
ITEM_KINDS: tuple[str, ...] = get_args(PolicyItemKind)


def policy_key(kind: Target, name: str | None) -> str:
    """The `policies.tool` key of the server (`name` None), a tool, or a prompt or resource."""
    if name is None:
        return SERVER_WIDE
    return name if kind == "tool" else f"{kind}:{name}"


def _item(key: str) -> PolicyItem | None:
    kind, sep, name = key.partition(":")
    return PolicyItem(kind=kind, name=name) if sep and kind in ITEM_KINDS else None


def _check_name(kind: Target, name: str) -> None:
    try:
        check_tool_name(name)
    except ValueError as exc:
        raise NotFound(f"{kind} name {name[:80]!r} {exc}", field=kind) from None


def _out(server_name: str, policy: Policy) -> PolicyOut:
    return PolicyOut(
        server=server_name,
        tool=None if policy.tool == SERVER_WIDE else policy.tool,
        item=_item(policy.tool),
        allowed_groups=policy.allowed_groups,
        required_clearance=Classification(policy.required_clearance) if policy.required_clearance else None,
        require_approval=policy.require_approval,
        second_approver=policy.second_approver,
        annotations=policy.annotations,
        rate_limit_per_minute=policy.rate_limit_per_minute,
        updated_by=policy.updated_by,
        updated_at=policy.updated_at,
    )


def rule_of(policy: Policy) -> PolicyRule:
    return PolicyRule(
        tool=None if policy.tool == SERVER_WIDE else policy.tool,
        allowed_groups=frozenset(policy.allowed_groups) if policy.allowed_groups is not None else None,
        required_clearance=Classification(policy.required_clearance) if policy.required_clearance else None,
        require_approval=policy.require_approval,
        second_approver=policy.second_approver,
        rate_limit_per_minute=policy.rate_limit_per_minute,
    )


def put_policy(
    session: Session, actor: Principal, server_name: str, tool: str | None, body: PolicyPut, kind: Target = "tool"
) -> PolicyOut:
    """Set the policy of the server (`tool` None), of a tool, or (`kind`) of a prompt or resource named `tool`."""
    require_reviewer(actor, "set policies")
    if tool is not None:
        _check_name(kind, tool)
    if kind != "tool" and body.annotations is not None:
        raise Invalid(
            f"annotations describe tools; a {kind} policy takes none (leave annotations out)", field="annotations"
        )
    server = get_server(session, server_name)
    key = policy_key(kind, tool)
    policy = session.scalar(select(Policy).where(Policy.server_id == server.id, Policy.tool == key))
    if policy is None:
        policy = Policy(server_id=server.id, tool=key, updated_by=actor.subject)
        session.add(policy)
    elif _out(server_name, policy).model_dump(include=set(PolicyPut.model_fields)) == body.model_dump():
        return _out(server_name, policy)
    policy.allowed_groups = body.allowed_groups
    policy.required_clearance = body.required_clearance.value if body.required_clearance else None
    policy.require_approval = body.require_approval
    policy.second_approver = body.second_approver
    policy.annotations = body.annotations
    policy.rate_limit_per_minute = body.rate_limit_per_minute
    policy.updated_by = actor.subject
    session.flush()
    record_event(session, actor, "policy.put", f"{server_name}/{key}", **body.model_dump(mode="json"))
    return _out(server_name, policy)


def delete_policy(
    session: Session, actor: Principal, server_name: str, tool: str | None, kind: Target = "tool"
) -> None:
    require_reviewer(actor, "delete policies")
    if tool is not None:  # no name reaches another kind's key (`/tools/prompt:x/policy` is no prompt's)
        _check_name(kind, tool)
    server = get_server(session, server_name)
    key = policy_key(kind, tool)
    policy = session.scalar(select(Policy).where(Policy.server_id == server.id, Policy.tool == key))
    if policy is None:
        raise NotFound(f"no policy for {server_name}/{key}", field=kind)
    session.delete(policy)
    record_event(session, actor, "policy.delete", f"{server_name}/{key}")


def list_policies(session: Session, actor: Principal, server_name: str) -> list[PolicyOut]:
    server = visible_server_or_404(session, actor, server_name)
    rows = session.scalars(select(Policy).where(Policy.server_id == server.id).order_by(Policy.tool))
    out = [_out(server.name, p) for p in rows]
    # The server's policy, its tools', then its prompts' and its resources', each by name.
    order = {None: 1, "prompt": 2, "resource": 3}
    return sorted(out, key=lambda p: (0 if p.tool is None else order[p.item.kind if p.item else None], p.tool or ""))
