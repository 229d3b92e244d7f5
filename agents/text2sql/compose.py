"""Compose an aggregate query from the catalog's semantic layer, when the question is read whole by it.

A question such as "Cost per click by campaign objective in Q3" names a measure (a catalog metric, or a numeric
column summed), dimensions (columns of the measure's table or of a table it joins), filters (a profiled value, a
flag, an id, a threshold), a period and a time grain, and maybe a ranking ("top 10"). Each word is looked up in
a vocabulary built from the catalog only — table and column names, glossary terms, metric names and synonyms,
profiled values (with the English names of ISO country and language codes) — never from labelled questions.

Fail closed: a content word the vocabulary cannot place, two periods, a table that cannot hold every measure,
a dimension no join reaches, a value that fits two columns equally — each means no composition, with the
reason; the agent then falls back to verified past queries. Only names from the catalog and typed literals
reach the SQL, and the caller validates it (guard + EXPLAIN) like any other.

A question that names no period, over a table partitioned by date, is read over the last full month of data
(said in the answer's reading): the convention chosen on the development half of the labelled questions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from agents.text2sql.literals import Named, Period, read_question, singular
from agents.text2sql.reparam import id_entities
from governance.catalog import Catalog, Table

Kind = Literal["measure", "metric", "entity", "dimension", "value", "flag", "date"]

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
_NUMERIC = ("INT", "DOUBLE", "DECIMAL", "FLOAT", "REAL", "NUMERIC", "HUGEINT", "BIGINT", "SMALLINT", "TINYINT")
_UNITS = {"usd": (), "seconds": (("length",), ("duration",), ("time",)), "count": (), "days": ()}
_TABLE_SUFFIXES = ("daily", "log", "v0", "v1")
# Words that carry no meaning of their own here (their meaning is read elsewhere: periods, counts, ranking).
_FILLER = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "by",
        "per",
        "for",
        "in",
        "on",
        "at",
        "to",
        "with",
        "and",
        "or",
        "from",
        "that",
        "which",
        "what",
        "who",
        "whom",
        "whose",
        "how",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "do",
        "does",
        "did",
        "have",
        "has",
        "had",
        "their",
        "its",
        "there",
        "this",
        "these",
        "those",
        "each",
        "every",
        "all",
        "any",
        "me",
        "us",
        "we",
        "our",
        "my",
        "show",
        "list",
        "give",
        "get",
        "find",
        "tell",
        "total",
        "overall",
        "many",
        "number",
        "count",
        "across",
        "over",
        "within",
        "among",
        "between",
        "than",
        "versus",
        "vs",
        "compared",
        "compare",
        "comparison",
        "against",
        "more",
        "most",
        "less",
        "least",
        "fewer",
        "fewest",
        "top",
        "bottom",
        "highest",
        "lowest",
        "largest",
        "smallest",
        "biggest",
        "best",
        "worst",
        "made",
        "make",
        "use",
        "used",
        "using",
        "got",
        "gain",
        "gained",
        "broken",
        "down",
        "breakdown",
        "split",
        "it",
        "they",
        "them",
        "as",
        "so",
        "far",
        "along",
        "where",
        "when",
        "up",
        "data",
        "often",
    ]
)
_LEMMAS = {"spent": "spend", "spending": "spend", "saved": "save", "clicked": "click", "converted": "conversion",
           "viewed": "view", "signed": "signup", "sign": "signup", "followed": "follow", "gained": "gain",
           "cost": "cost", "imps": "imp"}  # fmt: skip
_RANK_DESC = frozenset({"most", "top", "highest", "largest", "biggest", "best", "more"})
_RANK_ASC = frozenset({"least", "fewest", "lowest", "smallest", "worst", "bottom", "less", "fewer"})
_GRAIN_WORDS = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter", "yearly": "year"}
_GRAIN_UNITS = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}
_GROUP_WORDS = frozenset({"by", "per", "each", "every", "across"})
_COUNT_WORDS = (("how", "many"), ("number", "of"), ("count", "of"))
_COMPARE = frozenset({"versus", "vs", "compared", "than", "or", "against"})
_NEGATION = frozenset({"not", "non", "no", "without"})
_AVERAGE = frozenset({"average", "avg", "mean"})


@dataclass(frozen=True)
class Binding:
    """One reading of a phrase: a measure, metric, entity (a table's rows), dimension, value, flag or date column."""

    kind: Kind
    table: str
    column: str | None = None
    value: str | None = None


@dataclass
class _Token:
    text: str  # as written
    word: str  # lower-case, singular, lemmatised
    start: int
    end: int


@dataclass
class _Mention:
    first: int  # token indexes, inclusive / exclusive
    last: int
    phrase: str
    bindings: list[Binding]


@dataclass
class Composition:
    """The composed SQL (engine dialect) and how the question was read, part by part."""

    sql: str
    table: str
    tables: list[str]
    reading: list[str] = field(default_factory=list)
    default_period: str | None = None  # the period read when the question names none


@dataclass
class Declined:
    reasons: list[str]


# -- the vocabulary -----------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(_word(w) for w in re.findall(r"[a-z0-9]+", text.lower()))


def _word(raw: str) -> str:
    lowered = raw.lower()
    return singular(_LEMMAS.get(lowered, lowered))


def _usable(table: Table) -> bool:
    return (
        not table.deprecated
        and (table.tier is None or table.tier <= 2)
        and bool(_IDENT.match(table.name.split(".")[-1]))
    )


def _entity_phrases(table: Table, catalog: Catalog) -> list[tuple[str, ...]]:
    """What a table's rows are called: its name without suffixes ("conversion event"), that name's head noun
    ("event"), a glossary term naming the table, and the X of a description's "One row per X"."""
    base = [w for w in table.name.split(".")[-1].split("_") if w]
    while base and base[-1] in _TABLE_SUFFIXES:
        base = base[:-1]
    words = tuple(_word(w) for w in base)
    phrases = [words, words[-1:]] if words else []
    for term in catalog.glossary.values():
        if table.name.split(".")[-1] in (s.lower() for s in term.synonyms):
            phrases.append(_words(term.name))
    row = re.match(
        r"one row per ([a-z ]+?)(?:\s+(?:with|and|in|on|of|for)\b|[,.(]|$)", (table.description or "").lower()
    )
    if row:
        named = _words(row.group(1))
        phrases += [named, named[-1:]]
    return list(dict.fromkeys(p for p in phrases if p))


def _column_phrases(name: str, table_entity: tuple[str, ...], catalog: Catalog) -> set[tuple[str, ...]]:
    parts = name.lower().split("_")
    phrases = {_words(" ".join(parts))}
    if parts[-1] in _UNITS and len(parts) > 1:
        stem = _words(" ".join(parts[:-1]))
        phrases.add(stem)
        phrases |= {stem + extra for extra in _UNITS[parts[-1]]}
    for phrase in list(phrases):
        if table_entity and phrase[: len(table_entity)] == table_entity and len(phrase) > len(table_entity):
            phrases.add(phrase[len(table_entity) :])  # products.product_category → "category"
    term = catalog.term_for(name)
    if term is not None:
        for other in [term.name, *term.synonyms]:
            phrases.add(_words(other.replace("_", " ")))
            other_parts = other.lower().split("_")
            if other_parts[-1] in _UNITS and len(other_parts) > 1:
                phrases.add(_words(" ".join(other_parts[:-1])))
    return {p for p in phrases if p}


@lru_cache(maxsize=1)
def _country_and_language_names() -> tuple[dict[str, str], dict[str, str]]:
    from babel import Locale

    english = Locale("en")
    return dict(english.territories), dict(english.languages)


def _value_phrases(column: str, term: str | None, value: str) -> set[tuple[str, ...]]:
    phrases = set()
    if re.search(r"[A-Za-z]", value):
        phrases.add(_words(value.replace("_", " ")))
    territories, languages = _country_and_language_names()
    if (term == "country" or column.endswith("country")) and value.upper() in territories:
        phrases.add(_words(territories[value.upper()]))
    if (column == "language" or column.endswith("_language")) and value.lower() in languages:
        phrases.add(_words(languages[value.lower()]))
    return {p for p in phrases if p}


@dataclass
class Vocabulary:
    phrases: dict[tuple[str, ...], set[Binding]]
    joins: dict[str, dict[str, tuple[str, str]]]  # table → joined table → (its column, the joined table's column)
    tables: dict[str, Table]
    short_values: dict[str, set[Binding]]  # two-letter codes, matched as written ("US", not "us")


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
    for name, table in tables.items():
        entity = _entity_phrases(table, catalog)
        for phrase in entity:
            add(phrase, Binding("entity", name))
        main = entity[0] if entity else ()
        for column in table.columns:
            col = column.name.lower()
            if not _IDENT.match(col):
                continue
            kind = column.type.upper()
            col_phrases = _column_phrases(col, main, catalog)
            if col.endswith("_id"):
                base = col[:-3]
                for words in {base, base.split("_")[-1], base.split("_")[0], base.replace("_", " ")}:
                    if words.split(" ")[0] in entity_words or words in entity_words:
                        add(_words(words), Binding("dimension", name, col))
                continue
            if kind.startswith("BOOL"):
                if col.startswith("is_"):
                    add(_words(col[3:].replace("_", " ")), Binding("flag", name, col))
                continue
            if kind.startswith(("DATE", "TIMESTAMP")):
                stem = re.sub(r"_(dt|at|date|ts)$", "", col)
                if stem != col:
                    add(_words(stem.replace("_", " ")), Binding("date", name, col))
                continue
            if any(kind.startswith(n) for n in _NUMERIC):
                for phrase in col_phrases:
                    add(phrase, Binding("measure", name, col))
                    add(phrase, Binding("dimension", name, col))
                continue
            for phrase in col_phrases:
                add(phrase, Binding("dimension", name, col))
                for prefix in entity:
                    add(prefix + phrase, Binding("dimension", name, col))
                    if len(phrase) > 1 and prefix[-1:] == phrase[:1]:  # conversion_tags.tag_type: "conversion tag type"
                        add(prefix + phrase[1:], Binding("dimension", name, col))
            term = column.glossary_term
            for value in column.values or []:
                binding = Binding("value", name, col, value)
                if len(value) <= 2 and value.isalpha():
                    short.setdefault(value, set()).add(binding)
                    for phrase in _value_phrases(col, term, value) - {(value.lower(),)}:
                        add(phrase, binding)
                    continue
                for phrase in _value_phrases(col, term, value):
                    add(phrase, binding)
        for words, acronym in re.findall(r"((?:[A-Za-z]+\s+){2,6})\(([A-Z]{2,6})\)", table.description or ""):
            spelled = words.split()[-len(acronym) :]
            abbreviated = table.column(acronym.lower())
            if abbreviated is not None and [w[0].upper() for w in spelled] == list(acronym):
                add(_words(" ".join(spelled)), Binding("measure", name, abbreviated.name.lower()))
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
                add(_words(label), Binding("metric", holder.name, metric.name))
    joins: dict[str, dict[str, tuple[str, str]]] = {}
    for name, table in tables.items():
        for key in table.join_keys:
            left_table, left_col = key.left.lower().rsplit(".", 1)
            right_table, right_col = key.right.lower().rsplit(".", 1)
            if left_table in tables and right_table in tables:
                joins.setdefault(left_table, {})[right_table] = (left_col, right_col)
                joins.setdefault(right_table, {})[left_table] = (right_col, left_col)
        # Name-based keys: a table's x_id column and the table named for x that has the same column.
        for column in table.columns:
            col = column.name.lower()
            if not col.endswith("_id") or col == f"{_singular_table(name)}_id":
                continue
            for other_name, other in tables.items():
                if other_name != name and _singular_table(other_name) == col[:-3] and other.column(col) is not None:
                    joins.setdefault(name, {}).setdefault(other_name, (col, col))
                    joins.setdefault(other_name, {}).setdefault(name, (col, col))
    return Vocabulary(phrases=phrases, joins=joins, tables=tables, short_values=short)


def _singular_table(name: str) -> str:
    words = [singular(w) for w in name.rsplit(".", maxsplit=1)[-1].split("_")]
    return "_".join(w[:-1] if w.endswith("s") and not w.endswith("ss") and len(w) > 2 else w for w in words)


def _key_of(table: str) -> str:
    """A table's own key by the naming convention: ads.campaigns → campaign_id."""
    return f"{_singular_table(table)}_id"


# -- reading a question -------------------------------------------------------------------------------------


def _tokens(question: str, consumed: list[tuple[int, int]]) -> list[_Token | None]:
    """The question's words; None where a phrase read elsewhere (a period, an id, a count) was: a break."""
    out: list[_Token | None] = []
    last_end = 0
    for m in re.finditer(r"[A-Za-z0-9]+(?:'s)?", question):
        a, b = m.span()
        if any(a < y and b > x for x, y in consumed):
            if out and out[-1] is not None:
                out.append(None)
            continue
        if out and question[last_end:a].strip(" ") not in ("", "-", "/", "'", "’"):
            out.append(None)  # punctuation breaks a phrase
        raw = m.group(0).removesuffix("'s")
        out.append(_Token(raw, _word(raw), a, b))
        last_end = b
    return out


def _spans(question: str, named: Named) -> list[tuple[int, int]]:
    lowered = question.lower()
    spans: list[tuple[int, int]] = []
    texts = [p.text for p in named.periods] + [i.text for i in named.ids] + [t.text for t in named.thresholds]
    texts += [named.count_text] if named.count_text else []
    for text in texts:
        at = lowered.find(text.lower())
        if at >= 0:
            spans.append((at, at + len(text)))
    return spans


def _mentions(tokens: list[_Token | None], vocab: Vocabulary) -> tuple[list[_Mention], set[int]]:
    """Longest phrases first, left to right; returns the mentions and the token indexes they cover."""
    mentions: list[_Mention] = []
    covered: set[int] = set()
    longest = max((len(p) for p in vocab.phrases), default=1)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token is None:
            i += 1
            continue
        found = None
        for n in range(min(longest, len(tokens) - i), 0, -1):
            window = tokens[i : i + n]
            if any(t is None for t in window):
                continue
            phrase = tuple(t.word for t in window if t is not None)
            bindings = set(vocab.phrases.get(phrase, set()))
            if n == 1 and token.text in vocab.short_values:
                bindings |= vocab.short_values[token.text]
            if bindings and not (n == 1 and phrase[0] in _FILLER and not _specific(bindings)):
                found = _Mention(i, i + n, " ".join(t.text for t in window if t is not None), sorted(bindings, key=str))
                break
        if found is None:
            i += 1
            continue
        mentions.append(found)
        covered |= set(range(found.first, found.last))
        i = found.last
    return mentions, covered


def _known(token: _Token) -> bool:
    raw = token.text.lower()
    return token.word in _FILLER or raw in _FILLER or raw in _NEGATION or raw in _AVERAGE or raw.isdigit()


def _specific(bindings: set[Binding]) -> bool:
    return any(b.kind in ("value", "metric") for b in bindings)


def _plural(tokens: list[_Token | None], m: _Mention) -> bool:
    last = tokens[m.last - 1]
    return last is not None and last.text.lower() != last.word and last.text.lower().endswith("s")


def _before(tokens: list[_Token | None], index: int) -> str | None:
    j = index - 1
    while j >= 0:
        token = tokens[j]
        if token is None:
            return None
        if token.word not in ("the", "a", "an"):
            return token.word
        j -= 1
    return None


# -- composing ------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    table: str
    measures: list[tuple[str, str, str]] = field(default_factory=list)  # (sql, alias, said)
    dimensions: list[tuple[int, Binding]] = field(default_factory=list)  # (position, binding)
    filters: list[tuple[str, Binding]] = field(default_factory=list)  # (sql condition, binding)
    joins: list[str] = field(default_factory=list)
    reading: list[str] = field(default_factory=list)


def compose(question: str, catalog: Catalog, ranked: list[str] | None = None, as_of: date | None = None,
            dialect: str = "duckdb") -> Composition | Declined:  # fmt: skip
    """Compose `question` over the catalog, or decline with the reasons. `ranked`: tables in the order retrieval
    found them (ties between tables that can hold the measures go to the better-ranked one)."""
    vocab = vocabulary(catalog)
    today = as_of or catalog.as_of or date.today()
    named = read_question(question, today, id_entities(catalog))
    if len(named.periods) > 1:
        return Declined(["the question names more than one period"])
    if named.quoted:
        return Declined(["the question quotes text"])
    tokens = _tokens(question, _spans(question, named))
    mentions, covered = _mentions(tokens, vocab)
    words = [t.word if t is not None else None for t in tokens]

    # Signals: grain, counting, ranking, comparison, negation.
    grain: str | None = None
    used: set[int] = set()
    for i, word in enumerate(words):
        if word is None or i in covered:
            continue
        if word in _GRAIN_WORDS:
            grain = _GRAIN_WORDS[word]
            used.add(i)
        elif word in _GRAIN_UNITS and _before(tokens, i) in _GROUP_WORDS:
            grain = _GRAIN_UNITS[word]
            used.add(i)
    for m in mentions:
        first = tokens[m.first]
        if grain is None and first is not None and first.word in _GRAIN_WORDS and any(
                b.kind == "measure" for b in m.bindings):  # fmt: skip
            grain = _GRAIN_WORDS[first.word]
    counting = any(words[i : i + 2] == list(pair) for pair in _COUNT_WORDS for i in range(len(words)))
    rank_desc = any(w in _RANK_DESC for w in words if w) or (named.count is not None and not any(
        w in _RANK_ASC for w in words if w))  # fmt: skip
    rank_asc = any(w in _RANK_ASC for w in words if w) and not any(w in ("most", "top", "highest") for w in words if w)
    comparing = any(w in _COMPARE for w in words if w)
    measured_at = {m.first for m in mentions if any(b.kind == "measure" for b in m.bindings)}
    unknown = []
    for i, token in enumerate(tokens):
        if token is None or i in covered or i in used:
            continue
        if not _known(token) or (token.text.lower() in _AVERAGE and i + 1 not in measured_at):
            unknown.append(token.text)  # an unknown word, or "average" of nothing
    if unknown:
        shown = ", ".join(f"“{w[:40]}”" for w in unknown[:5])
        return Declined([f"the catalog's vocabulary does not place {shown}"])
    if not mentions:
        return Declined(["the question names no measure, table or column the catalog knows"])
    return _resolve(question, named, tokens, mentions, vocab, catalog, ranked or [], grain, counting,
                    rank_desc, rank_asc, comparing, dialect)  # fmt: skip


def _resolve(question: str, named: Named, tokens: list[_Token | None], mentions: list[_Mention], vocab: Vocabulary,
             catalog: Catalog, ranked: list[str], grain: str | None, counting: bool, rank_desc: bool,
             rank_asc: bool, comparing: bool, dialect: str) -> Composition | Declined:  # fmt: skip
    def kinds(m: _Mention) -> set[str]:
        return {b.kind for b in m.bindings}

    def grouped(m: _Mention) -> bool:
        return _before(tokens, m.first) in _GROUP_WORDS

    # Measures: metric phrases, and numeric columns not in a "by …" position.
    def names_its_column(m: _Mention) -> bool:
        following = next((x for x in mentions if x.first == m.last), None)
        columns = {(b.table, b.column) for b in m.bindings if b.kind == "value"}
        return following is not None and any((b.table, b.column) in columns for b in following.bindings)

    measure_mentions = [m for m in mentions if "metric" in kinds(m)
                        or ("measure" in kinds(m) and not grouped(m) and not names_its_column(m))]  # fmt: skip
    if not measure_mentions and (rank_desc or rank_asc):  # "top 3 brands by add to carts": ranked by a measure
        measure_mentions = [m for m in mentions if "measure" in kinds(m) and grouped(m)][:1]
    # Counting, when nothing is measured: the rows of an entity after "how many", "number of", "most" (values
    # between are skipped: "most out-of-stock products"), else of an entity not after "by", else of the table of
    # the first column named ("conversion tag types used by …"). Each reading is tried in that order.
    readings: list[_Target | None] = []
    if not measure_mentions:
        entity_mentions = [m for m in mentions if "entity" in kinds(m)]
        signalled = [m for m in entity_mentions if _signal_before(tokens, mentions, m)]
        free = [m for m in entity_mentions if not grouped(m) and m not in signalled]
        for m in [*signalled, *free]:
            readings.append(_Target(frozenset(b.table for b in m.bindings if b.kind == "entity"), m.phrase, id(m)))
        first_column = next((m for m in mentions if "dimension" in kinds(m) and "entity" not in kinds(m)), None)
        if first_column is not None and not signalled and not free:
            tables = frozenset(b.table for b in first_column.bindings if b.kind == "dimension")
            readings.append(_Target(tables, vocab_phrase(tables, vocab), None))
        if not readings:
            return Declined(["the question names nothing to measure or count"])
    else:
        readings.append(None)

    # The table that holds every measure (or the counted rows), best-ranked first.
    order = {name: i for i, name in enumerate(ranked)}

    def reachable(fact: str) -> dict[str, list[tuple[str, str, str, str]]]:
        """Tables reachable in at most two joins: table → the join steps (from, from_col, to, to_col)."""
        paths: dict[str, list[tuple[str, str, str, str]]] = {fact: []}
        frontier = [fact]
        for _ in range(2):
            nxt = []
            for here in frontier:
                for there, (a, b) in vocab.joins.get(here, {}).items():
                    if there not in paths and b == _key_of(there):  # to one row of `there`: no fan-out
                        paths[there] = [*paths[here], (here, a, there, b)]
                        nxt.append(there)
            frontier = nxt
        return paths

    declined: list[str] = []
    for target in readings:
        attempts: list[tuple[tuple[int, int, int, str], Composition]] = []
        for fact in vocab.tables:
            if target is not None:
                ok = fact in target.tables
            else:
                ok = all(any(b.kind in ("measure", "metric") and b.table == fact for b in m.bindings)
                         for m in measure_mentions)  # fmt: skip
            if not ok:
                continue
            result = _plan_on(fact, reachable(fact), named, tokens, mentions, measure_mentions, target, vocab,
                              catalog, grain, rank_desc, rank_asc, comparing, dialect)  # fmt: skip
            if isinstance(result, Declined):
                declined.extend(result.reasons)
                continue
            table = vocab.tables[fact]
            attempts.append(((len(result.tables), order.get(fact, len(order)), table.tier or 3, fact), result))
        if attempts:
            attempts.sort(key=lambda pair: pair[0])
            return attempts[0][1]
    if not declined:
        said = ", ".join(f"“{m.phrase}”" for m in measure_mentions)
        return Declined([f"no single table holds every measure ({said})"])
    return Declined(list(dict.fromkeys(declined))[:3])


@dataclass(frozen=True)
class _Target:
    """Rows to count: of one of `tables`; `mention` the id of the mention that named them, if one did."""

    tables: frozenset[str]
    phrase: str
    mention: int | None


def vocab_phrase(tables: frozenset[str], vocab: Vocabulary) -> str:
    return sorted(tables)[0].split(".")[-1] if tables else "rows"


def _signal_before(tokens: list[_Token | None], mentions: list[_Mention], m: _Mention) -> bool:
    """ "how many X", "number of X", "most X" — with value or flag mentions between ("most out-of-stock X")."""
    starts = {x.last: x for x in mentions}
    index = m.first
    while index in starts and any(b.kind in ("value", "flag") for b in starts[index].bindings):
        index = starts[index].first
    return _before(tokens, index) in ("many", "of", "most", "fewest")


def _plan_on(fact: str, paths: dict[str, list[tuple[str, str, str, str]]], named: Named,
             tokens: list[_Token | None], mentions: list[_Mention], measure_mentions: list[_Mention],
             count_target: _Target | None, vocab: Vocabulary, catalog: Catalog, grain: str | None,
             rank_desc: bool, rank_asc: bool, comparing: bool, dialect: str) -> Composition | Declined:  # fmt: skip
    table = vocab.tables[fact]
    aliases: dict[str, str] = {fact: "f"}
    joins: list[str] = []
    reading: list[str] = [f"table {fact}"]

    def alias_for(target: str) -> str | None:
        if target in aliases:
            return aliases[target]
        if target not in paths:
            return None
        for here, a, there, b in paths[target]:
            if there not in aliases:
                aliases[there] = f"j{len(aliases)}"
                joins.append(f"JOIN {there} AS {aliases[there]} ON {aliases[there]}.{b} = {aliases[here]}.{a}")
        return aliases[target]

    def pick(bindings: list[Binding], kinds: tuple[str, ...]) -> Binding | None:
        """The binding on the fact table, else the one on the nearest joined table; None when none or a tie."""
        options = [b for b in bindings if b.kind in kinds and b.table in paths]
        if not options:
            return None
        best = min(len(paths[b.table]) for b in options)
        nearest = [b for b in options if len(paths[b.table]) == best]
        columns = {(b.table, b.column) for b in nearest}
        return nearest[0] if len(columns) == 1 else None

    measures: list[tuple[str, str]] = []  # (sql, alias)
    if count_target is not None:
        noun = re.sub(r"[^a-z0-9_]", "", count_target.phrase.lower().replace(" ", "_"))
        measures.append(("count(*)", noun if _IDENT.match(noun) else "rows"))
        reading.append(f"counting rows of {fact} (“{count_target.phrase}”)")
    consumed: set[int] = {count_target.mention} if count_target is not None and count_target.mention else set()
    for m in measure_mentions:
        metric = next((b for b in m.bindings if b.kind == "metric" and b.table == fact), None)
        if metric is not None and metric.column is not None:
            definition = catalog.metrics[metric.column]
            tree = sqlglot.parse_one(definition.sql, read="duckdb")
            for node in tree.find_all(exp.Column):
                node.set("table", exp.to_identifier("f"))
            measures.append((tree.sql(dialect=dialect), metric.column))
            reading.append(f"metric {metric.column} = {definition.sql} (“{m.phrase}”)")
            consumed.add(id(m))
            continue
        measure = next((b for b in m.bindings if b.kind == "measure" and b.table == fact), None)
        if measure is None or measure.column is None:
            return Declined([f"{fact} has no column for “{m.phrase}”"])
        before = _before(tokens, m.first)
        function = "avg" if before in _AVERAGE else "sum"
        measures.append((f"{function}(f.{measure.column})", measure.column))
        reading.append(f"{function} of {fact}.{measure.column} (“{m.phrase}”)")
        consumed.add(id(m))

    def grouped(m: _Mention) -> bool:
        return _before(tokens, m.first) in _GROUP_WORDS

    def _add_dimension(m: _Mention, chosen: Binding) -> None:
        assert chosen.column is not None
        alias = alias_for(chosen.table)
        assert alias is not None
        context_tables.add(chosen.table)
        name = chosen.column
        if any(d[1] == f"{alias}.{name}" for d in dimensions):
            return
        if any(d[2] == name for d in dimensions):
            name = f"{chosen.table.split('.')[-1]}_{name}"
        dimensions.append((m.first, f"{alias}.{chosen.column}", name))
        reading.append(f"by {chosen.table}.{chosen.column} (“{m.phrase}”)")

    dimensions: list[tuple[int, str, str]] = []  # (position, sql, alias)
    context_tables: set[str] = set()
    # Values and flags: filters, or a breakdown when the question compares several values of one column.
    by_column: dict[tuple[str, str], list[tuple[_Mention, Binding]]] = {}
    for m in mentions:
        if id(m) in consumed or not any(b.kind in ("value", "flag") for b in m.bindings):
            continue
        if any(b.kind == "date" and b.table == fact for b in m.bindings):
            continue  # "signed up" is users.signup_dt here, not a SIGNUP event elsewhere
        if not any(b.kind == "value" for b in m.bindings) and any(
            b.kind in ("dimension", "entity") for b in m.bindings
        ):
            continue
        chosen = pick(m.bindings, ("value", "flag"))
        if chosen is None:
            if any(b.kind in ("dimension", "entity", "measure") for b in m.bindings):
                continue  # read below as another kind
            return Declined([f"“{m.phrase}” fits no single column of {fact} or a table it joins"])
        assert chosen.column is not None
        by_column.setdefault((chosen.table, chosen.column), []).append((m, chosen))
        consumed.add(id(m))
    filters: list[str] = []
    for (target, column), found in by_column.items():
        alias = alias_for(target)
        assert alias is not None
        flag = found[0][1].kind == "flag"
        negated = any(_before(tokens, m.first) in _NEGATION for m, _ in found)
        values = sorted({b.value for _, b in found if b.value is not None})
        if len(values) > 1 or (flag and comparing):
            dimensions.append((found[0][0].first, f"{alias}.{column}", column))
            reading.append(f"compared by {target}.{column}")
            continue
        if flag:
            filters.append(f"{'NOT ' if negated else ''}{alias}.{column}")
            reading.append(f"only rows where {target}.{column} is {'false' if negated else 'true'}")
        else:
            literal = exp.Literal.string(values[0]).sql(dialect=dialect)
            filters.append(f"{alias}.{column} {'<>' if negated else '='} {literal}")
            reading.append(f"{target}.{column} {'≠' if negated else '='} {values[0]!r}")
    filter_tables = {target for target, _ in by_column}
    filter_columns = {column for _, column in by_column}
    context_tables |= filter_tables | {fact}

    # Dimensions: columns named (after "by", "per", "each" or not), then entities: an entity is a breakdown by
    # its id, unless it is only context — the table of a filter or a column already read ("advertisers in the
    # retail industry", "ads by creative type").
    later: list[_Mention] = []
    for m in mentions:
        if id(m) in consumed:
            continue
        bindings = [b for b in m.bindings if b.kind in ("dimension", "entity", "date")]
        if not bindings:
            return Declined([f"“{m.phrase}” is not something to group or filter by here"])
        dims = [b for b in bindings if b.kind == "dimension"]
        if all(b.kind == "date" for b in bindings):
            if not any(b.table == fact for b in bindings):
                return Declined([f"“{m.phrase}” names a date column of another table than {fact}"])
            continue  # the date column a period or grain applies to: read below
        if any(b.kind == "entity" for b in bindings) and (not grouped(m) or _plural(tokens, m)):
            later.append(m)  # "used by advertisers in …" is context; "by advertiser" a breakdown
            continue
        if not dims:
            later.append(m)
            continue
        if all(b.column in filter_columns for b in dims):
            continue  # the filtered column's own name ("in the retail industry")
        chosen = pick(dims, ("dimension",))
        if chosen is None:
            later.append(m)
            continue
        _add_dimension(m, chosen)
    measured = {x.first for x in measure_mentions}
    for m in later:
        entity_tables = {b.table for b in m.bindings if b.kind == "entity"}
        if m.last in measured and entity_tables & set(paths):
            continue  # "ad cost": the entity qualifies the measure (and its table reaches the measure's)
        if entity_tables & context_tables and not (grouped(m) and not _plural(tokens, m)):
            continue
        dims = [b for b in m.bindings if b.kind == "dimension"]
        chosen = pick(dims, ("dimension",))
        if chosen is None:
            return Declined([f"“{m.phrase}” is not a single column of {fact} or of a table it joins"])
        _add_dimension(m, chosen)

    # Ids ("advertiser 42") and thresholds ("more than 10000 followers").
    for mention in named.ids:
        targets = [b for phrase, bs in vocab.phrases.items() if phrase == (mention.entity,) for b in bs
                   if b.kind == "dimension" and b.table in paths and b.column and b.column.endswith("_id")]  # fmt: skip
        chosen = next((b for b in sorted(targets, key=lambda b: len(paths[b.table]))), None)
        if chosen is None or chosen.column is None:
            return Declined([f"“{mention.text}” names no id column of {fact} or a table it joins"])
        alias = alias_for(chosen.table)
        filters.append(f"{alias}.{chosen.column} = {int(mention.value)}")
        reading.append(f"{chosen.table}.{chosen.column} = {mention.value}")
    for threshold in named.thresholds:
        targets = [b for phrase, bs in vocab.phrases.items() if phrase and phrase[0] == _word(threshold.noun)
                   for b in bs if b.kind == "measure" and b.table in paths]  # fmt: skip
        columns = {(b.table, b.column) for b in targets}
        if len(columns) != 1:
            return Declined([f"“{threshold.text}” fits {'no' if not columns else 'more than one'} numeric column"])
        chosen = targets[0]
        alias = alias_for(chosen.table)
        filters.append(f"{alias}.{chosen.column} {threshold.op} {threshold.value}")
        reading.append(f"{chosen.table}.{chosen.column} {threshold.op} {threshold.value}")

    # The date column: one the question names ("signed up", "created"), else the table's partition column.
    date_column: str | None = None
    date_type = ""
    named_dates = [b for m in mentions for b in m.bindings if b.kind == "date" and b.table == fact]
    if len({b.column for b in named_dates}) == 1:
        date_column = named_dates[0].column
    elif table.partition_column:
        date_column = table.partition_column
    if date_column is not None:
        meta = table.column(date_column)
        date_type = (meta.type if meta else "").upper()
    default_period = False
    period: Period | None = named.periods[0] if named.periods else None
    if period is None and table.partition_column and date_column == table.partition_column:
        period = _last_full_month(named.as_of)
        default_period = True
    if period is not None:
        if date_column is None:
            return Declined([f"the question names a period but {fact} has no date column"])
        filters.append(_period_sql(f"f.{date_column}", date_type, period))
        said = (f"no period named: the last full month of data, {period.span()}" if default_period
                else f"“{period.text}”: {period.span()}")  # fmt: skip
        reading.append(f"{fact}.{date_column}: {said}")
    grain_sql: list[tuple[str, str]] = []
    if grain is not None:
        if date_column is None:
            return Declined([f"the question asks for a {grain}ly breakdown but {fact} has no date column"])
        if grain == "day" and date_type.startswith("DATE"):
            grain_sql.append((f"f.{date_column}", date_column))
        else:
            grain_sql.append((f"date_trunc('{grain}', f.{date_column})", grain))
        reading.append(f"per {grain} of {fact}.{date_column}")

    if (rank_desc or rank_asc) and not grain_sql and not dimensions:
        key = table.column(_key_of(fact))  # "boards with the most followers": ranked per board
        if key is None:
            return Declined([f"the question asks for a ranking but names nothing of {fact} to rank"])
        dimensions.append((0, f"f.{key.name}", key.name))
        reading.append(f"per row of {fact} ({key.name})")
    select_items = [*grain_sql, *[(sql, alias) for _, sql, alias in sorted(dimensions)], *measures]
    names = [alias for _, alias in select_items]
    if len(set(names)) != len(names):
        return Declined(["two output columns would have the same name"])
    group = [str(i + 1) for i in range(len(grain_sql) + len(dimensions))]
    sql = "SELECT " + ", ".join(f"{sql} AS {alias}" for sql, alias in select_items)
    sql += f" FROM {fact} AS f"
    if joins:
        sql += " " + " ".join(joins)
    if filters:
        sql += " WHERE " + " AND ".join(filters)
    if group:
        sql += " GROUP BY " + ", ".join(group)
    if (rank_desc or rank_asc) and group:
        measure_position = len(group) + 1
        direction = "ASC" if rank_asc else "DESC"
        limit = named.count or 10
        sql += f" ORDER BY {measure_position} {direction} LIMIT {limit}"
        reading.append(f"the {limit} {'lowest' if rank_asc else 'highest'} by {measures[0][1]}")
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (ParseError, TokenError) as exc:  # names come from the catalog; a failure here is a catalog oddity
        return Declined([f"the composed query did not parse ({str(exc).splitlines()[0][:120]})"])
    tables = sorted({fact, *[t for t in aliases if t != fact]})
    return Composition(sql=tree.sql(dialect=dialect, pretty=True), table=fact, tables=tables, reading=reading,
                       default_period=f"the last full month of data, {period.span()}" if default_period and period
                       else None)  # fmt: skip


def _last_full_month(today: date) -> Period:
    end = today if (today + timedelta(days=1)).day == 1 else today.replace(day=1) - timedelta(days=1)
    start = end.replace(day=1)
    return Period(start, end, "the last full month", f"{start:%B %Y}")


def _period_sql(column: str, column_type: str, period: Period) -> str:
    if column_type.startswith("TIMESTAMP"):
        low = f"{column} >= TIMESTAMP '{period.start} 00:00:00'" if period.start is not None else None
        high = None if period.to_date else f"{column} < TIMESTAMP '{period.end + timedelta(days=1)} 00:00:00'"
    else:
        if period.start is not None and not period.to_date:
            return f"{column} BETWEEN DATE '{period.start}' AND DATE '{period.end}'"
        low = f"{column} >= DATE '{period.start}'" if period.start is not None else None
        high = None if period.to_date else f"{column} <= DATE '{period.end}'"
    return " AND ".join(part for part in (low, high) if part) or "TRUE"
