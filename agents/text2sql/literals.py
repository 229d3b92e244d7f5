"""What a question names that a verified query holds as literals: periods, ids, counts, thresholds, quoted text.

Read deterministically, with no LLM, relative to the data's "today" (the catalog's `as_of`): "last week" is the
seven days ending on it, "last month" the month ending on it, "in October" the latest October that has begun by
then, "Q3" its latest third quarter, "since September 1" from that day on. Every period says how it was read, so
an answer can show the reading. What the question names is only ever a value: a date, an integer, a string — never
SQL; `agents.text2sql.reparam` puts the values into a query's syntax tree as literals.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
    "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9,
    "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
# Month names that are also everyday words or abbreviations: a month only next to a preposition, a day or a year.
_AMBIGUOUS_MONTHS = {"may", "march", "mar", "jan", "feb", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
                     "dec"}  # fmt: skip
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "fifty": 50,
    "hundred": 100,
}  # fmt: skip
# Words that negate what follows ("not in Germany", "non-checkout", "excluding iOS"): the composer reads them; the
# re-parameterisation of a past query refuses to place a value next to one.
NEGATIONS = frozenset({"not", "non", "no", "without", "excluding", "except"})
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4}
_UNITS = ("day", "week", "month", "quarter", "year")

_MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_NUMBER = r"(?:\d{1,4}|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"
_PREPOSITION = re.compile(
    r"(?:\b(?:in|during|for|since|from|until|till|through|thru|to|before|after|between|and|of|on|by|starting|"
    r"last|this|early|late|mid)\s+)$"
)


def _number(text: str) -> int:
    return int(text) if text.isdigit() else NUMBER_WORDS[text]


def add_months(day: date, months: int) -> date:
    """The same day `months` later (or earlier), clamped to the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


@dataclass(frozen=True)
class Period:
    """Days from `start` to `end`, both included; `start` None: no lower bound. `to_date`: it runs up to the
    data's today (a query that only has a lower bound may keep it that way)."""

    start: date | None
    end: date
    text: str
    reading: str
    to_date: bool = False

    def span(self) -> str:
        if self.start is None:
            return f"up to {self.end}"
        return str(self.start) if self.start == self.end else f"{self.start} – {self.end}"


@dataclass(frozen=True)
class IdMention:
    entity: str  # the word before the number, singular and lower-case: "advertiser"
    value: int
    text: str


@dataclass(frozen=True)
class Threshold:
    op: str  # ">", ">=", "<", "<="
    value: int | float
    noun: str  # the word after the number, singular: "follower"
    text: str


@dataclass
class Named:
    """Everything a question names, and the question with those phrases blanked (for matching values)."""

    question: str
    as_of: date
    periods: list[Period] = field(default_factory=list)
    ids: list[IdMention] = field(default_factory=list)
    count: int | None = None
    count_text: str | None = None
    thresholds: list[Threshold] = field(default_factory=list)
    quoted: list[str] = field(default_factory=list)
    rest: str = ""


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    first: date
    last: date
    to_date: bool
    reading: str


def singular(word: str) -> str:
    word = word.lower()
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _latest_month(month: int, as_of: date, year: int | None) -> tuple[int, int]:
    if year is not None:
        return year, month
    return (as_of.year, month) if date(as_of.year, month, 1) <= as_of else (as_of.year - 1, month)


