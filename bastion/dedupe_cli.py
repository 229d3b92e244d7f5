"""`bastion dedupe …`: normalize, explain, learn and review URL maps from a shell."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.markup import escape

from bastion.console import err, fail, out
from governance import current_principal
from tools.progress import bar

if TYPE_CHECKING:
    from tools.dedupe.service import DedupeService

dedupe_app = typer.Typer(no_args_is_help=True, help="URL dedupe: normalize, explain, learn maps, review versions.")


def _service() -> DedupeService:
    from registry.settings import RegistrySettings
    from tools.dedupe.rules import RulesError
    from tools.dedupe.service import DedupeService, DedupeSettings

    try:
        return DedupeService(DedupeSettings.under(RegistrySettings().data_dir))
    except RulesError as exc:
        fail(str(exc))


@dedupe_app.command("normalize")
def normalize(
    file: Annotated[Path | None, typer.Argument(help="One URL per line; default: standard input")] = None,
) -> None:
    """Print `url<TAB>normalized` (or `url<TAB>!error-code: message`) for every input line."""
    service = _service()
    normalizer = service.normalizer()
    lines = file.open(encoding="utf-8", errors="replace") if file else sys.stdin
    with lines:
        for line in lines:
            url = line.rstrip("\n")
            if not url.strip():
                continue
            result = normalizer.normalize_many([url])[0]
            shown = result.normalized if result.error is None else f"!{result.error.code}: {result.error.message}"
            print(f"{url}\t{shown}")


@dedupe_app.command("explain")
def explain(url: str) -> None:
    """Which layer kept or dropped each parameter of URL."""
    result = _service().normalizer().explain(url)
    if result.error is not None:
        fail(f"{result.error.code}: {result.error.message}")
    out.print(f"[bold]{escape(result.normalized or '')}[/]")
    for note in result.syntax:
        out.print(f"  syntax: {escape(note)}")
    version = f"map v{result.map_version}" if result.map_version else "no learned map"
    learned = "learned" if result.pattern_learned else "not learned"
    out.print(escape(f"  pattern [{', '.join(result.pattern)}] ({learned}; {version})"))
    for p in result.params:
        mark = "[green]keep[/]" if p.kept else "[red]drop[/]"
        value = "" if p.value is None else f"={p.value}"
        out.print(f"  {mark} " + escape(f"{p.name}{value}  ({p.decided_by}: {p.reason})"))


@dedupe_app.command("learn")
def learn(
    domain: str,
    log: Annotated[
        Path | None, typer.Option(help="URL log: .txt (one per line), .csv/.tsv/.parquet with a `url` column")
    ] = None,
    table: Annotated[
        str | None, typer.Option(help="Or a table with a `url` column, of the engine BASTION_DEDUPE_ENGINE names")
    ] = None,
    fingerprint: Annotated[str, typer.Option(help="simhash | dom | title_og | table")] = "simhash",
    method: Annotated[str, typer.Option(help="group (ours) | fixed (published MIQPS)")] = "group",
    threshold: Annotated[float, typer.Option(help="T")] = 0.1,
    max_samples: Annotated[int, typer.Option(help="S")] = 20,
    top_patterns: Annotated[int, typer.Option(help="K")] = 50,
    override_gate: Annotated[bool, typer.Option(help="Publish even if the anomaly gate rejects")] = False,
) -> None:
    """Learn DOMAIN's map from a log (fetching pages unless fingerprints are in the log) and publish it.

    The log is grouped and sampled on BASTION_DEDUPE_ENGINE (DuckDB here by default; sc://HOST:PORT for Spark
    Connect): a .csv/.tsv/.parquet log or a table is read by the engine, whole."""
    from pydantic import ValidationError

    from tools.dedupe.model import LearnSettings
    from tools.dedupe.sampling import ENGINE_FILES, LogSource, LogTable
    from tools.dedupe.service import DedupeError, read_log_file

    if (log is None) == (table is None):
        fail("give exactly one of --log (a file) or --table (a table of the dedupe engine)")
    if table is not None and fingerprint == "table":
        fail("--fingerprint table reads the fingerprints of a --log file")
    if fingerprint not in ("simhash", "dom", "title_og", "table"):
        fail(f"--fingerprint must be simhash, dom, title_og or table, not {fingerprint!r}")
    try:
        settings = LearnSettings.model_validate(
            {"method": method, "threshold": threshold, "max_samples": max_samples, "top_patterns": top_patterns}
        )
    except ValidationError as exc:
        fail("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors()))
    service = _service()
    try:
        urls: LogSource
        fingerprints: dict[str, str] | None = None
        if table is not None:
            urls = LogTable(table)
        elif log is not None and fingerprint != "table" and log.suffix.lower() in ENGINE_FILES:
            urls = log  # read by the engine, all of it
        else:
            assert log is not None
            urls, fingerprints = read_log_file(log)
        kind: Literal["simhash", "dom", "title_og", "table"] = fingerprint  # type: ignore[assignment]
        fingerprinter, close = service.fingerprinter(kind, fingerprints)
    except (DedupeError, OSError) as exc:
        fail(str(exc))

    async def run() -> object:
        with bar(err) as progress:
            prepared = progress.add_task(f"learning {domain}: preparing log URLs", total=None)
            task = progress.add_task(f"learning {domain}: patterns", total=None, start=False)

            def log_advance(done: int, total: int) -> None:
                progress.update(prepared, completed=done, total=total)

            def advance(done: int, total: int) -> None:
                progress.start_task(task)
                progress.update(task, completed=done, total=total)

            try:
                return await service.learn(
                    domain, urls, fingerprinter, settings, source=str(log) if log else f"table:{table}",
                    created_by="cli", override_gate=override_gate, progress=advance, log_progress=log_advance,
                )  # fmt: skip
            finally:
                if close is not None:
                    await close()

    token = current_principal.set(None)
    try:
        outcome = asyncio.run(run())
    except DedupeError as exc:
        fail(str(exc))
    finally:
        current_principal.reset(token)
    from tools.dedupe.service import LearnOutcome

    assert isinstance(outcome, LearnOutcome)
    out.print(outcome.summary, markup=False, highlight=False)
    for flip in outcome.gate.flips[:20]:
        out.print(f"  flip: {flip}", markup=False, highlight=False)
    if outcome.diff:
        out.print(outcome.diff, markup=False, highlight=False)
    if outcome.status == "rejected":
        raise typer.Exit(2)


@dedupe_app.command("versions")
def versions(domain: Annotated[str | None, typer.Argument()] = None) -> None:
    """Map versions: status, patterns, renders, the anomaly gate's verdict."""
    from rich.table import Table

    table = Table()
    for col in ("domain", "version", "status", "created", "by", "patterns", "renders", "gate"):
        table.add_column(col)
    for v in _service().store.versions(domain):
        table.add_row(
            v.domain, str(v.version), v.status, v.created_at.strftime("%Y-%m-%d %H:%M"), v.created_by or "",
            str(v.patterns), str(v.renders), v.gate or "",
        )  # fmt: skip
    out.print(table)


