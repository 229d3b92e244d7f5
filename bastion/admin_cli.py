"""The operator's commands: `status`, `servers`, `reviews`, `approvals`, `keys list|revoke`.

They read and write the registry database directly (the CLI runs where the server's settings are), through the
same services as the API. Decisions are made as a named person (`--as`, with `--groups`), never anonymously:
separation of duties, second approvers and the change log need to know who decided.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.markup import escape
from rich.table import Table

from bastion.console import fail, out
from governance import SYSTEM, Principal
from registry.errors import RegistryError
from registry.settings import RegistrySettings

M = TypeVar("M", bound=BaseModel)

servers_app = typer.Typer(no_args_is_help=True, help="Registered MCP servers.")
reviews_app = typer.Typer(no_args_is_help=True, help="Versions waiting for review, and review decisions.")
approvals_app = typer.Typer(no_args_is_help=True, help="Tool calls parked for a person's approval.")

As = Annotated[str, typer.Option("--as", help="Who decides (a user name)", show_default=False)]
Groups = Annotated[str, typer.Option(help="That person's groups, comma-separated")]


def _context() -> Any:
    from registry.context import RegistryContext

    return RegistryContext.create(RegistrySettings())


def _person(user: str, groups: str) -> Principal:
    from registry.auth.principals import roles_for_groups

    names = frozenset(g.strip() for g in groups.split(",") if g.strip())
    return Principal(
        subject=user, groups=names, roles=roles_for_groups(RegistrySettings(), names), auth_method="system"
    )


def _validated(model: type[M], **fields: Any) -> M:
    """The request body the services take, or a one-line error naming the field."""
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"{first['loc'][0]}: {first['msg']}")


def _guarded(fn: Any) -> Any:
    try:
        return fn()
    except RegistryError as exc:
        fail(f"{exc.message}" + (f" ({exc.field})" if exc.field else ""))


def _ago(when: datetime | None) -> str:
    if when is None:
        return "—"
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


# -- status -------------------------------------------------------------------------------------------------------


def status(
    url: Annotated[
        str | None, typer.Option(envvar="BASTION_PUBLIC_URL", help="The server to check", show_default=False)
    ] = None,
) -> None:
    """What is set up and running: database, server, index, model, Redis."""
    import httpx

    from registry.db import create_db_engine
    from registry.db.migrate import head, schema_problem

    settings = RegistrySettings()
    rows: list[tuple[str, str, str]] = []
    database = settings.effective_database_url
    try:
        engine = create_db_engine(database)
        problem = schema_problem(engine)
        engine.dispose()
        rows.append(
            (
                "database",
                "ok" if problem is None else "needs work",
                f"revision {head()}" if problem is None else problem,
            )
        )
    except Exception as exc:
        rows.append(("database", "unreachable", f"{type(exc).__name__}: {str(exc)[:120]}"))
    base = (url or f"http://127.0.0.1:{settings.port}").rstrip("/")
    try:
        started = time.perf_counter()
        health = httpx.get(f"{base}/healthz", timeout=3)
        elapsed = (time.perf_counter() - started) * 1000
        rows.append(
            (
                "server",
                "up" if health.status_code == 200 else f"HTTP {health.status_code}",
                f"{base} ({elapsed:.0f} ms)",
            )
        )
    except httpx.HTTPError:
        rows.append(("server", "not running", f"{base} (bastion serve / make run)"))
    summary = Path(settings.data_dir) / "index" / "summary.json"
    if summary.exists():
        built = datetime.fromtimestamp(summary.stat().st_mtime, UTC)
        try:
            counts = json.loads(summary.read_text())
            what = ", ".join(f"{counts[k]:,} {k}" for k in ("tables", "queries") if isinstance(counts.get(k), int))
        except (ValueError, OSError):
            what = ""
        rows.append(("index", "built", f"{_ago(built)}{'; ' + what if what else ''} ({summary.parent})"))
    else:
        rows.append(("index", "missing", "bastion demo prepare && bastion index"))
    registry_file = Path(settings.data_dir) / "models" / "conversion" / "registry.json"
    if registry_file.exists():
        try:
            serving = json.loads(registry_file.read_text()).get("serving")
        except (ValueError, OSError):
            serving = None
        rows.append(("model", "serving" if serving else "none serving", f"conversion {serving or '—'}"))
    else:
        rows.append(("model", "missing", "bastion train conversion"))
    redis_url = settings.redis_url
    if redis_url:
        try:
            import redis

            client = redis.Redis.from_url(str(redis_url), socket_timeout=2)
            client.ping()
            rows.append(("redis", "ok", _redacted(str(redis_url))))
        except Exception as exc:
            rows.append(("redis", "unreachable", f"{_redacted(str(redis_url))}: {type(exc).__name__}"))
    else:
        rows.append(("redis", "not configured", "rate limits and caches in this process (BASTION_REDIS_URL)"))
    table = Table(title="Bastion status")
    for column in ("part", "state", "detail"):
        table.add_column(column)
    for part, state, detail in rows:
        color = "green" if state in ("ok", "up", "built", "serving") else "yellow"
        table.add_row(part, f"[{color}]{escape(state)}[/]", escape(detail))
    out.print(table)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.rsplit("@", maxsplit=1)[-1]


# -- servers --------------------------------------------------------------------------------------------------------


@servers_app.command("list")
def servers_list(
    team: Annotated[str | None, typer.Option(help="Only this team's")] = None,
    limit: Annotated[int, typer.Option(help="At most this many")] = 100,
) -> None:
    """Every registered server: owner, latest version, posture, health."""
    from registry.services import servers

    ctx = _context()
    with ctx.db.read() as session:
        page = _guarded(lambda: servers.list_servers(session, SYSTEM, min(limit, 100), None, team))
    table = Table(title=f"{len(page.items)} server(s)")
    for column in ("name", "team", "latest", "environment", "classification", "health"):
        table.add_column(column, no_wrap=column == "name")
    for s in page.items:
        table.add_row(
            escape(s.name),
            escape(s.team),
            escape(s.latest_version or "—"),
            s.environment,
            s.classification,
            s.health.status,
        )
    out.print(table)


@servers_app.command("show")
def servers_show(name: Annotated[str, typer.Argument(help="e.g. dev.bastion/dedupe")]) -> None:
    """One server: its versions and their reviews, the latest version's tools."""
    from registry.services import servers, versions

    ctx = _context()
    requirements = ctx.settings.review_requirements
    with ctx.db.read() as session:
        server = _guarded(lambda: servers.read_server(session, SYSTEM, name))
        listed = _guarded(lambda: versions.list_versions(session, SYSTEM, name, 100, None))
        latest = (
            _guarded(lambda: versions.read_version(session, SYSTEM, name, server.latest_version, requirements))
            if server.latest_version
            else None
        )
    out.print(f"[bold]{escape(server.name)}[/] ({escape(server.short_name)}) — {escape(server.description)}")
    out.print(
        f"  team {escape(server.team)} · {server.environment} · {server.classification} · "
        f"{server.transport} · health {server.health.status}"
    )
    table = Table(title="versions")
    for column in ("version", "status", "tools", "created"):
        table.add_column(column)
    for v in listed.items:
        table.add_row(escape(v.version), v.status, str(v.tool_count), _ago(v.created_at))
    out.print(table)
    if latest is not None:
        out.print(f"tools of {escape(latest.version)}:")
        for tool in latest.tools:
            first = (tool.description or "").split("\n", 1)[0][:100]
            out.print(f"  [cyan]{escape(tool.name)}[/] {escape(first)}")