def _valid_day(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _atoms(text: str, as_of: date) -> list[_Span]:
    """Every date expression in the (lower-cased) question, longest match first, without overlaps."""
    found: list[_Span] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s.start or a >= s.end for s in found)

    def add(match: re.Match[str], first: date, last: date, reading: str, to_date: bool = False, group: int = 0) -> None:
        a, b = match.span(group)
        if free(a, b):
            found.append(_Span(a, b, first, last, to_date, reading))

    # ISO dates: 2026-10-01.
    for m in re.finditer(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", text):
        day = _valid_day(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if day is not None:
            add(m, day, day, str(day))
    # A month and a day: October 1, Oct 1st 2026, 1 October.
    day_patterns = (
        rf"\b{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(?P<year>\d{{4}})\b)?",
        rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}(?:,?\s+(?P<year>\d{{4}})\b)?",
    )
    for pattern in day_patterns:
        for m in re.finditer(pattern, text):
            month, day_number = MONTHS[m.group("month")], int(m.group("day"))
            year = int(m.group("year")) if m.group("year") else None
            if year is None:
                candidate = _valid_day(as_of.year, month, day_number)
                year = as_of.year if candidate is not None and candidate <= as_of else as_of.year - 1
            day = _valid_day(year, month, day_number)
            if day is not None:
                add(m, day, day, str(day))
    # Quarters and halves: Q3, Q3 2026, the third quarter, H1.
    quarters = r"\b(?:q([1-4])|(first|second|third|fourth|1st|2nd|3rd|4th)\s+quarter)(?:\s+(?:of\s+)?(\d{4}))?\b"
    for m in re.finditer(quarters, text):
        quarter = int(m.group(1)) if m.group(1) else ORDINALS[m.group(2)]
        first_month = 3 * (quarter - 1) + 1
        year = int(m.group(3)) if m.group(3) else None
        year, _ = _latest_month(first_month, as_of, year)
        add(m, date(year, first_month, 1), month_end(year, first_month + 2), f"Q{quarter} {year}")
    for m in re.finditer(r"\bh([12])(?:\s+(\d{4}))?\b", text):
        half = int(m.group(1))
        first_month = 1 if half == 1 else 7
        year, _ = _latest_month(first_month, as_of, int(m.group(2)) if m.group(2) else None)
        add(m, date(year, first_month, 1), month_end(year, first_month + 5), f"H{half} {year}")
    # Months: October, October 2026 (ambiguous names only beside a preposition or a year).
    for m in re.finditer(rf"\b{_MONTH}(?:\s+(?P<year>\d{{4}}))?\b", text):
        name = m.group("month")
        if name in _AMBIGUOUS_MONTHS and not m.group("year") and not _PREPOSITION.search(text[: m.start()]):
            continue
        year, month = _latest_month(MONTHS[name], as_of, int(m.group("year")) if m.group("year") else None)
        add(m, date(year, month, 1), month_end(year, month), f"{calendar.month_name[month]} {year}")
    # Relative: the last 7 days, past two weeks, previous month, last week.
    relative = (rf"\b(?:the\s+)?(?:last|past|previous|prior|trailing|most\s+recent)\s+(?:(?P<n>{_NUMBER})\s+)?"
                rf"(?P<unit>days?|weeks?|months?|quarters?|years?)\b(?!-)")  # fmt: skip
    for m in re.finditer(relative, text):
        n = _number(m.group("n")) if m.group("n") else 1
        unit = m.group("unit")
        if m.group("n") and n > 1 and not unit.endswith("s"):
            continue  # "trailing 7 day saves": an adjective, not a period
        unit = unit.rstrip("s")
        if unit == "day":
            first = as_of - timedelta(days=n - 1)
        elif unit == "week":
            first = as_of - timedelta(days=7 * n - 1)
        else:
            months = {"month": 1, "quarter": 3, "year": 12}[unit] * n
            first = add_months(as_of, -months) + timedelta(days=1)
        length = {"day": f"{n} days", "week": f"{7 * n} days"}.get(unit, f"{n} {unit}s" if n > 1 else unit)
        length = "day" if length == "1 days" else length
        add(m, first, as_of, f"the {length} ending on {as_of}, the data's latest day", to_date=True)
    # This week/month/quarter/year, month to date, YTD.
    current = (r"\b(?:this|current)\s+(week|month|quarter|year)\b|\b(week|month|quarter|year)[\s-]to[\s-]date\b|"
               r"\b([wmqy])td\b")  # fmt: skip
    for m in re.finditer(current, text):
        unit = m.group(1) or m.group(2) or {"w": "week", "m": "month", "q": "quarter", "y": "year"}[m.group(3)]
        if unit == "week":
            first = as_of - timedelta(days=as_of.weekday())
        elif unit == "month":
            first = as_of.replace(day=1)
        elif unit == "quarter":
            first = date(as_of.year, 3 * ((as_of.month - 1) // 3) + 1, 1)
        else:
            first = date(as_of.year, 1, 1)
        add(m, first, as_of, f"this {unit} up to {as_of}, the data's latest day", to_date=True)
    for m in re.finditer(r"\b(today|yesterday)\b", text):
        day = as_of if m.group(1) == "today" else as_of - timedelta(days=1)
        add(m, day, day, f"{m.group(1)}: {day} (the data's latest day is {as_of})")
    # A year: in 2026, during 2025, since 2024.
    for m in re.finditer(r"\b(?:in|during|for|since|from|until|till|through|to|before|after|between|and|of|year)\s+"
                         r"(\d{4})\b", text):  # fmt: skip
        year = int(m.group(1))
        if 1900 <= year <= 2100:
            add(m, date(year, 1, 1), date(year, 12, 31), str(year), group=1)
    return sorted(found, key=lambda s: s.start)


def _periods(text: str, as_of: date) -> tuple[list[Period], list[tuple[int, int]]]:
    """Atoms joined by their connectors ("since X", "from X to Y", "between X and Y", "before X")."""
    atoms = _atoms(text, as_of)
    periods: list[Period] = []
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(atoms):
        atom = atoms[i]
        before = text[: atom.start]
        following = atoms[i + 1] if i + 1 < len(atoms) else None
        between = text[atom.end : following.start] if following else ""
        opener = _OPENER.search(before)
        word = opener.group(1).split()[0] if opener else ""
        start = opener.start() if opener else atom.start
        if following and word in ("from", "between") and re.fullmatch(r"\s*(?:to|until|till|through|thru|and|-|–)\s*",
                                                                      between):  # fmt: skip
            first, last = atom.first, following.last
            periods.append(Period(first, last, text[start : following.end], f"{first} – {last}"))
            spans.append((start, following.end))
            i += 2
            continue
        piece = text[start : atom.end]
        if word in ("since", "starting", "from"):
            periods.append(Period(atom.first, as_of, piece, f"from {atom.first} to {as_of}, the data's latest day",
                                  to_date=True))  # fmt: skip
        elif word == "after":
            first = atom.last + timedelta(days=1)
            periods.append(Period(first, as_of, piece, f"from {first} to {as_of}, the data's latest day", to_date=True))
        elif word == "before":
            last = atom.first - timedelta(days=1)
            periods.append(Period(None, last, piece, f"up to {last}"))
        elif word in ("until", "till", "through", "up"):
            periods.append(Period(None, atom.last, piece, f"up to {atom.last}"))
        else:
            periods.append(Period(atom.first, atom.last, piece, atom.reading, to_date=atom.to_date))
        spans.append((start, atom.end))
        i += 1
    return periods, spans


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


_OPENER = re.compile(
    r"\b(from|between|since|after|starting(?:\s+(?:on|from|in))?|before|until|till|through|up\s+to)\s+(?:the\s+)?$"
)
_QUOTED = re.compile(r"\"([^\"]{1,200})\"|“([^”]{1,200})”|(?:(?<=[\s(:=])|^)'([^'\s][^']{0,199})'(?=[\s,.;:!?)]|$)")
_THRESHOLD = re.compile(
    r"\b(more than|greater than|over|above|exceeding|at least|no fewer than|fewer than|less than|under|below|"
    r"at most|no more than)\s+(\d[\d,]*(?:\.\d+)?)\s+([a-z][a-z_-]*)"
)
_THRESHOLD_OPS = {"more than": ">", "greater than": ">", "over": ">", "above": ">", "exceeding": ">", "at least": ">=",
                  "no fewer than": ">=", "fewer than": "<", "less than": "<", "under": "<", "below": "<",
                  "at most": "<=", "no more than": "<="}  # fmt: skip
_COUNTED = "|".join(n for n in NUMBER_WORDS if n not in ("a", "an"))
_COUNT = re.compile(
    rf"\b(?:top|first|bottom|best|worst|highest|lowest|largest|smallest|biggest)\s+(?P<a>{_NUMBER})\b|"
    rf"(?:^|\b(?:which|what|the|list|show|find|name|give\s+me|get)\s+)(?P<b>\d{{1,5}}|{_COUNTED})"
    rf"\s+(?:most|least|top|biggest|largest|highest|lowest|[a-z]+s)\b"
)
_ID = re.compile(r"\b([a-z][a-z_]*?)(?:[\s_-]+ids?)?\s*(?:#|no\.\s*|number\s+|=\s*)?\s*(\d+)\b")


def read_question(question: str, as_of: date, entities: set[str] | None = None) -> Named:
    """Periods, ids (`entities`: the words that name an id column, e.g. "advertiser"), a count, thresholds and
    quoted values, each only once: a phrase read as one kind is blanked before the next kind is read."""
    named = Named(question=question, as_of=as_of)
    quoted_spans: list[tuple[int, int]] = []
    for m in _QUOTED.finditer(question):
        named.quoted.append(next(g for g in m.groups() if g is not None))
        quoted_spans.append(m.span())
    lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in question)  # positions kept
    text = _blank(lowered, quoted_spans)
    periods, spans = _periods(text, as_of)
    named.periods = [replace(p, text=question[a:b]) for p, (a, b) in zip(periods, spans, strict=True)]
    text = _blank(text, spans)
    used: list[tuple[int, int]] = []
    for m in _THRESHOLD.finditer(text):
        value = float(m.group(2).replace(",", ""))
        named.thresholds.append(Threshold(_THRESHOLD_OPS[m.group(1)], int(value) if value.is_integer() else value,
                                          singular(m.group(3)), m.group(0)))  # fmt: skip
        used.append(m.span())
    text = _blank(text, used)
    used = []
    for m in _ID.finditer(text):
        word = singular(m.group(1))
        if word in (entities or set()) or word == "id":
            named.ids.append(IdMention(word, int(m.group(2)), m.group(0).strip()))
            used.append(m.span())
    text = _blank(text, used)
    counts = list(_COUNT.finditer(text))
    if len(counts) == 1:
        m = counts[0]
        named.count = _number(m.group("a") or m.group("b"))
        named.count_text = m.group(0).strip()
        text = _blank(text, [m.span()])
    named.rest = _blank(question, [(a, b) for a, b in [*quoted_spans, *spans]])
    return named
