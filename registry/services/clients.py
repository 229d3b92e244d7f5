"""Client policies (per OAuth client or API key) and owner-maintained tool settings."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import ClientRule, Environment, Principal
from registry.db.models import ClientPolicy, ToolSetting
from registry.errors import NotFound
from registry.schemas.admin import ClientPolicyOut, ClientPolicyPut, ToolSettingOut, ToolSettingPut
from registry.schemas.names import check_tool_name
from registry.services.common import get_server, record_event, require_owner_or_admin, require_reviewer


def rule_of(policy: ClientPolicy) -> ClientRule:
    return ClientRule(
        client_id=policy.client_id,
        servers=frozenset(policy.servers) if policy.servers is not None else None,
        environment=Environment(policy.environment) if policy.environment else None,
    )


def put_client_policy(session: Session, actor: Principal, client_id: str, body: ClientPolicyPut) -> ClientPolicyOut:
    require_reviewer(actor, "set client policies")
    policy = session.get(ClientPolicy, client_id)
    if policy is None:
        policy = ClientPolicy(client_id=client_id, updated_by=actor.subject)
        session.add(policy)
    policy.servers = sorted(set(body.servers)) if body.servers is not None else None
    policy.environment = body.environment.value if body.environment else None
    policy.description = body.description
    policy.updated_by = actor.subject
    session.flush()
    record_event(session, actor, "client_policy.put", client_id, **body.model_dump(mode="json"))
    return ClientPolicyOut.model_validate(policy)


def delete_client_policy(session: Session, actor: Principal, client_id: str) -> None:
    require_reviewer(actor, "delete client policies")
    policy = session.get(ClientPolicy, client_id)
    if policy is None:
        raise NotFound(f"no policy for client {client_id!r}", field="client_id")
    session.delete(policy)
    record_event(session, actor, "client_policy.delete", client_id)


def list_client_policies(session: Session, actor: Principal) -> list[ClientPolicyOut]:
    require_reviewer(actor, "list client policies")
    rows = session.scalars(select(ClientPolicy).order_by(ClientPolicy.client_id))
    return [ClientPolicyOut.model_validate(p) for p in rows]


def put_tool_setting(
    session: Session, actor: Principal, server_name: str, tool: str, body: ToolSettingPut
) -> ToolSettingOut:
    try:
        check_tool_name(tool)
    except ValueError as exc:
        raise NotFound(f"tool name {tool!r} {exc}", field="tool") from None
    server = get_server(session, server_name)
    require_owner_or_admin(actor, server, "set tool settings")
    setting = session.get(ToolSetting, (server.id, tool))
    if setting is None:
        setting = ToolSetting(server_id=server.id, tool=tool, updated_by=actor.subject)
        session.add(setting)
    setting.minutes_saved = body.minutes_saved
    setting.updated_by = actor.subject
    session.flush()
    record_event(session, actor, "tool_setting.put", f"{server_name}/{tool}", minutes_saved=body.minutes_saved)
    return ToolSettingOut(
        server=server_name,
        tool=tool,
        minutes_saved=setting.minutes_saved,
        updated_by=setting.updated_by,
        updated_at=setting.updated_at,
    )
