"""The SQL guard: one read-only query, every table and column real, nothing the caller may not see.

`check(sql, catalog, dialect, policy)` runs the rules in order and returns every issue it finds (not
only the first), with a location and a hint where one helps:

1. parse: exactly one statement, in the given dialect;
2. read-only: a query (SELECT/UNION/…) with no DML, DDL, `SELECT … INTO`, locking or commands inside;
3. shape: a non-empty select list, at least one catalog table read;
4. tables: each exists (CTE names excepted), none deprecated (the successor named), Tier 3 warned,
   no table functions that read files;
5. functions: typed sqlglot functions unless denied; names sqlglot does not know must be on the
   dialect's allow-list (an invented function passes sqlglot's parser silently);
6. columns: qualified against the catalog with sqlglot's `qualify` (stars expanded, so `SELECT *`
   over an unknown table or a PII column is caught); unknown and ambiguous columns reported apart;
7. lineage: PII and above-clearance columns refused wherever they appear — through `*`, CTEs and
   subqueries, since every scope is checked after star expansion;
8. partition filter on large partitioned tables; 9. LIMIT added or capped.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import sqlglot
from pydantic import BaseModel, Field
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import OptimizeError, ParseError, SqlglotError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.schema import MappingSchema

from governance.catalog import Catalog, Table
from governance.classification import Classification
from governance.sqlguard.functions import ALLOWED_ANONYMOUS, DENIED
from governance.sqlguard.issues import SUPPORTED_DIALECTS, GuardResult, Issue

MAX_SQL_CHARS = 100_000
_FLAT_SCHEMA = "main"  # catalogs keyed by bare table names (SQLite files) get one schema
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command,
           exp.Into, exp.Lock, exp.TruncateTable, exp.Copy, exp.Pragma, exp.Set, exp.Use, exp.Transaction)  # fmt: skip
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike)
_UNRESOLVED = re.compile(r"Column '?\"?([^'\"]+)\"?'? could not be resolved|Unknown column: (\S+)")


class GuardPolicy(BaseModel):
    """What a caller may run. The defaults are the platform's; deployments tune them."""

    default_limit: int = Field(100, ge=1, description="LIMIT added when a query has none")
    max_limit: int = Field(10_000, ge=1, description="A larger LIMIT is capped to this")
    partition_filter_min_rows: int | None = Field(
        1_000_000, description="Tables with a partition column and at least this many rows need a filter on it"
    )
    clearance: Classification = Field(Classification.INTERNAL, description="The caller's clearance")
    allow_pii: bool = Field(False, description="Let PII columns through (a cleared, audited caller)")
    add_limit: bool = True


def check(sql: str, catalog: Catalog, dialect: str = "duckdb", policy: GuardPolicy | None = None) -> GuardResult:
    return _Check(sql, catalog, dialect, policy or GuardPolicy()).run()


