"""Analyst intent: for each historical query, a summary, the questions it answers, a breakdown.

With an LLM configured, the LLM writes them (prompted with the SQL, the mined breakdown and the
catalog's descriptions); otherwise — or when the LLM fails — a deterministic describer built on
the mined AST writes them, in business words taken from the glossary and metric definitions.
Literal dates and ids never appear: only their roles ("over a date range", "for one advertiser").
"""

from __future__ import annotations

import json
import re

import httpx
from pydantic import BaseModel, Field, ValidationError

from embeddings.mining import Breakdown, Mined
from embeddings.settings import LLMSettings
from governance.catalog import Catalog

_ID = re.compile(r"_id$")


class Intent(BaseModel):
    summary: str
    questions: list[str] = Field(min_length=1, max_length=8)
    breakdown: dict[str, list[str] | str | None]
    describer: str = Field(description="deterministic or llm:<model>")

    def document(self) -> str:
        parts = [self.summary, *self.questions]
        for key, value in self.breakdown.items():
            if value:
                parts.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
        return "\n".join(parts)


def _words(name: str) -> str:
    return name.replace("_", " ").strip()


def _dimension(name: str, catalog: Catalog) -> str:
    term = catalog.term_for(name)
    base = term.name if term is not None else name
    return _words(_ID.sub("", base)) or _words(name)


def _metric(metric: str, catalog: Catalog) -> str:
    """`sum(spend_usd)` → "total spend"; `ctr = …` → "click-through rate (CTR)"."""
    alias, _, expression = metric.partition(" = ") if " = " in metric else ("", "", metric)
    if alias and alias in catalog.metrics:
        return f"{catalog.metrics[alias].definition.split(',')[0].rstrip('.').lower()} ({alias.upper()})"
    match = re.fullmatch(r"(sum|count|avg|min|max)\((distinct )?([\w.]*|\*)\)", expression.strip())
    if match:
        func, distinct, column = match.groups()
        column = column.rsplit(".", 1)[-1]
        noun = _dimension(alias or column, catalog) if (alias or column != "*") else "rows"
        if func == "count":
            return f"number of distinct {noun}" if distinct else f"number of {noun}"
        word = {"sum": "total", "avg": "average", "min": "minimum", "max": "maximum"}[func]
        return f"{word} {noun}"
    if alias:
        return _words(alias)
    columns = re.findall(r"\b([a-z_]+)\b", expression)
    picked = [c for c in columns if c not in {"sum", "count", "avg", "nullif", "case", "when", "then", "else", "end"}]
    return "ratio of " + " to ".join(_words(c) for c in picked[:2]) if picked else expression


def _plural(noun: str) -> str:
    if noun.endswith(("s", "x")):
        return noun
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _entity(table: str) -> str:
    return _words(table.rsplit(".", maxsplit=1)[-1]).removesuffix(" daily")


def _subject(tables: list[str], catalog: Catalog) -> str:
    described = []
    for name in tables:
        table = catalog.table(name)
        if table is not None and table.description:
            described.append(table.description.split(".")[0].rstrip().lower())
    return described[0] if described else "the " + _words(tables[0].split(".")[-1]) if tables else "the data"


def _filter(text: str, catalog: Catalog) -> str:
    match = re.fullmatch(r"(\w+) (=|!=) '(.+)'", text)
    if match:
        column, op, value = match.groups()
        return f"{_dimension(column, catalog)} {'is' if op == '=' else 'is not'} {value}"
    match = re.fullmatch(r"(\w+) (=|!=) <number>", text)
    if match:
        return f"one {_dimension(match.group(1), catalog)}"
    match = re.fullmatch(r"(\w+) in a date range", text)
    if match:
        return "a date range"
    if text.startswith("not "):
        return f"not {_words(text[4:]).removeprefix('is ')}"
    if text.endswith(" is true"):
        return _words(text[: -len(" is true")]).removeprefix("is ")
    return text


