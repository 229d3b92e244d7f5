"""Usage policies per server and per tool, set by reviewers and admins."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import Classification, PolicyRule, Principal
from registry.db.models import Policy
from registry.errors import NotFound
from registry.schemas.admin import PolicyOut, PolicyPut
from registry.schemas.names import check_tool_name
from registry.services.common import get_server, record_event, require_reviewer, visible_server_or_404

SERVER_WIDE = "*"


def _out(server_name: str, policy: Policy) -> PolicyOut:
    return PolicyOut(
        server=server_name,
        tool=None if policy.tool == SERVER_WIDE else policy.tool,
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


def put_policy(session: Session, actor: Principal, server_name: str, tool: str | None, body: PolicyPut) -> PolicyOut:
    require_reviewer(actor, "set policies")
    if tool is not None:
        try:
            check_tool_name(tool)
        except ValueError as exc:
            raise NotFound(f"tool name {tool!r} {exc}", field="tool") from None
    server = get_server(session, server_name)
    key = tool or SERVER_WIDE
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


def delete_policy(session: Session, actor: Principal, server_name: str, tool: str | None) -> None:
    require_reviewer(actor, "delete policies")
    server = get_server(session, server_name)
    key = tool or SERVER_WIDE
    policy = session.scalar(select(Policy).where(Policy.server_id == server.id, Policy.tool == key))
    if policy is None:
        raise NotFound(f"no policy for {server_name}/{key}", field="tool")
    session.delete(policy)
    record_event(session, actor, "policy.delete", f"{server_name}/{key}")


def list_policies(session: Session, actor: Principal, server_name: str) -> list[PolicyOut]:
    server = visible_server_or_404(session, actor, server_name)
    rows = session.scalars(select(Policy).where(Policy.server_id == server.id).order_by(Policy.tool))
    return [_out(server.name, p) for p in rows]
