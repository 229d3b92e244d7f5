"""The query log: historical queries from CSV or JSON lines, validated row by row.

A bad row is reported with its line number and skipped; every good row is kept. SQL that does not
parse is kept too (flagged later by the miner): a log is evidence of what people ran.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError, field_validator

from embeddings.metadata import Problem

MAX_SQL_LENGTH = 100_000


class QueryRecord(BaseModel):
    query_id: str
    author: str
    team: str | None = None
    executed_at: datetime
    runtime_ms: int | None = Field(None, ge=0)
    success: bool = True
    error: str | None = None
    rows_returned: int | None = None
    sql: str = Field(min_length=1, max_length=MAX_SQL_LENGTH)

    @field_validator("query_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> str:
        return str(value)

    @field_validator("sql")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value


def _row(raw: dict[str, object], source: str, line: int, problems: list[Problem]) -> QueryRecord | None:
    try:
        return QueryRecord.model_validate({k: v for k, v in raw.items() if v not in ("", None)})
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in exc.errors())
        problems.append(Problem(source=source, line=line, message=detail))
        return None


# The columns of a query log, as the file's (`read_query_log`) and a warehouse table's (`read_query_rows`).
QUERY_LOG_COLUMNS = list(QueryRecord.model_fields)
QUERY_LOG_REQUIRED = {"query_id", "author", "executed_at", "sql"}


def read_query_rows(rows: list[dict[str, object]], source: str) -> tuple[list[QueryRecord], list[Problem]]:
    """A query log kept as a table (rows as dicts, read by the warehouse's reader), validated like the file's;
    `line` is the row's position in what was read."""
    problems: list[Problem] = []
    missing = QUERY_LOG_REQUIRED - set(rows[0]) if rows else set()
    if missing:
        return [], [Problem(source=source, message=f"missing columns: {', '.join(sorted(missing))}")]
    records = [r for n, raw in enumerate(rows, 1) if (r := _row(raw, source, n, problems)) is not None]
    return records, problems


def read_query_log(path: Path) -> tuple[list[QueryRecord], list[Problem]]:
    source = str(path)
    records: list[QueryRecord] = []
    problems: list[Problem] = []
    try:
        handle = path.open(encoding="utf-8", errors="replace", newline="")
    except OSError as exc:
        return [], [Problem(source=source, message=f"cannot read: {exc.strerror}")]
    with handle:
        if path.suffix in (".jsonl", ".ndjson", ".json"):
            for line_number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as exc:
                    problems.append(Problem(source=source, line=line_number, message=f"not JSON: {exc.msg}"))
                    continue
                if not isinstance(raw, dict):
                    problems.append(Problem(source=source, line=line_number, message="not a JSON object"))
                    continue
                record = _row(raw, source, line_number, problems)
                if record is not None:
                    records.append(record)
        elif path.suffix in (".csv", ".tsv"):
            reader = csv.DictReader(handle, delimiter="\t" if path.suffix == ".tsv" else ",")
            missing = QUERY_LOG_REQUIRED - set(reader.fieldnames or [])
            if missing:
                return [], [Problem(source=source, line=1, message=f"missing columns: {', '.join(sorted(missing))}")]
            for raw in reader:
                record = _row(dict(raw), source, reader.line_num, problems)
                if record is not None:
                    records.append(record)
        else:
            return [], [Problem(source=source, message="use .jsonl or .csv")]
    return records, problems
