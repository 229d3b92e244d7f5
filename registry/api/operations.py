"""/admin/v1 operations: approvals, audit, time saved, client policies, tool settings."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from governance import Principal
from registry.api.convertors import ServerName
from registry.api.deps import AuthenticatedRoute, Caller, DbSession, bearer_scheme, established
from registry.api.errors import error_responses
from registry.api.handler import respond
from registry.context import RegistryContext
from registry.errors import Unauthorized
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
from registry.schemas.base import Instant, Page
from registry.services import approvals, audit, clients
from registry.services.common import MAX_LIMIT, require_reviewer

router = APIRouter(
    prefix="/admin/v1",
    tags=["operations"],
    dependencies=[Depends(bearer_scheme)],
    route_class=AuthenticatedRoute,
    responses=error_responses(401),
)

Limit = Query(50, ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT}")
Cursor = Query(None, description="nextCursor of the previous page")
ClientId = Annotated[str, Path(min_length=1, max_length=200, description="OAuth client id (`azp`) or `key:<name>`")]


async def _flush_audit(request: Request) -> None:
    """Rows queued by this process's gateway are written before the log is read."""
    flush: Callable[[], Awaitable[None]] | None = getattr(request.app.state, "flush_audit", None)
    if flush is not None:
        await flush()


# --- approvals -------------------------------------------------------------------------------


@router.get(
    "/approvals",
    response_model=Page[ApprovalOut],
    summary="Parked calls (admins: all; owners: theirs)",
    responses=error_responses(400, 422),
)
def list_approvals(
    session: DbSession,
    caller: Caller,
    status_filter: str | None = Query(
        None,
        alias="status",
        pattern="^(pending|approved|rejected|consumed|expired|decided)$",
        description="decided: every approval someone approved or rejected (the history)",
    ),
    server: str | None = Query(None),
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> Page[ApprovalOut]:
    return approvals.list_approvals(session, caller, status_filter, server, limit, cursor)


@router.post(
    "/approvals/decide",
    response_model=list[ApprovalOut],
    summary="Approve or reject, singly or in a batch",
    responses=error_responses(403, 404, 409, 422),
)
def decide_approvals(session: DbSession, caller: Caller, body: ApprovalDecision) -> list[ApprovalOut]:
    return approvals.decide(session, caller, body)


# --- audit -----------------------------------------------------------------------------------


def _filter(
    subject: str | None = Query(None),
    server: str | None = Query(None),
    tool: str | None = Query(None),
    kind: str | None = Query(None, pattern="^(list|call|prompt|resource|integrity)$"),
    outcome: str | None = Query(None),
    decision: str | None = Query(None),
    since: Instant | None = Query(None, description="RFC 3339 time: events at or after it"),
    until: Instant | None = Query(None, description="RFC 3339 time: events before it"),
) -> audit.AuditFilter:
    return audit.AuditFilter(subject, server, tool, kind, outcome, decision, since, until)


@router.get(
    "/audit",
    summary="Audit events, newest first",
    responses={200: {"model": Page[AuditEventOut]}, **error_responses(400, 403, 422)},
)
async def list_audit(
    request: Request,
    f: audit.AuditFilter = Depends(_filter),
    limit: int = Limit,
    cursor: str | None = Cursor,
) -> Response:
    await _flush_audit(request)
    return await respond(request, lambda session, caller: audit.query(session, caller, f, limit, cursor))  # type: ignore[arg-type]


@router.get(
    "/audit.csv",
    summary="Audit events as CSV, oldest first",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "RFC 4180 CSV with a header row; columns: " + ", ".join(audit.CSV_COLUMNS),
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **error_responses(403, 422),
    },
)
async def export_audit(request: Request, f: audit.AuditFilter = Depends(_filter)) -> StreamingResponse:
    await _flush_audit(request)
    ctx: RegistryContext = request.app.state.registry
    caller = established(request)
    if not isinstance(caller, Principal):  # pragma: no cover - AuthenticatedRoute authenticated the caller
        raise Unauthorized("missing bearer token")

    def lines() -> list[str]:
        with ctx.db.read() as session:
            return list(audit.export_csv(session, caller, f))

    body = await anyio.to_thread.run_sync(lines)
    return StreamingResponse(
        iter(body), media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="audit.csv"'}
    )


@router.get(
    "/reports/time-saved",
    summary="Minutes saved per month (or week), team and tool",
    responses={200: {"model": list[TimeSavedRow]}, **error_responses(403, 422)},
)
async def time_saved(
    request: Request,
    since: Instant | None = Query(None, description="RFC 3339 time: calls at or after it"),
    until: Instant | None = Query(None, description="RFC 3339 time: calls before it"),
    by: Literal["month", "week"] = Query("month", description="Group by calendar month or ISO week"),
) -> Response:
    await _flush_audit(request)
    return await respond(request, lambda session, caller: audit.time_saved(session, caller, since, until, by))  # type: ignore[arg-type]


# --- client policies and tool settings -------------------------------------------------------


@router.get(
    "/clients",
    response_model=list[ClientPolicyOut],
    summary="Client (OAuth client / API key) policies",
    responses=error_responses(403),
)
def list_clients(session: DbSession, caller: Caller) -> list[ClientPolicyOut]:
    return clients.list_client_policies(session, caller)


@router.put("/clients/{client_id}", response_model=ClientPolicyOut, responses=error_responses(403, 422))
def put_client(session: DbSession, caller: Caller, client_id: ClientId, body: ClientPolicyPut) -> ClientPolicyOut:
    return clients.put_client_policy(session, caller, client_id, body)


@router.delete("/clients/{client_id}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(403, 404, 422))
def delete_client(session: DbSession, caller: Caller, client_id: ClientId) -> Response:
    require_reviewer(caller, "delete client policies")
    clients.delete_client_policy(session, caller, client_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/servers/{name:server}/tools/{tool}/settings",
    response_model=ToolSettingOut,
    summary="Minutes saved per call",
    responses=error_responses(403, 404, 422),
)
def put_tool_setting(
    session: DbSession, caller: Caller, name: ServerName, tool: str, body: ToolSettingPut
) -> ToolSettingOut:
    return clients.put_tool_setting(session, caller, name, tool, body)
