"""Compose an aggregate query from the catalog's semantic layer, when the question is read whole by it.

A question such as "Cost per click by campaign objective in Q3" names a measure (a catalog metric, or a numeric
column summed), dimensions (columns of the measure's table or of a table it joins), filters (a profiled value, a
flag, an id, a threshold), a period and a time grain, and maybe a ranking ("top 10"). Each word is looked up in
the catalog's vocabulary (`agents.text2sql.vocabulary`), never in labelled questions.

Fail closed: a word the vocabulary cannot place (a number no reader used, a word outside ASCII), two periods,
quoted text, a negation that negates no value or flag, a measure no single table holds, a column no join
reaches, a value that fits two columns, a ratio of two measures ("spend per click": name the metric), an
attribute summed over rows ("price by brand": say average or total), a threshold on summed amounts — each means
no composition, with the reason; the agent then falls back to verified past queries. Only names from the catalog
and typed literals reach the SQL, and the caller validates it (guard + EXPLAIN) like any other.

A question that names no period, over a table partitioned by date, is read over the last full month of data
(said in the answer's reading): the convention chosen on the development half of the labelled questions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from agents.text2sql.literals import NEGATIONS, Named, Period, read_question
from agents.text2sql.vocabulary import IDENT, Binding, Vocabulary, key_of, vocabulary, word
from governance.catalog import Additivity, Catalog

# Words that carry no meaning of their own here (their meaning is read elsewhere: periods, counts, ranking).
_FILLER = frozenset({
    "a", "an", "the", "of", "by", "per", "for", "in", "on", "at", "to", "with", "and", "or", "from", "that",
    "which", "what", "who", "whom", "whose", "how", "is", "are", "was", "were", "be", "been", "do", "does", "did",
    "have", "has", "had", "their", "its", "there", "this", "these", "those", "each", "every", "all", "any", "me",
    "show", "list", "give", "get", "find", "tell", "total", "overall", "many", "number", "count", "across", "over",
    "within", "among", "between", "than", "versus", "vs", "compared", "compare", "comparison", "against",
    "most", "least", "fewest", "top", "bottom", "highest", "lowest", "largest", "smallest",
    "biggest", "made", "make", "use", "used", "using", "got", "gain", "gained", "broken", "down",
    "breakdown", "split", "it", "they", "them", "as", "so", "far", "along", "where", "when", "up", "data", "often",
})  # fmt: skip
# Ranking words ("best", "worst" have no direction for a metric like CPC: they are not read, so declined).
_RANK_DESC = frozenset({"most", "top", "highest", "largest", "biggest"})
_RANK_ASC = frozenset({"least", "fewest", "lowest", "smallest", "bottom"})
_RANK = _RANK_DESC | _RANK_ASC
_GRAIN_WORDS = {"daily": "day", "weekly": "week", "monthly": "month", "quarterly": "quarter", "yearly": "year"}
_GRAIN_UNITS = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year"}
_GRAIN_ADJECTIVE = {v: k for k, v in _GRAIN_WORDS.items()}
_GROUP_WORDS = frozenset({"by", "per", "each", "every", "across"})
_COMPARE = frozenset({"versus", "vs", "compared", "than", "or", "against"})
_ABSENCE = frozenset({"no", "without"})  # negations that can also say "has none"
_BETWEEN_NEGATION = frozenset({"in", "on", "from", "for", "at", "the", "a", "an", "of", "to", "with", "by"})
_AVERAGE = frozenset({"average", "avg", "mean"})
_TOTAL = frozenset({"total", "sum", "combined"})
_CLIP = 40
_INT64 = 2**63 - 1


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
    # The question asks for a number that means nothing (a sum of what does not add up): answered with the reason,
    # not with the closest past query (which reads something else). Otherwise the composer could not read it.
    final: bool = False
    numbers: list[str] = field(default_factory=list)  # for a final reason: the columns of the numbers declined


def _said(text: str) -> str:
    """A piece of the question, quoted in a reason or a reading: at most 40 characters of it."""
    text = " ".join(text.split())
    return f"“{text[:_CLIP]}…”" if len(text) > _CLIP else f"“{text}”"


# -- reading a question -------------------------------------------------------------------------------------


@dataclass
class _Token:
    text: str  # as written
    word: str  # lower-case, singular, lemmatised


@dataclass
class _Mention:
    first: int  # token indexes, inclusive / exclusive
    last: int
    phrase: str
    bindings: list[Binding]

    def kinds(self) -> set[str]:
        return {b.kind for b in self.bindings}


@dataclass
class _Question:
    named: Named
    tokens: list[_Token | None]
    mentions: list[_Mention]
    grain: str | None
    rank: str | None  # "DESC", "ASC" or None
    negations: set[int]  # token indexes of "not", "without", …

    def before(self, index: int) -> str | None:
        """The word before token `index` (articles skipped), None at a break."""
        j = index - 1
        while j >= 0:
            token = self.tokens[j]
            if token is None:
                return None
            if token.word not in ("the", "a", "an"):
                return token.word
            j -= 1
        return None

    def grouped(self, m: _Mention) -> bool:
        return self.before(m.first) in _GROUP_WORDS

    def plural(self, m: _Mention) -> bool:
        last = self.tokens[m.last - 1]
        return last is not None and last.text.lower() != last.word and last.text.lower().endswith("s")

    def negation_of(self, m: _Mention) -> int | None:
        """The negation that applies to a mention: "not in Germany", "non-business", "without video"."""
        j = m.first - 1
        while j >= 0 and m.first - j <= 3:
            token = self.tokens[j]
            if token is None:
                return None
            if j in self.negations:
                return j
            if token.text.lower() not in _BETWEEN_NEGATION:
                return None
            j -= 1
        return None

    def adjective(self, m: _Mention) -> bool:
        """A value written before a noun of rows ("keyword ad groups", "video pins"): the value, not the rows."""
        if ("value" not in m.kinds() and "flag" not in m.kinds()) or self.plural(m):
            return False
        following = next((x for x in self.mentions if x.first == m.last), None)
        return following is not None and "entity" in following.kinds()

    def counts(self, m: _Mention) -> bool:
        """ "how many X", "number of X", "count of X"."""
        words = [t.word if t is not None else None for t in self.tokens[max(0, m.first - 3) : m.first]]
        words = [w for w in words if w not in ("the", "a", "an")]
        return words[-1:] == ["many"] or words[-2:] in (["number", "of"], ["count", "of"])

    def compared(self, m: _Mention) -> bool:
        """A comparison word next to the mention (within three words): "video versus static", "business or not"."""
        near = [t for t in self.tokens[max(0, m.first - 3) : m.last + 3] if t is not None]
        return any(t.word in _COMPARE for t in near)

    def signalled(self, m: _Mention) -> bool:
        """ "how many X", "number of X", "most X" — value or flag mentions may stand between ("most out-of-stock X")."""
        ends = {x.last: x for x in self.mentions}
        index = m.first
        while index in ends and ends[index].kinds() & {"value", "flag"}:
            index = ends[index].first
        return self.before(index) in ("many", "of", "most", "fewest")


def _tokens(question: str, consumed: list[tuple[int, int]]) -> list[_Token | None]:
    """The question's words (any script: a word the vocabulary lacks is unknown, not invisible); None where a
    phrase read elsewhere (a period, an id, a count) was, or at punctuation: a phrase does not span a break."""
    out: list[_Token | None] = []
    last_end = 0
    for m in re.finditer(r"[^\W_]+(?:['’]s)?", question):
        a, b = m.span()
        if any(a < y and b > x for x, y in consumed):
            if out and out[-1] is not None:
                out.append(None)
            continue
        if out and question[last_end:a].strip(" ") not in ("", "-", "/", "'", "’"):
            out.append(None)
        raw = re.sub(r"['’]s$", "", m.group(0))
        out.append(_Token(raw, word(raw)))
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
    """Longest phrases first, left to right; the mentions and the token indexes they cover."""
    mentions: list[_Mention] = []
    covered: set[int] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token is None:
            i += 1
            continue
        found = None
        for n in range(min(vocab.longest, len(tokens) - i), 0, -1):
            window = tokens[i : i + n]
            if any(t is None for t in window):
                continue
            phrase = tuple(t.word for t in window if t is not None)
            bindings = set(vocab.phrases.get(phrase, set()))
            if n == 1 and token.text in vocab.short_values:
                bindings |= vocab.short_values[token.text]
            filler = n == 1 and phrase[0] in _FILLER and not any(b.kind in ("value", "metric") for b in bindings)
            if bindings and not filler:
                text = " ".join(t.text for t in window if t is not None)
                found = _Mention(i, i + n, text, sorted(bindings, key=str))
                break
        if found is None:
            i += 1
            continue
        mentions.append(found)
        covered |= set(range(found.first, found.last))
        i = found.last
    return mentions, covered


def _read(question: str, catalog: Catalog, vocab: Vocabulary, today: date) -> _Question | Declined:
    try:
        named = read_question(question, today, vocab.entity_words)
    except (ValueError, OverflowError):  # a year 0, a date past 9999
        return Declined(["the question names a date out of range"])
    if len(named.periods) > 1:
        return Declined(["the question names more than one period"])
    if named.quoted:
        return Declined(["the question quotes text"])
    if named.count is not None and named.count < 1:
        return Declined([f"the question asks for {_said(named.count_text or '')}: at least one row is needed"])
    if any(not 0 <= i.value <= _INT64 for i in named.ids):
        return Declined(["an id in the question is out of range"])
    if any(not math.isfinite(t.value) or abs(t.value) > _INT64 for t in named.thresholds):
        return Declined(["a number in the question is out of range"])
    if any(p.end >= date.max - timedelta(days=1) for p in named.periods):
        return Declined(["the question names a date out of range"])
    if any((p.start is not None and p.start > p.end) or (p.start or p.end) > today for p in named.periods):
        return Declined([f"the period {_said(named.periods[0].text)} is empty or after the data's last day"])
    tokens = _tokens(question, _spans(question, named))
    mentions, covered = _mentions(tokens, vocab)
    words = [t.word if t is not None else None for t in tokens]
    grains: set[str] = set()
    used: set[int] = set()
    for i, w in enumerate(words):
        if w is None or i in covered:
            continue
        if w in _GRAIN_WORDS:
            grains.add(_GRAIN_WORDS[w])
            used.add(i)
        elif w in _GRAIN_UNITS and i > 0 and words[i - 1] in _GROUP_WORDS:
            grains.add(_GRAIN_UNITS[w])
            used.add(i)
    if len(grains) > 1:
        return Declined([f"the question asks for two time breakdowns ({', '.join(sorted(grains))})"])
    grain = next(iter(grains), None)
    for m in mentions:  # "daily active users": a measure that says its grain
        first = tokens[m.first]
        if grain is None and first is not None and first.word in _GRAIN_WORDS and "measure" in m.kinds():
            grain = _GRAIN_WORDS[first.word]
    present = {w for w in words if w}
    ranking = [t.text for t in tokens if t is not None and t.word in _RANK]
    if len(ranking) > 1:  # "the most advertisers on the top tier", "highest and lowest": which ranks what?
        return Declined([f"the question ranks more than once ({', '.join(_said(w) for w in ranking[:3])})"])
    rank: str | None = None
    if present & _RANK_ASC and not present & {"most", "top", "highest"}:
        rank = "ASC"
    elif present & _RANK_DESC or named.count is not None:
        rank = "DESC"
    negations = {i for i, t in enumerate(tokens) if t is not None and t.text.lower() in NEGATIONS}
    measured_at = {m.first for m in mentions if "measure" in m.kinds()}
    unknown = []
    for i, token in enumerate(tokens):
        if token is None or i in covered or i in used or i in negations:
            continue
        raw = token.text.lower()
        if raw in _AVERAGE:
            if i + 1 not in measured_at:
                unknown.append(token.text)  # "average" of nothing
        elif not raw.isascii() or (token.word not in _FILLER and raw not in _FILLER):
            unknown.append(token.text)  # an unknown word, a number no reader used
    if unknown:
        return Declined([f"the catalog's vocabulary does not place {', '.join(_said(w) for w in unknown[:5])}"])
    if not mentions:
        return Declined(["the question names no measure, table or column the catalog knows"])
    return _Question(named, tokens, mentions, grain, rank, negations)


# -- composing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """Rows to count: of one of `tables`; `mention` the index of the mention that named them, if one did."""

    tables: frozenset[str]
    phrase: str
    mention: int | None


def compose(question: str, catalog: Catalog, ranked: list[str] | None = None, as_of: date | None = None,
            dialect: str = "duckdb") -> Composition | Declined:  # fmt: skip
    """Compose `question` over the catalog, or decline with the reasons. `ranked`: tables in the order retrieval
    found them (ties between tables that can hold the measures go to the better-ranked one)."""
    vocab = vocabulary(catalog)
    read = _read(question, catalog, vocab, as_of or catalog.as_of or date.today())
    if isinstance(read, Declined):
        return read
    measures = _measures(read)
    if isinstance(measures, Declined):
        return measures
    readings = _readings(read, measures)
    if isinstance(readings, Declined):
        return readings
    return _best(read, vocab, catalog, measures, readings, ranked or [], dialect)


def _measures(q: _Question) -> list[_Mention] | Declined:
    """Metric phrases, and numeric columns not after "by" (nor a value naming its column, nor the rows counted
    after "how many"); with a ranking and nothing else, the measure after "by" ("top 3 brands by add to carts")."""
    measures = [m for m in q.mentions if "metric" in m.kinds() or (
        "measure" in m.kinds() and not q.grouped(m) and not _names_its_column(q, m)
        and not ("entity" in m.kinds() and q.signalled(m)))]  # fmt: skip
    if not measures and q.rank:
        measures = [m for m in q.mentions if "measure" in m.kinds() and q.grouped(m)][:1]
    for m in q.mentions:
        if "measure" in m.kinds() and q.before(m.first) == "per" and any(x.last == m.first - 1 for x in measures):
            return Declined([f"a ratio of two measures ({_said(m.phrase)} per …): name the catalog's metric"])
    if q.grain and q.before(next((m.first for m in measures), 0)) in _AVERAGE and any(
            t is not None and t.word == "per" for t in q.tokens):  # fmt: skip
        return Declined(["an average per day (or week) needs the totals of each first: not composed"])
    return measures


def _readings(q: _Question, measures: list[_Mention]) -> list[_Target | None] | Declined:
    """With measures, one reading (None). Without, the rows to count, in order of preference: of an entity after
    "how many", "number of" (then only those), "most"; else of an entity not after "by"; else of the table of
    the first column named ("conversion tag types used by …")."""
    if measures:
        return [None]
    entities = [(i, m) for i, m in enumerate(q.mentions) if "entity" in m.kinds() and not q.adjective(m)]
    signalled = [(i, m) for i, m in entities if q.signalled(m)]
    if any(q.counts(m) for _, m in signalled):
        signalled = [(i, m) for i, m in signalled if q.counts(m)]
        entities = signalled
    free = [(i, m) for i, m in entities if not q.grouped(m) and (i, m) not in signalled]
    readings: list[_Target | None] = [_Target(frozenset(b.table for b in m.bindings if b.kind == "entity"),
                                              m.phrase, i) for i, m in [*signalled, *free]]  # fmt: skip
    column = next((m for m in q.mentions if "dimension" in m.kinds() and "entity" not in m.kinds()), None)
    if column is not None and not readings:
        tables = frozenset(b.table for b in column.bindings if b.kind == "dimension")
        readings.append(_Target(tables, sorted(tables)[0].split(".")[-1], None))
    return readings or Declined(["the question names nothing to measure or count"])


def _best(q: _Question, vocab: Vocabulary, catalog: Catalog, measures: list[_Mention],
          readings: list[_Target | None], ranked: list[str], dialect: str) -> Composition | Declined:  # fmt: skip
    """The first reading that composes on some table: the one with the fewest joins, then ranked first by
    retrieval; two tables that read the same and that retrieval does not rank apart are declined."""
    counted = [m for m in q.mentions if "entity" in m.kinds() and q.counts(m) and m not in measures]
    order = {name: i for i, name in enumerate(ranked)}
    declined: list[str] = []
    final: list[str] = []  # reasons the question means nothing composable, first
    numbers: list[str] = []
    for target in readings:
        attempts: list[tuple[tuple[int, int, int, str], Composition]] = []
        for fact in vocab.tables:
            if target is not None and fact not in target.tables:
                continue
            if target is not None and vocab.aggregated(fact):
                declined.append(f"the rows of {fact} are totals (per day, …): counting them is not composed")
                continue
            if target is None and not all(any(b.kind in ("measure", "metric") and b.table == fact
                                              for b in m.bindings) for m in measures):  # fmt: skip
                continue
            rows = target
            if target is None and counted:  # "number of conversions and conversion value": rows of the fact
                if not all(fact in {b.table for b in m.bindings if b.kind == "entity"} for m in counted):
                    said = _said(counted[0].phrase)
                    declined.append(f"counting {said} that have a measure needs a distinct count: not composed")
                    continue
                rows = _Target(frozenset({fact}), counted[0].phrase, q.mentions.index(counted[0]))
            result = _Plan(fact, q, vocab, catalog, measures, rows, dialect).build()
            if isinstance(result, Declined):
                (final if result.final else declined).extend(result.reasons)
                numbers.extend(result.numbers)
                continue
            attempts.append(((len(result.tables), order.get(fact, len(order)), vocab.tables[fact].tier or 3, fact),
                             result))  # fmt: skip
        if attempts:
            attempts.sort(key=lambda pair: pair[0])
            first, best = attempts[0]
            tied = [c for k, c in attempts[1:] if k[:2] == first[:2]]  # as few joins, and not ranked apart
            if tied:
                return Declined([f"the question reads the same on {best.table} and {tied[0].table}; name the one "
                                 "you mean"])  # fmt: skip
            return best
    if not declined and not final:
        said = ", ".join(_said(m.phrase) for m in measures[:3])
        return Declined([f"no single table holds every measure ({said})"])
    return Declined(list(dict.fromkeys(final + declined))[:3], final=bool(final), numbers=sorted(set(numbers)))


def _names_its_column(q: _Question, m: _Mention) -> bool:
    """A value followed by its column's name ("the search surface") is that value, not a measure "searches"."""
    following = next((x for x in q.mentions if x.first == m.last), None)
    columns = {(b.table, b.column) for b in m.bindings if b.kind == "value"}
    return following is not None and any((b.table, b.column) in columns for b in following.bindings)


