"""Building and loading the knowledge index.

Build: schema from the connector → metadata merged → query log mined (usage, validated join keys,
common filters, intents) → documents → Chroma synced by content hash → a snapshot directory
(catalog.json, intents.jsonl, summary.json) swapped in atomically at the very end. A failure at any
step leaves the previous snapshot serving; rows the inputs got wrong are reported, not fatal.
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from embeddings.connectors import SourceError, WarehouseReader, read_schema
from embeddings.documents import IntentRecord, content_hash, governance_document, table_document
from embeddings.embedder import Embedder
from embeddings.intent import Intent, LLMDescriber, describe
from embeddings.metadata import Problem, apply_metadata, load_metadata
from embeddings.mining import Mined, mine
from embeddings.querylog import QUERY_LOG_COLUMNS, QueryRecord, read_query_log, read_query_rows
from embeddings.settings import IndexSettings, LLMSettings
from embeddings.store import Doc, SyncStats, VectorStore, client_for
from governance.catalog import Catalog, CommonFilter, JoinKey, Usage

Progress = Callable[[str, int, int | None], None]  # (stage, advance, total)


class IndexSummary(BaseModel):
    built_at: datetime
    source: str
    tables: int
    queries: int
    intents: int
    unparsed_queries: int
    describer: str
    embedder: str
    synced: dict[str, dict[str, int]] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def build_catalog(
    settings: IndexSettings, progress: Progress | None = None, reader: WarehouseReader | None = None
) -> tuple[Catalog, list[Problem]]:
    """The catalog of the warehouse (read by `reader` when given: a Spark warehouse) with its metadata merged."""
    tables = read_schema(
        settings.source(), progress=(lambda name: progress("profiling", 1, None)) if progress else None, reader=reader
    )
    catalog = Catalog(tables={t.name: t for t in tables})
    problems: list[Problem] = []
    metadata_file = settings.metadata_file()
    if metadata_file is not None:
        metadata, found = load_metadata(metadata_file)
        if not metadata and found:
            # Nothing usable (unreadable or not YAML): publishing an index without governance would
            # silently rank staging and deprecated tables like production ones. Keep the old one.
            raise SourceError("; ".join(str(p) for p in found))
        problems.extend(found)
        problems.extend(apply_metadata(catalog, metadata, str(metadata_file)))
    else:
        apply_metadata(catalog, {}, "")
    return catalog, problems


def mine_history(
    records: list[QueryRecord],
    catalog: Catalog,
    dialect: str,
    describer: Callable[[str, Mined, Catalog], Intent] | None = None,
    progress: Progress | None = None,
) -> list[IntentRecord]:
    """Usage, join keys and filters into the catalog; one intent per distinct query shape."""
    usage: dict[str, list[QueryRecord]] = defaultdict(list)
    joins: Counter[tuple[str, str]] = Counter()
    filters: Counter[tuple[str, str, str]] = Counter()
    groups: dict[str, list[tuple[QueryRecord, Mined]]] = defaultdict(list)
    seen: dict[str, Mined] = {}  # scheduled and dashboard queries repeat verbatim: parse each text once
    for n, record in enumerate(records, 1):
        mined = seen.get(record.sql) or seen.setdefault(record.sql, mine(record.sql, dialect, catalog))
        groups[mined.shape].append((record, mined))
        for table_name in mined.breakdown.tables:
            usage[table_name].append(record)
        if record.success and mined.parsed:
            for pair in mined.breakdown.joins:
                joins[pair] += 1
            for column, text in zip(mined.breakdown.filter_columns, mined.breakdown.filters, strict=False):
                filters[(column.rsplit(".", 1)[0], column, text)] += 1
        if progress is not None and (n % 500 == 0 or n == len(records)):
            progress("mining queries", 500 if n % 500 == 0 else n % 500, len(records))
    for name, used_by in usage.items():
        table = catalog.tables.get(name)
        if table is None:
            continue
        table.usage = Usage(
            queries=len(used_by),
            distinct_authors=len({r.author for r in used_by}),
            last_used=max(r.executed_at for r in used_by),
            success_rate=sum(r.success for r in used_by) / len(used_by),
        )
    for (left, right), count in joins.most_common():
        for side in (left, right):
            table = catalog.tables.get(side.rsplit(".", 1)[0])
            if table is not None and table.column(side.rsplit(".", 1)[1]) is not None:
                table.join_keys.append(JoinKey(left=side, right=right if side == left else left, queries=count))
    for (filtered_table, column, text), count in filters.most_common():
        table = catalog.tables.get(filtered_table)
        if table is not None and len(table.common_filters) < 8:
            table.common_filters.append(CommonFilter(column=column, example=text, queries=count))

    intents: list[IntentRecord] = []
    describe_with = describer or _describe_deterministically
    for shape, runs in groups.items():
        ordered = sorted(runs, key=lambda rm: rm[0].executed_at)
        successful = [rm for rm in ordered if rm[0].success]
        latest, latest_mined = (successful or ordered)[-1]
        intent = describe_with(latest.sql, latest_mined, catalog) if latest_mined.parsed else Intent(
            summary=f"Unparsed query ({latest_mined.error})", questions=["(not parsed)"], breakdown={}, describer="none"
        )  # fmt: skip
        intents.append(
            IntentRecord(
                id="intent-" + content_hash(shape)[:20],
                shape=shape,
                intent=intent,
                tables=latest_mined.breakdown.tables,
                example_sql=latest.sql.strip().rstrip(";"),
                runs=len(runs),
                successes=len(successful),
                authors=sorted({r.author for r, _ in runs}),
                first_run=ordered[0][0].executed_at,
                last_run=ordered[-1][0].executed_at,
                parsed=latest_mined.parsed,
                parse_error=latest_mined.error,
            )
        )
        if progress is not None:
            progress("describing intents", 1, len(groups))
    return intents


def documents(catalog: Catalog, intents: list[IntentRecord]) -> dict[str, list[Doc]]:
    schema = []
    governance = []
    for table in catalog.tables.values():
        text = table_document(table, catalog)
        meta: dict[str, str | int | float | bool] = {
            "table": table.name, "domain": table.domain or "", "tier": table.tier or 0,
            "deprecated": table.deprecated, "pii": bool(table.pii_columns),
        }  # fmt: skip
        schema.append(Doc(f"table:{table.name}", text, content_hash(text), meta))
        gov = governance_document(table, catalog)
        governance.append(Doc(f"gov:{table.name}", gov, content_hash(gov), {**meta, "kind": "table"}))
    for term in catalog.glossary.values():
        text = f"Glossary: {term.name} — {term.definition} Also called: {', '.join(term.synonyms)}"
        governance.append(Doc(f"term:{term.name}", text, content_hash(text), {"kind": "term"}))
    for metric in catalog.metrics.values():
        text = f"Metric {metric.name}: {metric.definition} = {metric.sql} (tables: {', '.join(metric.tables)})"
        governance.append(Doc(f"metric:{metric.name}", text, content_hash(text), {"kind": "metric"}))
    intent_docs: list[Doc] = []
    for record in intents:
        if not record.parsed:
            continue
        # Match new questions against past *questions*: one vector per question, plus the summary.
        texts = [record.intent.summary, *record.intent.questions]
        for n, text in enumerate(texts):
            meta = {"intent": record.id, "success_rate": record.success_rate, "runs": record.runs}
            intent_docs.append(Doc(f"{record.id}:{n}", text, content_hash(text), meta))
    return {"schema": schema, "intent": intent_docs, "governance": governance}


class Snapshot:
    """The index as loaded: the catalog and the intents; Chroma holds their vectors."""

    def __init__(self, catalog: Catalog, intents: list[IntentRecord], summary: IndexSummary) -> None:
        self.catalog = catalog
        self.intents = intents
        self.summary = summary

    @staticmethod
    def directory(settings: IndexSettings) -> Path:
        return settings.data_dir / "index"

    def write(self, directory: Path) -> None:
        staging = directory.with_name(directory.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "catalog.json").write_text(self.catalog.model_dump_json())
        with (staging / "intents.jsonl").open("w") as f:
            for record in self.intents:
                f.write(record.model_dump_json() + "\n")
        (staging / "summary.json").write_text(self.summary.model_dump_json(indent=2))
        previous = directory.with_name(directory.name + ".old")
        shutil.rmtree(previous, ignore_errors=True)
        if directory.exists():
            directory.rename(previous)
        staging.rename(directory)
        shutil.rmtree(previous, ignore_errors=True)

    @staticmethod
    def stamp(directory: Path) -> tuple[int, int] | None:
        """Which build is at `directory` now (None while a rebuild swaps it in): a new build writes a new
        summary.json, so its inode and mtime change."""
        try:
            found = (directory / "summary.json").stat()
        except OSError:
            return None
        return (found.st_ino, found.st_mtime_ns)

    @classmethod
    def read(cls, directory: Path) -> Snapshot:
        if not (directory / "summary.json").exists():
            raise FileNotFoundError(f"no index at {directory}: run `bastion index` first")
        catalog = Catalog.model_validate_json((directory / "catalog.json").read_text())
        with (directory / "intents.jsonl").open() as f:
            intents = [IntentRecord.model_validate_json(line) for line in f if line.strip()]
        summary = IndexSummary.model_validate_json((directory / "summary.json").read_text())
        return cls(catalog, intents, summary)


def build_index(
    settings: IndexSettings,
    embedder: Embedder,
    llm: LLMSettings | None = None,
    progress: Progress | None = None,
    store: VectorStore | None = None,
    reader: WarehouseReader | None = None,
) -> IndexSummary:
    """Build and publish the index. `reader` reads a warehouse this package does not (Spark: the CLI passes the
    engine layer's), its catalog and, with QUERY_LOG_TABLE, its query history."""
    catalog, problems = build_catalog(settings, progress, reader)
    notes: list[str] = []
    records: list[QueryRecord] = []
    log_file = settings.query_log_file()
    if settings.query_log_table is not None:
        if reader is None:
            raise SourceError("BASTION_QUERY_LOG_TABLE is read from a Spark warehouse (BASTION_WAREHOUSE_URL sc://… "
                              "or spark://…); export another warehouse's history to BASTION_QUERY_LOG")  # fmt: skip
        limit = settings.query_log_rows
        rows = reader.read_rows(settings.query_log_table, QUERY_LOG_COLUMNS, "executed_at", limit)
        records, found = read_query_rows(rows, settings.query_log_table)
        problems.extend(found)
        if len(rows) >= limit:
            notes.append(f"Query history: the latest {limit:,} rows of {settings.query_log_table} were read.")
    elif log_file is not None:
        records, found = read_query_log(log_file)
        problems.extend(found)
    llm = llm or LLMSettings()
    describer_name = "deterministic (no LLM configured)"
    describer: Callable[[str, Mined, Catalog], Intent] | None = None
    llm_describer: LLMDescriber | None = None
    if llm.configured:
        llm_describer = LLMDescriber(llm)
        describer, describer_name = llm_describer, f"llm:{llm.model}"
    else:
        notes.append("No LLM configured: intents were written by the deterministic describer.")
    intents = mine_history(records, catalog, settings.query_dialect, describer, progress)
    if llm_describer is not None and llm_describer.failures:
        notes.append(f"The LLM failed on {llm_describer.failures} intents; the deterministic describer wrote those.")
    unparsed = sum(r.runs for r in intents if not r.parsed)
    if unparsed:
        notes.append(f"{unparsed} logged queries did not parse: kept, flagged, not indexed as intents.")
    store = store or VectorStore(client_for(settings.chroma_url, settings.chroma_dir()), embedder)
    synced: dict[str, dict[str, int]] = {}
    for name, docs in documents(catalog, intents).items():
        stats: SyncStats = store.sync(name, docs, progress=_progress_for(progress, name, len(docs)))
        synced[name] = {"embedded": stats.embedded, "unchanged": stats.unchanged, "removed": stats.removed}
    summary = IndexSummary(
        built_at=datetime.now(UTC),
        source=reader.name if reader is not None else _safe_source(settings.source()),
        tables=len(catalog.tables),
        queries=len(records),
        intents=sum(1 for r in intents if r.parsed),
        unparsed_queries=unparsed,
        describer=describer_name,
        embedder=embedder.name,
        synced=synced,
        problems=[str(p) for p in problems],
        notes=notes,
    )
    Snapshot(catalog, intents, summary).write(Snapshot.directory(settings))
    return summary


def _progress_for(progress: Progress | None, name: str, total: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    report = progress
    return lambda n: report(f"embedding {name}", n, total)


def _describe_deterministically(sql: str, mined: Mined, catalog: Catalog) -> Intent:
    return describe(mined, catalog)


def _safe_source(source: str) -> str:
    if "://" not in source:
        return source
    from sqlalchemy.engine import make_url

    try:
        return make_url(source).render_as_string(hide_password=True)
    except Exception:
        return source.rsplit("@", maxsplit=1)[-1]