class _Check:
    def __init__(self, sql: str, catalog: Catalog, dialect: str, policy: GuardPolicy) -> None:
        self.sql = sql
        self.catalog = catalog
        self.dialect = dialect
        self.policy = policy
        self.errors: list[Issue] = []
        self.warnings: list[Issue] = []
        self.tables: dict[str, Table] = {}  # reference key → catalog table
        self.columns: list[str] = []
        self.nodes: list[exp.Expr] = []
        self.ctes: set[str] = set()

    def error(self, code: str, message: str, node: exp.Expr | None = None, **extra: Any) -> None:
        self.errors.append(Issue(code=code, message=message, **_location(node), **extra))

    def warn(self, code: str, message: str, node: exp.Expr | None = None, **extra: Any) -> None:
        self.warnings.append(Issue(code=code, message=message, severity="warning", **_location(node), **extra))

    def result(self, output: str | None = None) -> GuardResult:
        ok = not self.errors
        return GuardResult(
            ok=ok, dialect=self.dialect, errors=self.errors, warnings=self.warnings,
            sql=output if ok else None,
            tables=sorted({t.name for t in self.tables.values()}), columns=self.columns,
        )  # fmt: skip

    # -- the rules, in order -----------------------------------------------------------------------

    def run(self) -> GuardResult:
        if self.dialect not in SUPPORTED_DIALECTS:
            self.error("unsupported_dialect", f"dialect {self.dialect!r} is not supported",
                       hint=f"use one of {', '.join(SUPPORTED_DIALECTS)}")  # fmt: skip
            return self.result()
        if not self.sql.strip():
            self.error("empty", "the SQL is empty")
            return self.result()
        if len(self.sql) > MAX_SQL_CHARS:
            self.error("too_long", f"the SQL is {len(self.sql):,} characters; at most {MAX_SQL_CHARS:,}")
            return self.result()
        statement = self.parse()
        if statement is None:
            return self.result()
        # One walk of the tree; every rule below filters this list instead of walking again.
        self.nodes = list(statement.walk())
        self.ctes = {cte.alias_or_name.lower() for cte in self.of(exp.CTE)}
        if not self.read_only(statement) or not self.shape(statement):
            return self.result()
        self.check_tables(statement)
        self.check_functions(statement)
        if not self.errors:
            self.reads_a_table(statement)
        if self.errors:
            return self.result()
        if self.policy.add_limit:
            self.limit(statement)
        # The output is generated now: the column check rewrites the tree in place (cheaper than a copy).
        output = Dialect.get_or_raise(self.dialect).generate(statement, copy=False, pretty=True)
        qualified = self.check_columns(statement)
        if qualified is not None:
            self.check_lineage(qualified)
        return self.result(output)

    def of(self, *kinds: type[exp.Expr]) -> list[Any]:
        return [node for node in self.nodes if isinstance(node, kinds)]

    def parse(self) -> exp.Expr | None:
        try:
            statements = [s for s in sqlglot.parse(self.sql, read=self.dialect) if s is not None]
        except ParseError as exc:
            first = exc.errors[0] if exc.errors else {}
            description = str(first.get("description", exc)).split(". Line")[0]
            self.errors.append(Issue(code="syntax_error", message=f"the SQL does not parse as {self.dialect}: "
                                     f"{description}", line=first.get("line"), column=first.get("col"),
                                     hint="check the syntax near that position"))  # fmt: skip
            return None
        except TokenError as exc:
            self.error("syntax_error", f"the SQL does not tokenize: {exc}", hint="check quotes and brackets")
            return None
        if len(statements) != 1:
            self.error("multiple_statements", f"{len(statements)} statements; exactly one query is allowed"
                       if statements else "no statement found", hint="send one SELECT at a time")  # fmt: skip
            return None
        return statements[0]

    def read_only(self, statement: exp.Expr) -> bool:
        if not isinstance(statement, exp.Query):
            kind = statement.key.upper() if isinstance(statement, exp.Expression) else "?"
            code = "not_read_only" if isinstance(statement, _WRITES) else "not_a_query"
            self.error(code, f"only queries may run; this is {kind}", statement,
                       hint="write a single SELECT (WITH … SELECT is fine)")  # fmt: skip
            return False
        for node in self.of(*_WRITES):
            self.error("not_read_only", f"{node.key.upper()} inside a query is not allowed", node,
                       hint="queries only: no writes, SELECT INTO, locks or commands")  # fmt: skip
        return not self.errors

    def shape(self, statement: exp.Expr) -> bool:
        for select in self.of(exp.Select):
            if not select.expressions:
                self.error("empty_select", "the select list is empty", select, hint="name the columns to return")
        return not self.errors

    def reads_a_table(self, statement: exp.Expr) -> None:
        if not any(self._is_catalog_ref(t) for t in self.of(exp.Table)):
            self.error("no_table", "the query reads no table", statement, hint="add a FROM clause on a catalog table")

    def _is_catalog_ref(self, table: exp.Table) -> bool:
        if not isinstance(table.this, exp.Identifier):
            return False  # a table function or a subquery-like construct
        return not (not table.db and table.name.lower() in self.ctes)

    def check_tables(self, statement: exp.Expr) -> None:
        ctes = self.ctes
        for node in self.of(exp.Table):
            if not isinstance(node.this, exp.Identifier):
                name = node.this.sql(dialect=self.dialect)[:60] if node.this is not None else "?"
                self.error("forbidden_function", f"table function {name} is not allowed", node, subject=name,
                           hint="read catalog tables only")  # fmt: skip
                continue
            if not node.db and node.name.lower() in ctes:
                continue
            reference = ".".join(p for p in (node.catalog, node.db, node.name) if p)
            table = self.catalog.table(".".join(reference.lower().split(".")[-2:]))
            if table is None:
                close = difflib.get_close_matches(reference.lower(), list(self.catalog.tables), n=3, cutoff=0.6)
                self.error(
                    "unknown_table",
                    f"table {reference} does not exist",
                    node,
                    subject=reference,
                    hint=f"did you mean {', '.join(close)}?" if close else "search the catalog for the table",
                )
                continue
            self.tables[reference.lower()] = table
            if table.deprecated:
                successor = f"use {table.successor}" if table.successor else "ask its owner for the replacement"
                self.error("deprecated_table", f"table {table.name} is deprecated", node, subject=table.name,
                           hint=successor)  # fmt: skip
            elif table.tier == 3:
                instead = f"; prefer {table.successor}" if table.successor else ""
                self.warn("tier3_table", f"table {table.name} is Tier 3 (staging/temporary/legacy){instead}", node,
                          subject=table.name, hint=f"use {table.successor}" if table.successor else None)  # fmt: skip

    def check_functions(self, statement: exp.Expr) -> None:
        allowed = ALLOWED_ANONYMOUS[self.dialect]
        for func in self.of(exp.Func):
            if isinstance(func.parent, exp.Table):
                continue  # a table function: reported by check_tables
            if isinstance(func, exp.Anonymous):
                name = str(func.this).lower()
                if name in DENIED:
                    self.error("forbidden_function", f"function {name} is not allowed", func, subject=name,
                               hint="it reads files, sleeps or reaches outside the query")  # fmt: skip
                elif name not in allowed:
                    close = difflib.get_close_matches(name, sorted(allowed), n=3, cutoff=0.7)
                    self.error("unknown_function", f"function {name} is not known in {self.dialect}", func,
                               subject=name, hint=f"did you mean {', '.join(close)}?" if close
                               else f"use a {self.dialect} function")  # fmt: skip
            elif func.sql_name().lower() in DENIED:
                name = func.sql_name().lower()
                self.error("forbidden_function", f"function {name} is not allowed", func, subject=name,
                           hint="it reads files, sleeps or reaches outside the query")  # fmt: skip

    # -- columns and lineage ------------------------------------------------------------------------

    def _schema_key(self, table: Table) -> tuple[str, str]:
        parts = table.name.split(".")
        return (parts[-2], parts[-1]) if len(parts) >= 2 else (_FLAT_SCHEMA, parts[-1])

    def check_columns(self, statement: exp.Expr) -> exp.Expr | None:
        mapping: dict[str, dict[str, dict[str, str]]] = {}
        for table in self.tables.values():
            db, name = self._schema_key(table)
            mapping.setdefault(db, {})[name] = {c.name.lower(): (c.type or "TEXT") for c in table.columns}
        tree = statement
        # Identifiers compare case-insensitively (the catalog lower-cases; BIRD mixes cases).
        for identifier in self.of(exp.Identifier):
            identifier.set("this", str(identifier.this).lower())
        ctes = self.ctes
        for node in self.of(exp.Table):
            if isinstance(node.this, exp.Identifier) and not (not node.db and node.name in ctes):
                known = self.tables.get(".".join(p for p in (node.catalog, node.db, node.name) if p))
                if known is not None:
                    db, name = self._schema_key(known)
                    node.set("catalog", None)
                    node.set("db", exp.to_identifier(db))
                    node.set("this", exp.to_identifier(name))
        if self.dialect == "sqlite":
            _sqlite_double_quoted_strings(tree, mapping)
        schema = MappingSchema(dict(mapping), dialect=self.dialect, normalize=False)
        try:
            return qualify(tree, schema=schema, dialect=self.dialect, validate_qualify_columns=True,
                           quote_identifiers=False, identify=False)  # fmt: skip
        except OptimizeError as exc:
            self._column_error(str(exc), statement, mapping)
        except (SqlglotError, KeyError, ValueError, AttributeError, TypeError) as exc:
            # A construct qualify cannot follow is not proof of a bad query: say so, do not refuse.
            self.warn("columns_unverified", f"columns could not be verified: {str(exc)[:200]}")
        return None

    def _column_error(self, message: str, statement: exp.Expr, mapping: dict[str, dict[str, dict[str, str]]]) -> None:
        match = _UNRESOLVED.search(message)
        name = (match.group(1) or match.group(2)).strip("\"'`") if match else None
        if name is None:
            detail = message.split(". Line", maxsplit=1)[0]
            self.error("unresolved_column", detail, hint="check column names against the catalog")
            return
        bare = name.rsplit(".", 1)[-1].lower()
        owners = [f"{db}.{t}" if db != _FLAT_SCHEMA else t
                  for db, tables in mapping.items() for t, cols in tables.items() if bare in cols]  # fmt: skip
        node = next((c for c in statement.find_all(exp.Column) if c.name.lower() == bare), None)
        if "." not in name and len(owners) > 1:
            self.error("ambiguous_column", f"column {bare} is ambiguous: it is in {', '.join(owners)}", node,
                       subject=bare, hint="qualify it with a table alias")  # fmt: skip
            return
        known = sorted({c for tables in mapping.values() for cols in tables.values() for c in cols})
        close = difflib.get_close_matches(bare, known, n=3, cutoff=0.6)
        term = self.catalog.term_for(bare)
        hint = f"did you mean {', '.join(close)}?" if close else "describe the table to see its columns"
        if term is not None:
            held = [c for c in known if self.catalog.term_for(c) is term]
            if held:
                hint = f"{bare} means {term.name} here: the column is {', '.join(held)}"
        self.error("unknown_column", f"column {name} does not exist in the tables the query reads", node,
                   subject=name, hint=hint)  # fmt: skip

    def check_lineage(self, qualified: exp.Expr) -> None:
        by_key = {self._schema_key(t): t for t in self.tables.values()}
        seen: set[str] = set()
        threshold = self.policy.partition_filter_min_rows
        for scope in traverse_scope(qualified):
            for column in scope.columns:
                source = scope.sources.get(column.table)
                if not isinstance(source, exp.Table):
                    continue
                table = by_key.get((source.db, source.name))
                meta = table.column(column.name) if table is not None else None
                if table is None or meta is None:
                    continue
                key = f"{table.name}.{meta.name}"
                if key in seen:
                    continue
                seen.add(key)
                self.columns.append(key)
                if meta.pii and not self.policy.allow_pii:
                    self.error(
                        "pii_column",
                        f"column {key} holds personal data ({meta.pii})",
                        subject=key,
                        hint="leave it out, or aggregate without it (count distinct on an id column)",
                    )
                elif meta.classification.rank > self.policy.clearance.rank:
                    self.error("above_clearance", f"column {key} is {meta.classification.value}; your clearance "
                               f"is {self.policy.clearance.value}", subject=key,
                               hint="leave it out or ask for access")  # fmt: skip
            if threshold is not None:
                self._partition_filters(scope, by_key, threshold, qualified)

    def _partition_filters(self, scope: Scope, by_key: dict[tuple[str, str], Table], threshold: int,
                           root: exp.Expr) -> None:  # fmt: skip
        for alias, source in scope.selected_sources.items():
            node = source[1] if isinstance(source, tuple) else source
            if not isinstance(node, exp.Table):
                continue
            table = by_key.get((node.db, node.name))
            if table is None or not table.partition_column or (table.row_count or 0) < threshold:
                continue
            column = table.partition_column.lower()
            local = [scope.expression.args.get("where")] + [
                j.args.get("on") for j in scope.expression.args.get("joins") or []
            ]
            filtered = any(c.name == column and c.table == alias for clause in local if clause is not None
                           for c in clause.find_all(exp.Column))  # fmt: skip
            # A filter applied by an enclosing query on a CTE or subquery also bounds the scan.
            filtered = filtered or any(c.name == column for where in root.find_all(exp.Where)
                                       for c in where.find_all(exp.Column))  # fmt: skip
            if not filtered:
                self.error("missing_partition_filter", f"{table.name} has {table.row_count:,} rows partitioned by "
                           f"{table.partition_column}; the query does not filter on it", subject=table.name,
                           hint=f"add WHERE {alias}.{table.partition_column} BETWEEN … to bound the scan")  # fmt: skip

    # -- the limit ------------------------------------------------------------------------------------

    def limit(self, statement: exp.Expr) -> None:
        assert isinstance(statement, exp.Query)
        current = statement.args.get("limit")
        if current is None:
            statement.set("limit", exp.Limit(expression=exp.Literal.number(self.policy.default_limit)))
            self.warn("limit_added", f"LIMIT {self.policy.default_limit} added")
            return
        value = current.expression
        if isinstance(value, exp.Literal) and value.is_int:
            if int(value.this) > self.policy.max_limit:
                current.set("expression", exp.Literal.number(self.policy.max_limit))
                self.warn("limit_capped", f"LIMIT {value.this} capped to {self.policy.max_limit}")
        else:
            current.set("expression", exp.Literal.number(self.policy.default_limit))
            self.warn("limit_replaced", f"a non-literal LIMIT was replaced by {self.policy.default_limit}")