@dedupe_app.command("diff")
def diff(domain: str, v1: int, v2: int) -> None:
    """What changed between two map versions."""
    from tools.dedupe.store import MapNotFound

    try:
        out.print(_service().diff(domain, v1, v2).text, markup=False, highlight=False)
    except MapNotFound as exc:
        fail(str(exc))


@dedupe_app.command("sql")
def sql(
    dialect: Annotated[str, typer.Option(help="duckdb | trino | spark | any sqlglot dialect")] = "duckdb",
    top_patterns: Annotated[int, typer.Option(help="K")] = 50,
    max_samples: Annotated[int, typer.Option(help="S")] = 20,
) -> None:
    """Print the grouping and sampling steps as SQL for another engine (the scale path)."""
    import sqlglot.errors

    from tools.dedupe.sampling import statements

    try:
        steps = statements(dialect, top_patterns=top_patterns, per_param=max_samples)
    except (sqlglot.errors.SqlglotError, ValueError) as exc:
        fail(f"cannot write {dialect!r} SQL: {exc}")
    names = ["patterns: URLs per (host, pattern)", f"top_patterns: the K={top_patterns} most frequent per host",
             f"param_samples: per parameter, up to S={max_samples} values, one URL each"]  # fmt: skip
    for name, statement in zip(names, steps, strict=True):
        print(f"-- {name}\n{statement};\n")


@dedupe_app.command("simulate")
def simulate(
    port: Annotated[int, typer.Option(help="Serve the simulated site on 127.0.0.1:PORT")] = 8765,
    kind: Annotated[str, typer.Option(help="shop | news | forum | shopify | sfcc")] = "shop",
    log: Annotated[Path | None, typer.Option(help="Also write a URL log of the site here")] = None,
    urls: Annotated[int, typer.Option(help="URLs in the log")] = 3000,
) -> None:
    """Serve one simulated site over HTTP (and write its URL log): try `learn` against it."""
    import uvicorn

    from tools.dedupe.simulator import Site, asgi_app

    if kind not in ("shop", "news", "forum", "shopify", "sfcc"):
        fail(f"--kind must be shop, news, forum, shopify or sfcc, not {kind!r}")
    site = Site.generate(0, 1, kind)
    site.host, site.scheme = f"127.0.0.1:{port}", "http"
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("\n".join(site.urls(urls, 1)) + "\n")
        err.print(f"wrote {urls} URLs to {log}; learn with: bastion dedupe learn 127.0.0.1 --log {log}")
        err.print("(learning fetches from loopback: set BASTION_DEDUPE_FETCH_PRIVATE=true)")
    uvicorn.run(asgi_app(site), host="127.0.0.1", port=port, log_level="warning")