# -- reviews --------------------------------------------------------------------------------------------------------


@reviews_app.command("list")
def reviews_list() -> None:
    """Versions in review, with the review kinds they still need."""
    from sqlalchemy import select

    from registry.db.models import ServerVersion
    from registry.services.versions import version_out

    ctx = _context()
    with ctx.db.read() as session:
        rows = session.scalars(
            select(ServerVersion).where(ServerVersion.status == "in_review").order_by(ServerVersion.created_at)
        )
        waiting = [version_out(v, ctx.settings.review_requirements) for v in rows]
    table = Table(title=f"{len(waiting)} version(s) in review")
    for column in ("server", "version", "needs", "reviews so far", "submitted by"):
        table.add_column(column)
    for v in waiting:
        done = ", ".join(f"{r.kind}:{r.decision} by {r.reviewer}" for r in v.reviews) or "—"
        table.add_row(
            escape(v.server), escape(v.version), ", ".join(v.missing_reviews) or "—", escape(done), escape(v.created_by)
        )
    out.print(table)


@reviews_app.command("decide")
def reviews_decide(
    server: Annotated[str, typer.Argument(help="The server, e.g. dev.bastion/dedupe")],
    version: Annotated[str, typer.Argument(help="The version in review")],
    kind: Annotated[str, typer.Option(help="security, privacy or genai")],
    decision: Annotated[str, typer.Option(help="approve or reject")],
    user: As,
    groups: Groups = "",
    notes: Annotated[str, typer.Option(help="Why")] = "",
) -> None:
    """Record a review as a reviewer (separation of duties applies: not a member of the owning team)."""
    from registry.schemas.admin import ReviewCreate
    from registry.services.versions import add_review

    body = _validated(ReviewCreate, kind=kind, decision=decision, notes=notes)
    ctx, actor = _context(), _person(user, groups)
    with ctx.db.transaction() as session:
        result = _guarded(lambda: add_review(session, actor, server, version, body, ctx.settings.review_requirements))
    out.print(
        f"{escape(result.server)} {escape(result.version)}: {result.status}"
        + (f" (still needs {', '.join(result.missing_reviews)})" if result.missing_reviews else "")
    )


