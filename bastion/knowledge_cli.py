"""`bastion demo prepare`, `bastion index`, `bastion search …`: the knowledge index from a shell."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from bastion.console import bars, err, fail, out

demo_app = typer.Typer(no_args_is_help=True, help="The embedded demo warehouse.")
search_app = typer.Typer(no_args_is_help=True, help="Search the knowledge index (tables, past queries).")


@demo_app.command("prepare")
def demo_prepare(force: Annotated[bool, typer.Option(help="Rebuild even if present")] = False) -> None:
    """Generate the demo warehouse (DuckDB) and its query history, unless they exist."""
    from embeddings.demo import history, warehouse
    from embeddings.settings import IndexSettings

    settings = IndexSettings()
    target = settings.demo_warehouse
    log = settings.demo_dir / "query_log.jsonl"
    if target.exists() and log.exists() and not force:
        out.print(f"demo warehouse present: {target} (use --force to rebuild)")
        return
    started = time.monotonic()
    progress, advance = bars()
    with progress:
        counts = warehouse.build(target, progress=lambda name: advance("warehouse tables", 1, len(warehouse.TABLES)))
        queries = history.write(log, target, progress=lambda done, total: advance("query history", 1, total))
    out.print(
        f"demo warehouse: {len(counts)} tables, {sum(counts.values()):,} rows → {target}; "
        f"{queries} historical queries → {log} ({time.monotonic() - started:.1f}s)"
    )


def index() -> None:
    """(Re)build the knowledge index from the configured sources (incremental: unchanged documents are kept)."""
    from embeddings.connectors import SourceError
    from embeddings.embedder import make_embedder
    from embeddings.index import build_index
    from embeddings.settings import IndexSettings
    from tools.engines.catalog import reader_for

    settings = IndexSettings()
    if settings.warehouse_url is None and not settings.demo_warehouse.exists():
        fail(f"no schema source: set BASTION_WAREHOUSE_URL or run `bastion demo prepare` ({settings.demo_warehouse})")
    progress, advance = bars()
    started = time.monotonic()
    reader = reader_for(settings.warehouse_url)  # a Spark warehouse: read through the engine layer
    try:
        with progress:
            summary = build_index(settings, make_embedder(settings), progress=advance, reader=reader)
    except SourceError as exc:
        fail(str(exc))
    finally:
        if reader is not None:
            reader.close()
    synced = ", ".join(f"{k}: {v['embedded']} embedded, {v['unchanged']} unchanged, {v['removed']} removed"
                       for k, v in summary.synced.items())  # fmt: skip
    out.print(
        f"index: {summary.tables} tables, {summary.queries} queries → {summary.intents} intents "
        f"({summary.describer}; {summary.embedder}) in {time.monotonic() - started:.1f}s",
        markup=False,
    )
    out.print(f"  {synced}", markup=False)
    for note in summary.notes:
        out.print(f"  note: {note}", markup=False)
    for problem in summary.problems[:50]:
        out.print(f"  skipped: {problem}", markup=False)
    if len(summary.problems) > 50:
        out.print(f"  … and {len(summary.problems) - 50} more problems", markup=False)


def _retriever() -> Any:
    from embeddings.embedder import make_embedder
    from embeddings.index import Snapshot
    from embeddings.retrieval import Retriever
    from embeddings.settings import IndexSettings
    from embeddings.store import VectorStore, client_for

    settings = IndexSettings()
    try:
        snapshot = Snapshot.read(Snapshot.directory(settings))
    except FileNotFoundError as exc:
        fail(str(exc))
    embedder = make_embedder(settings)
    return Retriever(snapshot, VectorStore(client_for(settings.chroma_url, settings.chroma_dir()), embedder), embedder)


@search_app.command("tables")
def search_tables(
    question: str,
    k: Annotated[int, typer.Option(help="How many tables")] = 5,
    tier: Annotated[list[int] | None, typer.Option(help="Only these tiers (repeatable)")] = None,
    domain: Annotated[list[str] | None, typer.Option(help="Only these domains (repeatable)")] = None,
    no_deprecated: Annotated[bool, typer.Option(help="Leave deprecated tables out")] = False,
) -> None:
    """Tables that answer QUESTION, with the reasons they rank where they do (the running server's, when up)."""
    from bastion.remote import ToolFailed, from_server

    try:
        found = from_server("sql__search_tables", {"question": question, "k": k, "tiers": tier or None,
                            "domains": domain or None, "include_deprecated": not no_deprecated})  # fmt: skip
    except ToolFailed as exc:
        fail(exc.message)
    if found is not None:
        hits: list[dict[str, Any]] = found["tables"]
    else:
        from embeddings.retrieval import RetrievalError, TableFilters

        filters = TableFilters(tiers=tier or None, domains=domain or None, include_deprecated=not no_deprecated)
        try:
            hits = [h.model_dump() for h in _retriever().search_tables(question, k=k, filters=filters)]
        except RetrievalError as exc:
            fail(str(exc))
    for hit in hits:
        tier_text = f"T{hit['tier']}" if hit["tier"] else "T?"
        out.print(f"{hit['rank']}. [bold]{hit['table']}[/] ({tier_text}, score {hit['score']:.3f})")
        for reason in hit["reasons"]:
            out.print(f"     - {escape(reason)}")


@search_app.command("queries")
def search_queries(question: str, k: Annotated[int, typer.Option(help="How many queries")] = 3) -> None:
    """Past queries whose questions match QUESTION, most trustworthy first (the running server's, when up)."""
    from bastion.remote import ToolFailed, from_server

    try:
        found = from_server("sql__search_queries", {"question": question, "k": k})
    except ToolFailed as exc:
        fail(exc.message)
    if found is not None:
        hits: list[dict[str, Any]] = [query["hit"] for query in found["queries"]]
    else:
        from embeddings.retrieval import RetrievalError

        try:
            hits = [h.model_dump() for h in _retriever().search_queries(question, k=k)]
        except RetrievalError as exc:
            fail(str(exc))
    if not hits:
        out.print("no past queries in the index")
    for hit in hits:
        out.print(f"{hit['rank']}. {escape(hit['summary'])} (score {hit['score']:.3f})")
        for reason in hit["reasons"]:
            out.print(f"     - {escape(reason)}")
        for warning in hit["warnings"]:
            out.print(f"     [yellow]! {escape(warning)}[/]")
        out.print(escape(hit["sql"]), highlight=False)


def eval_retrieval(
    skip_bird: Annotated[bool, typer.Option(help="Only the demo warehouse")] = False,
    results: Annotated[Path, typer.Option("--out", help="Where the JSON and the plot go")] = Path("bench/results"),
) -> None:
    """Table retrieval on BIRD mini-dev (pooled) and on the demo warehouse's labelled questions."""
    from embeddings.embedder import make_embedder
    from embeddings.evaluation import evaluate_bird, evaluate_demo, report
    from embeddings.settings import IndexSettings

    embedder = make_embedder(IndexSettings())
    bird = None
    if not skip_bird:
        try:
            progress, advance = bars()
            with progress:
                bird = evaluate_bird(embedder, advance)
        except FileNotFoundError as exc:
            err.print(f"[yellow]BIRD skipped:[/] {escape(str(exc))}")
    from embeddings.evaluation import METADATA_QUESTIONS
    from embeddings.settings import DEMO_DIR
    from tools.provenance import data_version, provenance

    retriever = _retriever()
    progress, advance = bars()
    with progress:
        demo = evaluate_demo(retriever, progress=advance)
        metadata = evaluate_demo(retriever, METADATA_QUESTIONS, advance)
    files = [DEMO_DIR / "metadata.yaml", DEMO_DIR / "questions.yaml", DEMO_DIR / METADATA_QUESTIONS]
    stamp = provenance([], {"demo": data_version(files)}, embedder=type(embedder).__name__, bird=bird is not None)
    report(bird, demo, results, out, metadata=metadata, stamp=stamp)
