"""The catalog's words: what each phrase of a question can mean in this warehouse, built from the catalog only.

A phrase ("spend", "advertiser industry", "Germany", "click-through rate") binds to a measure (a numeric column),
a metric (the catalog's metrics), an entity (the rows of a table), a dimension (a column to group by), a value (a
profiled value of a column, by its code or its English name), a flag (an `is_…` column) or a date column. The
sources: table and column names, glossary terms and their synonyms, metric names and synonyms, profiled values
(with CLDR's English names of ISO country and language codes), a table description's "One row per …" and its
acronyms ("Daily active users (DAU)"). Joins come from the catalog's join keys and `x_id` names. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from agents.text2sql.literals import singular
from agents.text2sql.reparam import id_entities
from governance.catalog import Additivity, Catalog, Table

Kind = Literal["measure", "metric", "entity", "dimension", "value", "flag", "date"]

IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_NUMERIC = ("INT", "DOUBLE", "DECIMAL", "FLOAT", "REAL", "NUMERIC", "HUGEINT", "BIGINT", "SMALLINT", "TINYINT")
# A column name's unit suffix, and what people say instead of it ("session_seconds": "session length").
_UNITS: dict[str, tuple[tuple[str, ...], ...]] = {
    "usd": (), "seconds": (("length",), ("duration",), ("time",)), "count": (), "days": (),
}  # fmt: skip
_TABLE_SUFFIXES = ("daily", "log", "v0", "v1")
LEMMAS = {"spent": "spend", "spending": "spend", "saved": "save", "clicked": "click", "converted": "conversion",
          "viewed": "view", "signed": "signup", "sign": "signup", "followed": "follow", "gained": "gain",
          "imps": "imp"}  # fmt: skip


@dataclass(frozen=True)
class Binding:
    """One reading of a phrase: a measure, metric, entity (a table's rows), dimension, value, flag or date column."""

    kind: Kind
    table: str
    column: str | None = None
    value: str | None = None


@dataclass
class Vocabulary:
    phrases: dict[tuple[str, ...], set[Binding]]
    joins: dict[str, dict[str, tuple[str, str]]]  # table → joined table → (its column, the joined table's column)
    tables: dict[str, Table]
    short_values: dict[str, set[Binding]]  # two-letter codes, matched as written ("US", not "us")
    entity_words: set[str]  # the words that name an id column ("advertiser"): `reparam.id_entities`
    longest: int  # the most words in a phrase

    def reachable(self, fact: str, hops: int = 2) -> dict[str, list[tuple[str, str, str, str]]]:
        """Tables `fact` reaches in at most `hops` joins, each to one row of the joined table (its own key: no
        fan-out): table → the join steps (from, from column, to, to column)."""
        paths: dict[str, list[tuple[str, str, str, str]]] = {fact: []}
        frontier = [fact]
        for _ in range(hops):
            following = []
            for here in frontier:
                for there, (a, b) in self.joins.get(here, {}).items():
                    if there not in paths and b == key_of(there):
                        paths[there] = [*paths[here], (here, a, there, b)]
                        following.append(there)
            frontier = following
        return paths

    def aggregated(self, table: str) -> bool:
        """Rows that are already totals (per day, per platform, …): "daily" in the table's name or description."""
        t = self.tables[table]
        return "daily" in t.name.split(".")[-1].split("_") or (t.description or "").lower().startswith("daily")

    def additivity(self, table: str, column: str) -> Additivity | None:
        """What the catalog says of a number's sums (None: it does not say; `additive` decides by the table)."""
        meta = self.tables[table].column(column)
        return meta.additivity if meta is not None else None

    def additive(self, table: str) -> bool:
        """A numeric column of a table partitioned by date holds amounts and counts that add up (spend, clicks);
        one of an unpartitioned table is an attribute of its row (a price, a follower count)."""
        return bool(self.tables[table].partition_column)


def words(text: str) -> tuple[str, ...]:
    return tuple(word(w) for w in re.findall(r"[a-z0-9]+", text.lower()))


def word(raw: str) -> str:
    lowered = raw.lower()
    return singular(LEMMAS.get(lowered, lowered))


def singular_table(name: str) -> str:
    parts = [singular(w) for w in name.rsplit(".", maxsplit=1)[-1].split("_")]
    return "_".join(w[:-1] if w.endswith("s") and not w.endswith("ss") and len(w) > 2 else w for w in parts)


def key_of(table: str) -> str:
    """A table's own key by the naming convention: ads.campaigns → campaign_id."""
    return f"{singular_table(table)}_id"


def _usable(table: Table) -> bool:
    short = table.name.split(".")[-1]
    return not table.deprecated and (table.tier is None or table.tier <= 2) and bool(IDENT.match(short))


def _base(table: Table) -> tuple[str, ...]:
    parts = [w for w in table.name.split(".")[-1].split("_") if w]
    while parts and parts[-1] in _TABLE_SUFFIXES:
        parts = parts[:-1]
    return tuple(word(w) for w in parts)


def _entity_phrases(table: Table, catalog: Catalog, names: set[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """What a table's rows are called: its name without suffixes ("conversion event"), that name's head noun
    ("event") unless another table is called that (users.users is "user", not daily_active_users), a glossary
    term naming the table, and the X of a description's "One row per X"."""
    base = _base(table)
    phrases = [base] if base else []
    if len(base) > 1 and base[-1:] not in names:
        phrases.append(base[-1:])
    for term in catalog.glossary.values():
        if table.name.split(".")[-1] in (s.lower() for s in term.synonyms):
            phrases.append(words(term.name))
    description = (table.description or "").lower()
    row = re.match(r"one row per ([a-z ]+?)(?:\s+(?:with|and|in|on|of|for)\b|[,.(]|$)", description)
    if row:
        described = words(row.group(1))
        phrases.append(described)
        if described[-1:] not in names or described[-1:] == base:
            phrases.append(described[-1:])
    return list(dict.fromkeys(p for p in phrases if p))


def _column_phrases(name: str, entity: list[tuple[str, ...]], catalog: Catalog) -> set[tuple[str, ...]]:
    parts = name.lower().split("_")
    phrases = {words(" ".join(parts))}
    if parts[-1] in _UNITS and len(parts) > 1:
        stem = words(" ".join(parts[:-1]))
        if stem not in entity:  # users.sessions.session_seconds is not "sessions": those are counted
            phrases.add(stem)
        phrases |= {stem + extra for extra in _UNITS[parts[-1]]}
    main = entity[0] if entity else ()
    for phrase in list(phrases):
        if main and phrase[: len(main)] == main and len(phrase) > len(main):
            phrases.add(phrase[len(main) :])  # products.product_category → "category"
    term = catalog.term_for(name)
    if term is not None:
        for other in [term.name, *term.synonyms]:
            phrases.add(words(other.replace("_", " ")))
            other_parts = other.lower().split("_")
            if other_parts[-1] in _UNITS and len(other_parts) > 1:
                phrases.add(words(" ".join(other_parts[:-1])))
    return {p for p in phrases if p}


@lru_cache(maxsize=1)
def _country_and_language_names() -> tuple[dict[str, str], dict[str, str]]:
    from babel import Locale

    english = Locale("en")
    return dict(english.territories), dict(english.languages)


def _value_phrases(column: str, term: str | None, value: str) -> set[tuple[str, ...]]:
    phrases = set()
    spelled = words(value.replace("_", " "))
    if re.search(r"[A-Za-z]", value) or len(spelled) > 1:  # "OUT_OF_STOCK", "18-24"; not a lone "55"
        phrases.add(spelled)
    territories, languages = _country_and_language_names()
    if (term == "country" or column.endswith("country")) and value.upper() in territories:
        phrases.add(words(territories[value.upper()]))
    if (column == "language" or column.endswith("_language")) and value.lower() in languages:
        phrases.add(words(languages[value.lower()]))
    return {p for p in phrases if p}


def vocabulary(catalog: Catalog) -> Vocabulary:
    return _vocabulary(catalog.model_dump_json())


@lru_cache(maxsize=4)
def _vocabulary(catalog_json: str) -> Vocabulary:
    catalog = Catalog.model_validate_json(catalog_json)
    tables = {name: t for name, t in catalog.tables.items() if _usable(t)}
    phrases: dict[tuple[str, ...], set[Binding]] = {}
    short: dict[str, set[Binding]] = {}

    def add(phrase: tuple[str, ...], binding: Binding) -> None:
        phrases.setdefault(phrase, set()).add(binding)

    entity_words = id_entities(catalog)
    names = {_base(t) for t in tables.values()}
    for name, table in tables.items():
        entity = _entity_phrases(table, catalog, names)
        for phrase in entity:
            add(phrase, Binding("entity", name))
        for column in table.columns:
            _add_column(name, column.name.lower(), column.type.upper(), column.glossary_term, column.values, entity,
                        entity_words, catalog, add, short)  # fmt: skip
        for spelled_out, acronym in re.findall(r"((?:[A-Za-z]+\s+){2,6})\(([A-Z]{2,6})\)", table.description or ""):
            spelled = spelled_out.split()[-len(acronym) :]
            abbreviated = table.column(acronym.lower())
            if abbreviated is not None and [w[0].upper() for w in spelled] == list(acronym):
                add(words(" ".join(spelled)), Binding("measure", name, abbreviated.name.lower()))
    for metric in catalog.metrics.values():
        try:
            tree = sqlglot.parse_one(metric.sql, read="duckdb")
        except (ParseError, TokenError):
            continue
        needed = {c.name.lower() for c in tree.find_all(exp.Column)}
        for listed in metric.tables:
            holder = tables.get(listed.lower())
            if holder is None or not needed <= {c.name.lower() for c in holder.columns}:
                continue
            for label in [metric.name.replace("_", " "), *metric.synonyms]:
                add(words(label), Binding("metric", holder.name, metric.name))
    return Vocabulary(phrases=phrases, joins=_joins(tables), tables=tables, short_values=short,
                      entity_words=entity_words, longest=max(map(len, phrases), default=1))  # fmt: skip


def _add_column(table: str, col: str, kind: str, term: str | None, values: list[str] | None,
                entity: list[tuple[str, ...]], entity_words: set[str], catalog: Catalog,
                add: Callable[[tuple[str, ...], Binding], None], short: dict[str, set[Binding]]) -> None:  # fmt: skip
    if not IDENT.match(col):
        return
    if col.endswith("_id"):  # creator_user_id: "creator user", "user" (and "creator" if that names an id)
        base = col[:-3].split("_")
        for said in {" ".join(base), base[-1], *(base[:1] if base[0] in entity_words else [])}:
            add(words(said), Binding("dimension", table, col))
        return
    if kind.startswith("BOOL"):
        if col.startswith("is_"):
            add(words(col[3:].replace("_", " ")), Binding("flag", table, col))
        return
    if kind.startswith(("DATE", "TIMESTAMP")):
        stem = re.sub(r"_(dt|at|date|ts)$", "", col)
        if stem != col:
            add(words(stem.replace("_", " ")), Binding("date", table, col))
        return
    col_phrases = _column_phrases(col, entity, catalog)
    if any(kind.startswith(n) for n in _NUMERIC):
        for phrase in col_phrases:
            add(phrase, Binding("measure", table, col))
            add(phrase, Binding("dimension", table, col))
        return
    for phrase in col_phrases:
        add(phrase, Binding("dimension", table, col))
        for prefix in entity:
            add(prefix + phrase, Binding("dimension", table, col))
            if len(phrase) > 1 and prefix[-1:] == phrase[:1]:  # conversion_tags.tag_type: "conversion tag type"
                add(prefix + phrase[1:], Binding("dimension", table, col))
    for value in values or []:
        binding = Binding("value", table, col, value)
        if len(value) <= 2 and value.isalpha():
            short.setdefault(value, set()).add(binding)
            for phrase in _value_phrases(col, term, value) - {(value.lower(),)}:
                add(phrase, binding)
            continue
        for phrase in _value_phrases(col, term, value):
            add(phrase, binding)


def _joins(tables: dict[str, Table]) -> dict[str, dict[str, tuple[str, str]]]:
    """Join keys from the catalog (mined from the query log), and by name: a table's x_id column and the table
    named for x that has the same column."""
    joins: dict[str, dict[str, tuple[str, str]]] = {}
    for name, table in tables.items():
        for key in table.join_keys:
            left_table, left_col = key.left.lower().rsplit(".", 1)
            right_table, right_col = key.right.lower().rsplit(".", 1)
            if left_table in tables and right_table in tables:
                joins.setdefault(left_table, {})[right_table] = (left_col, right_col)
                joins.setdefault(right_table, {})[left_table] = (right_col, left_col)
        for column in table.columns:
            col = column.name.lower()
            if not col.endswith("_id") or col == key_of(name):
                continue
            for other_name, other in tables.items():
                if other_name != name and singular_table(other_name) == col[:-3] and other.column(col) is not None:
                    joins.setdefault(name, {}).setdefault(other_name, (col, col))
                    joins.setdefault(other_name, {}).setdefault(name, (col, col))
    return joins