# -- approvals ------------------------------------------------------------------------------------------------------


@approvals_app.command("list")
def approvals_list(
    status: Annotated[str | None, typer.Option(help="pending, approved, rejected, consumed or expired")] = "pending",
    server: Annotated[str | None, typer.Option(help="Only this server's")] = None,
) -> None:
    """Parked calls: who asked, which tool, the arguments (redacted as in the audit), why."""
    from registry.services import approvals

    ctx = _context()
    with ctx.db.read() as session:
        page = _guarded(lambda: approvals.list_approvals(session, SYSTEM, status, server, 100, None))
    table = Table(title=f"{len(page.items)} approval(s)" + (f" {status}" if status else ""))
    for column in ("id", "status", "tool", "requester", "arguments", "why", "decided by"):
        table.add_column(column)
    for a in page.items:
        arguments = json.dumps(a.arguments, separators=(",", ":"))
        table.add_row(
            a.id,
            a.status,
            escape(f"{a.server} {a.tool}"),
            escape(a.requester),
            escape(arguments if len(arguments) <= 80 else arguments[:79] + "…"),
            escape("; ".join(a.reasons)),
            escape(a.decided_by or "—"),
        )
    out.print(table)


@approvals_app.command("decide")
def approvals_decide(
    ids: Annotated[list[str], typer.Argument(help="One or more approval ids (a batch: all or none)")],
    decision: Annotated[str, typer.Option(help="approve or reject")],
    user: As,
    groups: Groups = "",
    note: Annotated[str | None, typer.Option(help="Why")] = None,
) -> None:
    """Approve or reject parked calls as an admin or a member of the owning team."""
    from registry.schemas.admin import ApprovalDecision
    from registry.services import approvals

    body = _validated(ApprovalDecision, ids=ids, decision=decision, note=note)
    ctx, actor = _context(), _person(user, groups)
    with ctx.db.transaction() as session:
        decided = _guarded(lambda: approvals.decide(session, actor, body))
    for a in decided:
        out.print(f"{a.id}: {a.status} by {escape(a.decided_by or '')} ({escape(a.server)} {escape(a.tool)})")
