"""/admin/v1 operations: approvals, audit, time saved, client policies, tool settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse

import registry.api.convertors  # noqa: F401  (registers the {name:server} path convertor)
from registry.api.deps import Caller, DbSession, bearer_scheme
from registry.api.handler import respond
from registry.auth import authenticate
from registry.context import RegistryContext
from registry.schemas.admin import (
    ApprovalDecision,
    ApprovalOut,
    AuditEventOut,
    ClientPolicyOut,
    ClientPolicyPut,
    TimeSavedRow,
    ToolSettingOut,
    ToolSettingPut,
)
from registry.schemas.base import Page
from registry.services import approvals, audit, clients
from registry.services.common import require_reviewer

router = APIRouter(prefix="/admin/v1", tags=["operations"], dependencies=[Depends(bearer_scheme)])


async def _flush_audit(request: Request) -> None:
    """Rows queued by this process's gateway are written before the log is read."""
    flush: Callable[[], Awaitable[None]] | None = getattr(request.app.state, "flush_audit", None)
    if flush is not None:
        await flush()


# --- approvals -------------------------------------------------------------------------------


@router.get("/approvals", response_model=Page[ApprovalOut], summary="Parked calls (admins: all; owners: theirs)")
def list_approvals(
    session: DbSession,
    caller: Caller,
    status_filter: str | None = Query(None, alias="status", pattern="^(pending|approved|rejected|consumed|expired)$"),
    server: str | None = Query(None),
    limit: int = Query(50),
    cursor: str | None = Query(None),
) -> Page[ApprovalOut]:
    return approvals.list_approvals(session, caller, status_filter, server, limit, cursor)


@router.post("/approvals/decide", response_model=list[ApprovalOut], summary="Approve or reject, singly or in a batch")
def decide_approvals(session: DbSession, caller: Caller, body: ApprovalDecision) -> list[ApprovalOut]:
    return approvals.decide(session, caller, body)


# --- audit -----------------------------------------------------------------------------------


def _filter(
    subject: str | None = Query(None),
    server: str | None = Query(None),
    tool: str | None = Query(None),
    kind: str | None = Query(None, pattern="^(list|call|integrity)$"),
    outcome: str | None = Query(None),
    decision: str | None = Query(None),
    since: datetime | None = Query(None),
    until: datetime | None = Query(None),
) -> audit.AuditFilter:
    return audit.AuditFilter(subject, server, tool, kind, outcome, decision, since, until)


@router.get("/audit", summary="Audit events, newest first", responses={200: {"model": Page[AuditEventOut]}})
async def list_audit(
    request: Request,
    f: audit.AuditFilter = Depends(_filter),
    limit: int = Query(50),
    cursor: str | None = Query(None),
) -> Response:
    await _flush_audit(request)
    return await respond(request, lambda session, caller: audit.query(session, caller, f, limit, cursor))  # type: ignore[arg-type]


@router.get("/audit.csv", summary="Audit events as CSV, oldest first")
async def export_audit(request: Request, f: audit.AuditFilter = Depends(_filter)) -> StreamingResponse:
    await _flush_audit(request)
    ctx: RegistryContext = request.app.state.registry
    header = request.headers.get("authorization")

    def lines() -> list[str]:
        with ctx.db.read() as session:
            caller = authenticate(ctx.settings, ctx.verifier, session, header, ctx.facts)
            return list(audit.export_csv(session, caller, f))

    body = await anyio.to_thread.run_sync(lines)
    return StreamingResponse(
        iter(body), media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="audit.csv"'}
    )


@router.get(
    "/reports/time-saved",
    summary="Minutes saved per month, team and tool",
    responses={200: {"model": list[TimeSavedRow]}},
)
async def time_saved(
    request: Request, since: datetime | None = Query(None), until: datetime | None = Query(None)
) -> Response:
    await _flush_audit(request)
    return await respond(request, lambda session, caller: audit.time_saved(session, caller, since, until))  # type: ignore[arg-type]


# --- client policies and tool settings -------------------------------------------------------


@router.get("/clients", response_model=list[ClientPolicyOut], summary="Client (OAuth client / API key) policies")
def list_clients(session: DbSession, caller: Caller) -> list[ClientPolicyOut]:
    return clients.list_client_policies(session, caller)


@router.put("/clients/{client_id}", response_model=ClientPolicyOut)
def put_client(session: DbSession, caller: Caller, client_id: str, body: ClientPolicyPut) -> ClientPolicyOut:
    return clients.put_client_policy(session, caller, client_id, body)


@router.delete("/clients/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_client(session: DbSession, caller: Caller, client_id: str) -> Response:
    require_reviewer(caller, "delete client policies")
    clients.delete_client_policy(session, caller, client_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/servers/{name:server}/tools/{tool}/settings", response_model=ToolSettingOut, summary="Minutes saved per call"
)
def put_tool_setting(session: DbSession, caller: Caller, name: str, tool: str, body: ToolSettingPut) -> ToolSettingOut:
    return clients.put_tool_setting(session, caller, name, tool, body)