class _Plan:
    """The query over one fact table: measures, filters, breakdowns, ids, thresholds, period, grain, ranking."""

    def __init__(self, fact: str, q: _Question, vocab: Vocabulary, catalog: Catalog, measures: list[_Mention],
                 target: _Target | None, dialect: str) -> None:  # fmt: skip
        self.fact, self.q, self.vocab, self.catalog, self.dialect = fact, q, vocab, catalog, dialect
        self.table = vocab.tables[fact]
        self.paths = vocab.reachable(fact)
        self.measure_mentions, self.target = measures, target
        self.aliases: dict[str, str] = {fact: "f"}
        self.joins: list[str] = []
        self.reading: list[str] = [f"table {fact}"]
        self.measures: list[tuple[str, str]] = []  # (sql, alias)
        self.summed_attributes: list[str] = []
        self.non_additive: list[tuple[str, str]] = []  # (phrase, column) summed that does not add up: a score
        self.semi_additive: list[tuple[str, str]] = []  # (phrase, column) summed that adds up but not over time
        self.absent: list[tuple[str, str]] = []  # (table, phrase): "no …", "without …" on that table's rows
        self.entity_dimensions: list[set[str]] = []  # the tables of entities read as a breakdown by their id
        self.dimensions: list[tuple[int, str, str]] = []  # (position, sql, alias)
        self.filters: list[str] = []
        self.filtered: set[str] = set()  # columns filtered on
        self.value_filters: set[str] = set()  # columns filtered on one value or flag
        self.context: set[str] = {fact}
        self.negations_used: set[int] = set()
        self.consumed: set[int] = set()  # indexes of mentions read

    def alias_for(self, target: str) -> str:
        if target not in self.aliases:
            for here, a, there, b in self.paths[target]:
                if there not in self.aliases:
                    self.aliases[there] = f"j{len(self.aliases)}"
                    self.joins.append(f"JOIN {there} AS {self.aliases[there]} "
                                      f"ON {self.aliases[there]}.{b} = {self.aliases[here]}.{a}")  # fmt: skip
        return self.aliases[target]

    def pick(self, bindings: list[Binding], kinds: tuple[str, ...]) -> Binding | None:
        """The binding on the fact table, else on the nearest joined table; None when none, or a tie."""
        options = [b for b in bindings if b.kind in kinds and b.table in self.paths]
        if not options:
            return None
        best = min(len(self.paths[b.table]) for b in options)
        nearest = [b for b in options if len(self.paths[b.table]) == best]
        return nearest[0] if len({(b.table, b.column) for b in nearest}) == 1 else None

    def build(self) -> Composition | Declined:
        for step in (self._measures, self._values, self._dimensions, self._ids, self._thresholds):
            declined = step()
            if declined is not None:
                return declined
        if len(self.value_filters) > 1 and any(t is not None and t.word == "or" for t in self.q.tokens):
            return Declined(["“or” between values of two columns: not composed (the filters would be AND-ed)"])
        unused = self.q.negations - self.negations_used
        if unused:
            token = self.q.tokens[min(unused)]
            said = _said(token.text if token else "not")
            return Declined([f"{said} negates something other than a value or a flag: not composed"])
        return self._assemble()

    def _measures(self) -> Declined | None:
        if self.target is not None:
            noun = re.sub(r"[^a-z0-9_]", "", self.target.phrase.lower().replace(" ", "_"))[:_CLIP]
            self.measures.append(("count(*)", noun if IDENT.match(noun) else "rows"))
            self.reading.append(f"counting rows of {self.fact} ({_said(self.target.phrase)})")
            if self.target.mention is not None:
                self.consumed.add(self.target.mention)
        for m in self.measure_mentions:
            self.consumed.add(self.q.mentions.index(m))
            metric = next((b for b in m.bindings if b.kind == "metric" and b.table == self.fact), None)
            if metric is not None and metric.column is not None:
                definition = self.catalog.metrics[metric.column]
                tree = sqlglot.parse_one(definition.sql, read="duckdb")
                for total in tree.find_all(exp.Sum):  # a metric's sums: of numbers that add up?
                    for column in total.find_all(exp.Column):
                        self._summed(m.phrase, column.name, self.vocab.additivity(self.fact, column.name))
                for node in tree.find_all(exp.Column):
                    node.set("table", exp.to_identifier("f"))
                self.measures.append((tree.sql(dialect=self.dialect), metric.column))
                self.reading.append(f"metric {metric.column} = {definition.sql} ({_said(m.phrase)})")
                continue
            measure = next((b for b in m.bindings if b.kind == "measure" and b.table == self.fact), None)
            if measure is None or measure.column is None:
                return Declined([f"{self.fact} has no column for {_said(m.phrase)}"])
            before = self.q.before(m.first)
            function = "avg" if before in _AVERAGE else "sum"
            if function == "avg" and self.vocab.aggregated(self.fact):
                return Declined([f"{self.fact} holds totals (per day, …): the average of its rows of "
                                 f"{_said(m.phrase)} is not an average per day: not composed"])  # fmt: skip
            additivity = self.vocab.additivity(self.fact, measure.column)
            if function == "sum":
                self._summed(m.phrase, measure.column, additivity)
            attribute = additivity is None and not self.vocab.additive(self.fact)  # a price, a follower count
            if function == "sum" and attribute and before not in _TOTAL:
                self.summed_attributes.append(m.phrase)
            self.measures.append((f"{function}(f.{measure.column})", measure.column))
            self.reading.append(f"{function} of {self.fact}.{measure.column} ({_said(m.phrase)})")
        return None

    def _summed(self, phrase: str, column: str, additivity: Additivity | None) -> None:
        if additivity == "non_additive":
            self.non_additive.append((phrase, column))
        elif additivity == "semi_additive" and self._over_time():  # a snapshot with no date: no days to add
            self.semi_additive.append((phrase, column))

    def _over_time(self) -> bool:
        """The table's rows are dated: a partition column, or any date or timestamp column."""
        return bool(self.table.partition_column) or any(
            c.type.upper().startswith(("DATE", "TIMESTAMP")) for c in self.table.columns)  # fmt: skip

    def _values(self) -> Declined | None:
        """Values and flags: filters; several values of one column: a breakdown over those values."""
        q = self.q
        named_entities = {b.table for m in q.mentions for b in m.bindings if b.kind == "entity"}
        named_tables = named_entities | {b.table for m in q.mentions for b in m.bindings if b.kind == "dimension"}
        by_column: dict[tuple[str, str], list[tuple[int, _Mention, Binding]]] = {}
        for i, m in enumerate(q.mentions):
            if i in self.consumed or not m.kinds() & {"value", "flag"}:
                continue
            if any(b.kind == "date" and b.table == self.fact for b in m.bindings):
                continue  # "signed up" is users.signup_dt here, not a SIGNUP event elsewhere
            if "value" not in m.kinds() and m.kinds() & {"dimension", "entity"}:
                continue
            if q.grouped(m):  # "ad groups by keyword": a column is expected where a value stands
                if m.kinds() & {"dimension", "entity"}:
                    continue
                return Declined([f"{_said(m.phrase)} after “{q.before(m.first)}” is a value, not a column: name "
                                 "the column to break down by"])  # fmt: skip
            entities = {b.table for b in m.bindings if b.kind == "entity"}
            if entities and not _names_its_column(q, m) and not q.adjective(m):
                if self.fact in entities:
                    continue  # the measured rows themselves ("conversion value"): context
                return Declined([f"{_said(m.phrase)} names the rows of {sorted(entities)[0]} and a value: "
                                 "ambiguous"])  # fmt: skip
            chosen = self.pick(m.bindings, ("value", "flag"))
            if chosen is None:
                if m.kinds() & {"dimension", "entity", "measure"}:
                    continue  # read below as another kind
                return Declined([f"{_said(m.phrase)} fits no single column of {self.fact} or a table it joins"])
            if chosen.table != self.fact and chosen.table not in named_tables and not _names_its_column(q, m):
                return Declined([f"{_said(m.phrase)} would be {chosen.table}.{chosen.column}, a table the question "
                                 "does not name"])  # fmt: skip
            others = {b.table for b in m.bindings if b.kind in ("value", "flag") and b.table in self.paths}
            if chosen.table not in named_entities and others & named_entities - {chosen.table}:
                named = sorted(others & named_entities)[0]
                return Declined([f"{_said(m.phrase)} fits a column of {chosen.table} and of {named}, which the "
                                 "question names: ambiguous"])  # fmt: skip
            assert chosen.column is not None
            by_column.setdefault((chosen.table, chosen.column), []).append((i, m, chosen))
            self.consumed.add(i)
        for (target, column), found in by_column.items():
            alias = self.alias_for(target)
            self.context.add(target)
            self.filtered.add(column)
            flag = found[0][2].kind == "flag"
            negations = {n for _, m, _ in found if (n := self.q.negation_of(m)) is not None}
            self.negations_used |= negations
            absence = [t.text for n in sorted(negations) if (t := self.q.tokens[n]) and t.text.lower() in _ABSENCE]
            if absence:
                self.absent.append((target, f"{absence[0]} {found[0][1].phrase}"))
            values = sorted({b.value for _, _, b in found if b.value is not None})
            every = self.vocab.tables[target].column(column)
            if len(values) > 1 or (flag and any(self.q.compared(m) for _, m, _ in found)):
                if negations:
                    return Declined([f"the question negates one of several {column} values: not composed"])
                self.dimensions.append((found[0][1].first, f"{alias}.{column}", column))
                if values and every is not None and set(values) != set(every.values or []):
                    listed = ", ".join(exp.Literal.string(v).sql(dialect=self.dialect) for v in values)
                    self.filters.append(f"{alias}.{column} IN ({listed})")
                    self.reading.append(f"compared by {target}.{column}: {', '.join(values)}")
                else:
                    self.reading.append(f"compared by {target}.{column} (every value)")
            elif flag:
                self.value_filters.add(column)
                self.filters.append(f"{'NOT ' if negations else ''}{alias}.{column}")
                self.reading.append(f"only rows where {target}.{column} is {'false' if negations else 'true'}")
            else:
                self.value_filters.add(column)
                literal = exp.Literal.string(values[0]).sql(dialect=self.dialect)
                self.filters.append(f"{alias}.{column} {'<>' if negations else '='} {literal}")
                self.reading.append(f"{target}.{column} {'≠' if negations else '='} {values[0]!r}")
        return None

    def _add_dimension(self, m: _Mention, chosen: Binding) -> None:
        assert chosen.column is not None
        alias = self.alias_for(chosen.table)
        self.context.add(chosen.table)
        name = chosen.column
        if any(d[1] == f"{alias}.{name}" for d in self.dimensions):
            return
        if any(d[2] == name for d in self.dimensions):
            name = f"{chosen.table.split('.')[-1]}_{name}"
        self.dimensions.append((m.first, f"{alias}.{chosen.column}", name))
        self.reading.append(f"by {chosen.table}.{chosen.column} ({_said(m.phrase)})")

    def _dimensions(self) -> Declined | None:
        """Columns named (after "by", "per", "each" or not), then entities: an entity is a breakdown by its id,
        unless it is context — the table of a filter or of a column already read ("advertisers in the retail
        industry", "ads by creative type") — or qualifies the measure right after it ("ad cost")."""
        q = self.q
        later: list[_Mention] = []
        for i, m in enumerate(q.mentions):
            if i in self.consumed:
                continue
            bindings = [b for b in m.bindings if b.kind in ("dimension", "entity", "date")]
            if not bindings:
                return Declined([f"{_said(m.phrase)} is not something to group or filter by here"])
            if all(b.kind == "date" for b in bindings):
                if not any(b.table == self.fact for b in bindings):
                    return Declined([f"{_said(m.phrase)} names a date column of another table than {self.fact}"])
                continue  # the date column a period or grain applies to
            if q.before(m.first) == "of" and "entity" in m.kinds() and any(
                    d[0] < m.first for d in self.dimensions):  # fmt: skip
                return Declined([f"“… of {m.phrase}”: say which column (“{m.phrase} country”): ambiguous"])
            dims = [b for b in bindings if b.kind == "dimension"]
            if ("entity" in m.kinds() and (not q.grouped(m) or q.plural(m))) or not dims:
                later.append(m)  # "used by advertisers in …" is context; "by advertiser" a breakdown
                continue
            if all(b.column in self.filtered for b in dims) and not q.grouped(m):
                continue  # the filtered column's own name ("in the retail industry"); "by event type" groups
            chosen = self.pick(dims, ("dimension",))
            if chosen is None:
                later.append(m)
                continue
            self._add_dimension(m, chosen)
        measured = {x.first for x in self.measure_mentions}
        for m in later:
            entity_tables = {b.table for b in m.bindings if b.kind == "entity"}
            if m.last in measured and entity_tables & set(self.paths):
                continue  # "ad cost": the entity qualifies the measure (and its table reaches the measure's)
            if entity_tables & self.context and not (q.grouped(m) and not q.plural(m)):
                continue
            chosen = self.pick([b for b in m.bindings if b.kind == "dimension"], ("dimension",))
            if chosen is None:
                return Declined([f"{_said(m.phrase)} is not a single column of {self.fact} or of a table it joins"])
            self._add_dimension(m, chosen)
            self.entity_dimensions.append(entity_tables)
        for table, phrase in self.absent:
            # "advertisers with no active tag" asks for advertisers none of whose tags is active, not for their
            # inactive tags: absence across another entity's rows is not a filter on rows (an anti-join).
            if any(table not in tables for tables in self.entity_dimensions):
                return Declined([f"{_said(phrase)} asks for what has none (not a filter on rows): not composed"])
        return None

    def _ids(self) -> Declined | None:
        """ "advertiser 42": the id column of that entity, on the fact table or the nearest joined one."""
        by_column: dict[tuple[str, str], set[int]] = {}
        for mention in self.q.named.ids:
            targets = [b for b in self.vocab.phrases.get((mention.entity,), set()) if b.kind == "dimension"
                       and b.table in self.paths and (b.column or "").endswith("_id")]  # fmt: skip
            chosen = min(targets, key=lambda b: (len(self.paths[b.table]), str(b)), default=None)
            if chosen is None or chosen.column is None:
                return Declined([f"{_said(mention.text)} names no id column of {self.fact} or a table it joins"])
            by_column.setdefault((chosen.table, chosen.column), set()).add(mention.value)
        for (target, column), ids in by_column.items():
            if len(ids) > 1:
                return Declined([f"the question names several {column} values: not composed"])
            self.filters.append(f"{self.alias_for(target)}.{column} = {int(next(iter(ids)))}")
            self.reading.append(f"{target}.{column} = {next(iter(ids))}")
        return None

    def _thresholds(self) -> Declined | None:
        """ "more than 10000 followers": an attribute of a row (boards.follower_count); a threshold on amounts
        that add up would be on their sum (HAVING), which is not composed."""
        for threshold in self.q.named.thresholds:
            noun = word(threshold.noun)
            targets = [b for phrase, bs in self.vocab.phrases.items() if phrase and phrase[0] == noun
                       for b in bs if b.kind == "measure" and b.table in self.paths]  # fmt: skip
            columns = {(b.table, b.column) for b in targets}
            if len(columns) != 1:
                said = "no" if not columns else "more than one"
                return Declined([f"{_said(threshold.text)} fits {said} numeric column"])
            chosen = targets[0]
            if self.vocab.additive(chosen.table):
                return Declined([f"{_said(threshold.text)} is a threshold on a total: not composed"])
            self.filters.append(f"{self.alias_for(chosen.table)}.{chosen.column} {threshold.op} {threshold.value}")
            self.reading.append(f"{chosen.table}.{chosen.column} {threshold.op} {threshold.value}")
        return None

    def _assemble(self) -> Composition | Declined:
        q, table, fact = self.q, self.table, self.fact
        # The date column: one the question names ("signed up", "created"), else the table's partition column.
        named_dates = {b.column for m in q.mentions for b in m.bindings if b.kind == "date" and b.table == fact}
        date_column = next(iter(named_dates)) if len(named_dates) == 1 else table.partition_column
        meta = table.column(date_column) if date_column else None
        date_type = (meta.type if meta else "").upper()
        period: Period | None = q.named.periods[0] if q.named.periods else None
        default = period is None and bool(table.partition_column) and date_column == table.partition_column
        if default and q.grain in ("month", "quarter", "year"):
            return Declined([f"a {_GRAIN_ADJECTIVE[q.grain]} breakdown needs a period: name one (“this year”)"])
        if default:
            period = _last_full_month(q.named.as_of)
        if period is not None:
            if date_column is None:
                return Declined([f"the question names a period but {fact} has no date column"])
            self.filters.append(_period_sql(f"f.{date_column}", date_type, period))
            said = (f"no period named: the last full month of data, {period.span()}" if default
                    else f"{_said(period.text)}: {period.span()}")  # fmt: skip
            self.reading.append(f"{fact}.{date_column}: {said}")
        grain_sql: list[tuple[str, str]] = []
        if q.grain is not None:
            if date_column is None:
                return Declined([f"the question asks for a {_GRAIN_ADJECTIVE[q.grain]} breakdown but {fact} has "
                                 "no date column"])  # fmt: skip
            if q.grain == "day" and date_type.startswith("DATE"):
                grain_sql.append((f"f.{date_column}", date_column))
            else:
                grain_sql.append((f"date_trunc('{q.grain}', f.{date_column})", q.grain))
            self.reading.append(f"per {q.grain} of {fact}.{date_column}")
        key = table.column(key_of(fact))
        if q.rank and not grain_sql and not self.dimensions:
            if key is None:  # "boards with the most followers": ranked per board
                return Declined([f"the question asks for a ranking but names nothing of {fact} to rank"])
            self.dimensions.append((0, f"f.{key.name}", key.name))
            self.reading.append(f"per row of {fact} ({key.name})")
        per_row = key is not None and [d[1] for d in self.dimensions] == [f"f.{key.name}"] and not grain_sql
        one_day = date_column is not None and (q.grain == "day" or (
            period is not None and period.start == period.end and not period.to_date))  # fmt: skip
        # One row each ("top 10 products by price") is the value itself, not a sum: unless rows are dated, when a
        # product's row per day would be summed over the days.
        if self.non_additive and not (per_row and (one_day or not self._over_time())):
            said = _said(self.non_additive[0][0])
            reason = f"{said} does not add up (non-additive in the catalog): ask for its average"
            return Declined([reason], final=True, numbers=sorted({c for _, c in self.non_additive}))
        if self.semi_additive and not one_day:
            said = _said(self.semi_additive[0][0])
            reason = f"{said} adds up within a day only (semi-additive in the catalog): ask for it daily or for one day"
            return Declined([reason], final=True, numbers=sorted({c for _, c in self.semi_additive}))
        if self.summed_attributes and not per_row:
            said = _said(self.summed_attributes[0])
            return Declined([f"{said} is an attribute of each row of {fact}: say “average …” or “total …”"])
        items = [*grain_sql, *[(sql, alias) for _, sql, alias in sorted(self.dimensions)], *self.measures]
        if len({alias for _, alias in items}) != len(items):
            return Declined(["two output columns would have the same name"])
        group = [str(i + 1) for i in range(len(grain_sql) + len(self.dimensions))]
        sql = "SELECT " + ", ".join(f"{sql} AS {alias}" for sql, alias in items) + f" FROM {fact} AS f"
        if self.joins:
            sql += " " + " ".join(self.joins)
        if self.filters:
            sql += " WHERE " + " AND ".join(self.filters)
        if group:
            sql += " GROUP BY " + ", ".join(group)
        if q.rank and group:
            limit = q.named.count or 10
            sql += f" ORDER BY {len(group) + 1} {q.rank} LIMIT {limit}"
            self.reading.append(f"the {limit} {'lowest' if q.rank == 'ASC' else 'highest'} by {self.measures[0][1]}")
        try:
            tree = sqlglot.parse_one(sql, read=self.dialect)
        except (ParseError, TokenError) as exc:  # names come from the catalog; a failure here is a catalog oddity
            return Declined([f"the composed query did not parse ({str(exc).splitlines()[0][:120]})"])
        default_period = f"the last full month of data, {period.span()}" if default and period else None
        pretty = tree.sql(dialect=self.dialect, pretty=True)
        return Composition(sql=pretty, table=fact, tables=sorted(self.aliases), reading=self.reading,
                           default_period=default_period)  # fmt: skip


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