def _location(node: exp.Expr | None) -> dict[str, Any]:
    if node is None:
        return {}
    meta = getattr(node, "meta", None) or {}
    if "line" not in meta:
        first = next((n for n in node.walk() if (getattr(n, "meta", None) or {}).get("line")), None)
        meta = first.meta if first is not None else {}
    return {"line": meta.get("line"), "column": meta.get("col")} if meta.get("line") else {}


def _sqlite_double_quoted_strings(tree: exp.Expr, mapping: dict[str, dict[str, dict[str, str]]]) -> None:
    """SQLite reads a double-quoted name that is no column as a string literal; so do we — but only in a
    value position (the right side of a comparison, an IN list), where a string is what was meant."""
    known = {c for tables in mapping.values() for cols in tables.values() for c in cols}
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for column in list(tree.find_all(exp.Column)):
        identifier = column.this
        parent = column.parent
        value_position = (isinstance(parent, exp.In) and column is not parent.this) or (
            isinstance(parent, _COMPARISONS) and column is parent.expression
        )
        if (value_position and isinstance(identifier, exp.Identifier) and identifier.quoted and not column.table
                and identifier.name.lower() not in known and identifier.name.lower() not in aliases):  # fmt: skip
            column.replace(exp.Literal.string(identifier.name))