def describe(mined: Mined, catalog: Catalog) -> Intent:
    """The deterministic describer: specific questions from the AST, no LLM."""
    b: Breakdown = mined.breakdown
    metrics = [_metric(m, catalog) for m in b.metrics] or ["rows"]
    dims = [_dimension(d, catalog) for d in b.dimensions]
    grain = {"day": "per day", "week": "per week", "month": "per month", "quarter": "per quarter", "year": "per year",
             "hour": "per hour"}.get(b.time_grain or "")  # fmt: skip
    filters = [_filter(f, catalog) for f in b.filters]
    conditions = [f for f in filters if f != "a date range"]
    dated = len(conditions) != len(filters)
    by = f" by {' and '.join(dims)}" if dims else ""
    when = f" {grain}" if grain else ""
    where = f" for {' and '.join(conditions)}" if conditions else ""
    span = " over a date range" if dated else ""
    subject = _subject(b.tables, catalog)
    tables = ", ".join(b.tables)
    questions: list[str] = []
    if not b.metrics:
        # A listing: which rows, with which columns.
        entity = _plural(_entity(b.tables[0])) if b.tables else "rows"
        shown = ", ".join(_words(o) for o in b.outputs[:6]) or "all columns"
        summary = f"Lists {entity} ({shown}){where}, from {subject} ({tables})."
        if b.order:
            summary = summary[:-1] + f", ordered by {b.order.removeprefix('top N by ').replace('_', ' ')}."
        questions.append(f"Which {entity} {'have ' + ' and '.join(conditions) if conditions else 'are there'}?")
        questions.append(f"List {entity} with their {shown}")
        if b.order:
            questions.append(f"Which {entity} have the highest {_words(b.order.removeprefix('top N by '))}?")
    else:
        metric_text = " and ".join(metrics[:3])
        summary = f"{metric_text[0].upper()}{metric_text[1:]}{by}{when}{where}{span}, from {subject} ({tables})."
        if b.order:
            summary = summary[:-1] + f"; the top entries by {_words(b.order.removeprefix('top N by '))}."
        questions.append(f"What is the {metric_text}{by}{when}{where}{span}?")
        if dims and b.order:
            questions.append(f"Which {_plural(dims[0])} have the highest {metrics[0]}?")
        if grain:
            trend = {"per day": "day by day", "per week": "week over week", "per month": "month over month"}
            questions.append(f"How has the {metrics[0]} changed {trend.get(grain, 'over time')}?")
        if dims:
            questions.append(f"How does {metrics[0]} compare across {_plural(dims[0])}?")
        for condition in conditions[:1]:
            questions.append(f"What is the {metrics[0]} when {condition}?")
        if len(b.tables) > 1:
            questions.append(
                f"{metrics[0][0].upper()}{metrics[0][1:]} combining {_entity(b.tables[0])} with {_entity(b.tables[1])}"
            )
        if not dims and not grain and not conditions:
            questions.append(f"How many {metrics[0].removeprefix('number of ')} are there in {subject}?")
    breakdown: dict[str, list[str] | str | None] = {
        "tables": b.tables,
        "metrics": metrics,
        "dimensions": dims,
        "filters": filters,
        "time grain": b.time_grain,
        "joins": [f"{left} = {right}" for left, right in b.joins],
    }
    unique = list(dict.fromkeys(questions))[:6]
    return Intent(summary=summary, questions=unique, breakdown=breakdown, describer="deterministic")


_PROMPT = """You describe an analyst's SQL query so that future analysts can find it by asking a question.
Reply with JSON only: {{"summary": str, "questions": [3 to 5 str], "breakdown": {{"tables": [str], "metrics": [str],
"dimensions": [str], "filters": [str], "time grain": str or null}}}}.
Use business words; never include literal dates, ids or numbers from the query (say "a date range", "one advertiser").

Tables: {tables}
Mined breakdown: {breakdown}
SQL:
{sql}"""


class LLMDescriber:
    """Intent written by an OpenAI-compatible chat model; falls back to `describe` on any failure."""

    def __init__(self, settings: LLMSettings, client: httpx.Client | None = None) -> None:
        if not settings.configured:
            raise ValueError("BASTION_LLM_BASE_URL and BASTION_LLM_MODEL must be set")
        self.settings = settings
        headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"} if settings.api_key else {}
        self.client = client or httpx.Client(base_url=str(settings.base_url).rstrip("/"), headers=headers,
                                             timeout=settings.timeout)  # fmt: skip
        self.failures = 0

    def __call__(self, sql: str, mined: Mined, catalog: Catalog) -> Intent:
        fallback = describe(mined, catalog)
        tables = "; ".join(f"{t}: {_description(catalog, t)}" for t in mined.breakdown.tables)
        prompt = _PROMPT.format(tables=tables, breakdown=fallback.breakdown, sql=sql[:6000])
        try:
            response = self.client.post(
                "/chat/completions",
                json={"model": self.settings.model, "temperature": 0,
                      "messages": [{"role": "user", "content": prompt}]},
            )  # fmt: skip
            response.raise_for_status()
            content = response.json()["choices"][0]["message"]["content"]
            data = json.loads(content[content.find("{") : content.rfind("}") + 1])
            intent = Intent(
                summary=str(data["summary"]),
                questions=[str(q) for q in data["questions"]][:8],
                breakdown={**fallback.breakdown, **dict(data.get("breakdown") or {})},
                describer=f"llm:{self.settings.model}",
            )
        except (httpx.HTTPError, KeyError, IndexError, ValueError, TypeError, ValidationError):
            self.failures += 1
            return fallback
        if re.search(r"\b\d{4}-\d{2}-\d{2}\b", intent.document()):
            self.failures += 1  # the model leaked a literal date: keep the deterministic text
            return fallback
        return intent


def _description(catalog: Catalog, name: str) -> str:
    table = catalog.table(name)
    return (table.description or "") if table is not None else ""
