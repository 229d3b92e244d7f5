"""The `bastion` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion import admin_cli, chat_cli, inference_cli, knowledge_cli, parity_cli, sql_cli
from bastion.console import err, fail, out
from bastion.dedupe_cli import dedupe_app
from governance import SYSTEM, Classification, Role
from registry.errors import RegistryError
from registry.settings import RegistrySettings


def _quiet_help() -> None:
    """Help as people write it: `QUESTION` and `[QUESTION]` in usage lines, no `<bool>` after a flag.

    Typer 0.29 prints `{question}` for a required argument and a type after every flag; both are presentation
    only, overridden here for every command of this CLI."""
    from typer import core

    def usage_name(self: core.TyperArgument) -> str:
        name = self.display_name_raw.upper()
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    flag_type = core.TyperOption.display_type_rich

    def option_type(self: core.TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and not self.count else flag_type(self, ctx)

    core.TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
    core.TyperOption.display_type_rich = option_type  # type: ignore[method-assign]


_quiet_help()
app = typer.Typer(no_args_is_help=True, help="Bastion: governed MCP tool registry and gateway.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys.")
registry_app = typer.Typer(no_args_is_help=True, help="Registry contents: seed, import, export.")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(registry_app, name="registry")
mcp_app = typer.Typer(no_args_is_help=True, help="MCP clients' helpers.")
audit_app = typer.Typer(no_args_is_help=True, help="The gateway's audit log.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluations (tables and plots in bench/results/).")
app.add_typer(eval_app, name="eval")
app.add_typer(mcp_app, name="mcp")
app.add_typer(audit_app, name="audit")
app.command("chat")(chat_cli.chat)
app.command("status")(admin_cli.status)
app.add_typer(admin_cli.servers_app, name="servers")
app.add_typer(admin_cli.reviews_app, name="reviews")
app.add_typer(admin_cli.approvals_app, name="approvals")


def _version(value: bool) -> None:
    if value:
        from bastion import __version__

        out.print(f"bastion {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """Bastion: governed MCP tool registry and gateway."""


app.add_typer(dedupe_app, name="dedupe")
app.add_typer(knowledge_cli.demo_app, name="demo")
app.add_typer(knowledge_cli.search_app, name="search")
app.command("index")(knowledge_cli.index)
eval_app.command("retrieval")(knowledge_cli.eval_retrieval)
eval_app.command("sql")(sql_cli.eval_sql)
eval_app.command("parity")(parity_cli.eval_parity)
eval_app.command("inference")(inference_cli.eval_inference)
app.add_typer(inference_cli.train_app, name="train")
app.add_typer(inference_cli.models_app, name="models")
app.add_typer(parity_cli.parity_app, name="parity")
app.command("ask")(sql_cli.ask)


def _settings() -> RegistrySettings:
    return RegistrySettings()


def _context() -> Any:
    from registry.context import RegistryContext

    return RegistryContext.create(_settings())


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default: BASTION_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default: BASTION_PORT")] = None,
    print_dev_token: Annotated[bool, typer.Option(help="Print a 12-hour dev admin token")] = False,
) -> None:
    """Serve the platform (registry APIs and gateway) over HTTP."""
    import uvicorn

    from bastion.app import create_app
    from registry.auth import mint_token

    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = RegistrySettings(**overrides)
    _schema_at_head(settings)
    base = settings.effective_public_url
    out.print(f"[bold]Bastion[/] on {base}")
    out.print(f"  MCP gateway   {base}/mcp")
    out.print(f"  console       {base}/ui/  (servers, reviews, approvals, audit, keys, chat)")
    out.print(f"  API docs      {base}/docs")
    out.print(f"  discovery     {base}/v0.1/servers")
    out.print(f"  catalog       {base}/v1/catalog")
    out.print(f"  admin API     {base}/admin/v1")
    out.print(f"  health        {base}/healthz")
    out.print(f"  metrics       {base}/metrics")
    out.print(f"  chat          {base}/v1/chat (terminal: BASTION_TOKEN=… bastion chat; web: {base}/ui/#/chat)")
    from embeddings.settings import LLMSettings

    llm = LLMSettings()
    if llm.configured:
        out.print(f"  LLM           {llm.model} at {llm.base_url}", highlight=False)
    else:
        out.print("  LLM           none (BASTION_LLM_BASE_URL, BASTION_LLM_MODEL): chat in direct tool mode (/call), "
                  "sql__ask retrieval-only")  # fmt: skip
    if print_dev_token:
        admin = settings.admin_groups[0] if settings.admin_groups else "bastion-admins"
        token = mint_token(settings, user="dev-admin", groups=[admin], clearance="restricted")
        out.print("  dev admin token (12 h; do not use in production):")
        out.print(token, soft_wrap=True, highlight=False)
    uvicorn.run(
        create_app(settings, freeze_heap=True),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
    )


def _schema_at_head(settings: RegistrySettings) -> None:
    """`serve` on a database whose schema is not what this version needs: the embedded default (SQLite in
    the data directory) is migrated; any other database is refused with the command that fixes it."""
    from registry.db import create_db_engine, upgrade
    from registry.db.migrate import can_rewrite_audit, schema_problem

    url = settings.effective_database_url
    if settings.database_url is None:
        upgrade(url)
        return
    engine = create_db_engine(url)
    try:
        problem = schema_problem(engine)
        rewrite = can_rewrite_audit(engine)
    except Exception as exc:  # unreachable now: serve anyway, /healthz says 503 until it answers
        err.print(f"[yellow]warning:[/] the database does not answer yet ({type(exc).__name__}); /healthz is 503")
        return
    finally:
        engine.dispose()
    if problem is not None:
        fail(f"{problem} (database {_redact(url)})")
    if rewrite:
        err.print("[yellow]warning:[/] the app connects as the owner of audit_events (or a superuser), so it could "
                  "disable the append-only triggers; run it as a role made with `bastion db grant ROLE`")  # fmt: skip


@db_app.command("upgrade")
def db_upgrade(
    revision: str = "head",
    grant: Annotated[str | None, typer.Option(help="PostgreSQL: then grant this app role (see `db grant`)")] = None,
) -> None:
    """Apply database migrations (as the tables' owner)."""
    from registry.db import upgrade

    settings = _settings()
    upgrade(settings.effective_database_url, revision)
    out.print(f"database at revision {revision}: {_redact(settings.effective_database_url)}")
    if grant:
        db_grant(grant)


@db_app.command("grant")
def db_grant(role: Annotated[str, typer.Argument(help="The PostgreSQL role `bastion serve` connects as")]) -> None:
    """PostgreSQL: give an app role what `bastion serve` needs, and only SELECT/INSERT on the audit log.

    Run as the tables' owner, after every `db upgrade`; then run the app with BASTION_DATABASE_URL naming the
    role. It cannot update, delete or truncate audit rows, nor disable the append-only triggers."""
    from registry.db import create_db_engine
    from registry.db.migrate import grant_app_role

    settings = _settings()
    engine = create_db_engine(settings.effective_database_url)
    try:
        grant_app_role(engine, role)
    except ValueError as exc:
        fail(str(exc))
    finally:
        engine.dispose()
    out.print(f"role {role}: app privileges granted; audit_events is SELECT/INSERT only")


@db_app.command("revision")
def db_revision(message: Annotated[str, typer.Option("-m", "--message", help="What the migration does")]) -> None:
    """Autogenerate a migration from the models (for developers)."""
    from registry.db.migrate import revision

    revision(_settings().effective_database_url, message)


@app.command()
def token(
    user: Annotated[str, typer.Option(help="Subject (sub claim)")],
    groups: Annotated[str, typer.Option(help="Comma-separated groups")] = "",
    clearance: Annotated[Classification | None, typer.Option(help="Clearance claim")] = None,
    client: Annotated[str | None, typer.Option(help="Client id (azp claim)")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 12 * 3600,
) -> None:
    """Mint a dev JWT signed with the configured HS256 secret."""
    from registry.auth import mint_token

    group_list = [g.strip() for g in groups.split(",") if g.strip()]
    typer.echo(
        mint_token(
            _settings(),
            user=user,
            groups=group_list,
            clearance=clearance.value if clearance else None,
            client_id=client,
            ttl_seconds=ttl,
        )
    )


@keys_app.command("list")
def keys_list(
    revoked: Annotated[bool, typer.Option("--revoked", help="Include revoked keys")] = False,
) -> None:
    """API keys: name, role, groups, scope, when last used (never the secret)."""
    from rich.markup import escape
    from rich.table import Table

    from registry.services import keys

    ctx = _context()
    with ctx.db.read() as session:
        page = _guard(lambda: keys.list_keys(session, SYSTEM, 100, None))
    shown = [k for k in page.items if revoked or k.revoked_at is None]
    table = Table(title=f"{len(shown)} key(s)")
    for column in ("name", "id", "role", "groups", "scope", "last used", "expires", "revoked"):
        table.add_column(column)
    for k in shown:
        table.add_row(escape(k.name), k.key_id, k.role, escape(",".join(k.groups) or "—"),
                      escape(",".join(k.server_scope) if k.server_scope is not None else "all"),
                      k.last_used_at.isoformat(timespec="minutes") if k.last_used_at else "never",
                      k.expires_at.isoformat(timespec="minutes") if k.expires_at else "—",
                      k.revoked_at.isoformat(timespec="minutes") if k.revoked_at else "")  # fmt: skip
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name")]) -> None:
    """Revoke an API key: every request with it is refused from now on."""
    from registry.services import keys

    ctx = _context()
    with ctx.db.transaction() as session:
        revoked = _guard(lambda: keys.revoke_key(session, SYSTEM, name))
    out.print(f"revoked {revoked.name} ({revoked.key_id})")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Unique key name")],
    role: Annotated[Role, typer.Option(help="admin, reviewer or user")] = Role.USER,
    groups: Annotated[str, typer.Option(help="Comma-separated groups")] = "",
    clearance: Annotated[Classification | None, typer.Option()] = None,
    scope: Annotated[str | None, typer.Option(help="Comma-separated server names the key is limited to")] = None,
) -> None:
    """Create an API key; the secret is printed once and stored only as a hash."""
    from registry.schemas.admin import ApiKeyCreate
    from registry.services import keys

    ctx = _context()
    body = ApiKeyCreate(
        name=name,
        role=role,
        groups=[g.strip() for g in groups.split(",") if g.strip()],
        clearance=clearance,
        server_scope=[s.strip() for s in scope.split(",") if s.strip()] if scope is not None else None,
    )
    with ctx.db.transaction() as session:
        created = _guard(lambda: keys.create_key(session, SYSTEM, body))
    err.print(f"created key {created.name} ({created.role.value}); it will not be shown again:")
    typer.echo(created.key)


@registry_app.command("seed")
def registry_seed(file: Annotated[Path | None, typer.Argument(help="Default: BASTION_SEED_FILE")] = None) -> None:
    """Apply the seed file idempotently (teams, builtin servers, policies)."""
    from bastion.builtins import definitions_resolver
    from registry.services.seed import apply_seed, load_seed

    ctx = _context()
    seed = _guard(lambda: load_seed(file or ctx.settings.seed_file))
    with ctx.db.transaction() as session:
        report = _guard(lambda: apply_seed(session, seed, ctx.settings.review_requirements, definitions_resolver(ctx)))
    out.print(
        f"seed applied: {len(report.created)} created, {len(report.updated)} updated, {len(report.unchanged)} unchanged"
    )
    for line in report.created:
        out.print(f"  [green]+[/] {line}")
    for line in report.updated:
        out.print(f"  [yellow]~[/] {line}")


@registry_app.command("import")
def registry_import(
    file: Annotated[Path, typer.Argument(help="A server.json file ('-' for stdin)")],
    team: Annotated[str | None, typer.Option(help="Owning team, when the server is new")] = None,
    submit: Annotated[bool, typer.Option(help="Submit the new version for review")] = False,
) -> None:
    """Import a server.json as a new version (draft, or in_review with --submit)."""
    from registry.services.transfer import import_server_json

    text = sys.stdin.read() if str(file) == "-" else _read(file)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{file} is not JSON: {exc}")
    ctx = _context()
    with ctx.db.transaction() as session:
        version = _guard(
            lambda: import_server_json(session, SYSTEM, doc, ctx.settings.review_requirements, team=team, submit=submit)
        )
    out.print(f"imported {version.server}@{version.version} ({version.status.value}, {len(version.tools)} tools)")


@registry_app.command("export")
def registry_export(
    ref: Annotated[str, typer.Argument(metavar="NAME[@VERSION]")],
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write to a file instead of stdout")] = None,
) -> None:
    """Print a version's server.json (default: the latest published version)."""
    from registry.services.transfer import export_server_json

    name, _, version = ref.partition("@")
    ctx = _context()
    with ctx.db.transaction() as session:
        doc = _guard(lambda: export_server_json(session, name, version or None))
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if output:
        output.write_text(text)
        err.print(f"wrote {output}")
    else:
        typer.echo(text, nl=False)


@mcp_app.command("stdio")
def mcp_stdio(
    url: Annotated[
        str | None,
        typer.Option(envvar="BASTION_URL", help="Gateway MCP URL (default: BASTION_PUBLIC_URL or BASTION_PORT)"),
    ] = None,
    token: Annotated[
        str, typer.Option(envvar="BASTION_TOKEN", help="Bearer token or API key", show_default=False)
    ] = "",
) -> None:
    """Bridge a stdio MCP client (IDE) to the gateway (token from BASTION_TOKEN)."""
    from bastion.bridge import main as bridge

    if not token:
        fail("set BASTION_TOKEN (a JWT from your identity provider, or a Bastion API key)")
    bridge(url or f"{RegistrySettings().effective_public_url}/mcp", token)


@audit_app.command("tail")
def audit_tail(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events")] = False,
    lines: Annotated[int, typer.Option("-n", help="How many recent events to print first")] = 20,
    server: Annotated[str | None, typer.Option(help="Only this server")] = None,
    subject: Annotated[str | None, typer.Option(help="Only this user")] = None,
    interval: Annotated[float, typer.Option(help="Seconds between polls with --follow")] = 1.0,
) -> None:
    """Print the newest audit events (reads the database directly)."""
    import time

    from sqlalchemy import select

    from registry.db.models import AuditEvent

    ctx = _context()

    def fetch(after: int | None) -> list[AuditEvent]:
        stmt = select(AuditEvent)
        if server:
            stmt = stmt.where(AuditEvent.server == server)
        if subject:
            stmt = stmt.where(AuditEvent.subject == subject)
        with ctx.db.read() as session:
            if after is None:
                return list(reversed(list(session.scalars(stmt.order_by(AuditEvent.id.desc()).limit(lines)))))
            return list(session.scalars(stmt.where(AuditEvent.id > after).order_by(AuditEvent.id)))

    def show(event: AuditEvent) -> None:
        target = f"{event.server or '-'}/{event.tool or '-'}"
        detail = f" {event.error}" if event.error else ""
        out.print(
            f"{event.at:%Y-%m-%d %H:%M:%S} {event.kind:<9} {event.subject:<16} {target:<40} "
            f"{event.decision:<24} {event.outcome:<16} {event.latency_ms:8.1f} ms{detail}",
            highlight=False,
            soft_wrap=True,
        )

    events = fetch(None)
    for event in events:
        show(event)
    last = events[-1].id if events else 0
    while follow:
        time.sleep(interval)
        for event in fetch(last):
            show(event)
            last = event.id


@eval_app.command("chat")
def eval_chat(
    only: Annotated[str | None, typer.Option(help="Only scenarios whose name contains this")] = None,
    results: Annotated[Path, typer.Option("--out", help="Where the JSON goes")] = Path("bench/results"),
) -> None:
    """The chat agent's scenarios: against BASTION_LLM_* when set, else the scripted LLM (labelled as such)."""
    from bastion.chat_eval import evaluate, report

    result = evaluate(RegistrySettings().data_dir, only)
    if not result["scenarios"]:
        fail("no scenario matched --only")
    report(result)
    results.mkdir(parents=True, exist_ok=True)
    (results / "eval_chat.json").write_text(json.dumps(result, indent=2, default=str))
    out.print(f"[dim]{results / 'eval_chat.json'}[/]")


@eval_app.command("rerank")
def eval_rerank(
    users: Annotated[
        int | None, typer.Option(help="Evaluate a seeded sample of this many users (default: all)")
    ] = None,
    results: Annotated[Path, typer.Option("--out", help="Where the JSON and the Pareto plot go")] = Path(
        "bench/results"
    ),
) -> None:
    """Re-rankers on MovieLens-100K (fetched at run time), ours beside pyversity's: table + Pareto plot."""
    from embeddings.settings import IndexSettings
    from tools.rerank.evaluation import evaluate, report

    try:
        outcome = evaluate(IndexSettings().datasets_dir, users, err)  # its progress bar: stderr
    except RuntimeError as exc:
        fail(str(exc))
    report(outcome, results, out)


@eval_app.command("dedupe")
def eval_dedupe(
    domains: Annotated[int, typer.Option(help="Simulated domains (half tune, half held out)")] = 20,
    profile: Annotated[str, typer.Option(help="Simulator profile: clean, hard, or both")] = "both",
    results: Annotated[Path, typer.Option("--out", help="Where the JSON and the plot go")] = Path("bench/results"),
) -> None:
    """Learned URL normalization on simulated sites, beside w3lib, url-normalize, strip-all, MIQPS and
    the pages' own canonical tags — on the clean simulator profile and the harder one."""
    from tools.dedupe.evaluation import evaluate, report

    if domains < 4:
        fail("--domains must be at least 4")
    if profile not in ("clean", "hard", "both"):
        fail("--profile must be clean, hard or both")
    for chosen in ("clean", "hard") if profile == "both" else (profile,):
        report(evaluate(domains=domains, console=err, profile=chosen), results, out)  # progress on stderr


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")


def _guard(fn: Any) -> Any:
    try:
        return fn()
    except RegistryError as exc:
        detail = f" ({exc.field})" if exc.field else ""
        fail(f"{exc.message}{detail}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()
