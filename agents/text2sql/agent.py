"""The Text-to-SQL agent as a LangGraph state machine.

classify → retrieve (tables + verified past queries, re-validated) → one of:
  discovery/docs answers from retrieval; execution validates the given SQL;
  text-to-SQL reuses a past query that answers the question — re-parameterised with the question's period, ids
  and values (`reparam`: literals rewritten in the syntax tree, then guard + EXPLAIN again; unchanged, and said
  why, when they cannot all be placed) — else generates with the LLM; without one, a question the catalog's
  semantic layer reads whole is composed from it (`compose`: metrics, columns, joins, values, period) →
  validate (guard + EXPLAIN) → retry with the structured errors (at most 3 attempts) →
  execute if asked → answer with the SQL, the tables and reused queries, warnings and rows.
Without an LLM: retrieval-only, labelled as such; no SQL is ever invented: a composed query uses only the
catalog's names and the question's values, and says how it read the question.
"""

from __future__ import annotations

import re
import time
from typing import Any, Literal, TypedDict

import sqlglot
from langgraph.graph import END, START, StateGraph
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from agents.text2sql.answer import Answer, Reuse
from agents.text2sql.classify import classify, sql_in
from agents.text2sql.compose import Composition, Declined, compose
from agents.text2sql.prompt import build_messages
from agents.text2sql.reparam import Rewrite, reparameterise
from embeddings.bm25 import tokenize
from embeddings.retrieval import MAX_QUESTION
from embeddings.settings import LLMSettings
from governance.classification import Classification
from governance.sqlguard import Issue, transpile
from tools.sql.service import ReusableQuery, SqlError, SqlService

MAX_ATTEMPTS = 3
REUSE_SCORE = 0.8  # a past query this close to the question answers it as is


class State(TypedDict, total=False):
    question: str
    execute: bool
    clearance: Classification
    dialect: str | None
    answer: Answer
    sql: str | None
    feedback: list[tuple[str, str]]
    imposed_limit: int | None  # the LIMIT the guard added (or capped) to the answer's SQL, not its author
    composition: Composition | None  # the question composed from the catalog (retrieval-only mode)
    rewrite: Rewrite | None  # the best past query re-parameterised, when retrieval-only mode already did it


_FENCE = re.compile(r"```(?:sql)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_sql(text: str) -> str:
    match = _FENCE.search(text)
    return (match.group(1) if match else text).strip().rstrip(";").strip()


def outer_limit(sql: str, dialect: str) -> int | None:
    """The row count of the query's outermost LIMIT, when it is a plain integer."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (ParseError, TokenError):
        return None
    limit = tree.args.get("limit") if isinstance(tree, exp.Query) else None
    value = limit.expression if isinstance(limit, exp.Limit) else None
    return int(value.this) if isinstance(value, exp.Literal) and value.is_int else None


def imposed_limit(original: str, original_dialect: str, checked: str, checked_dialect: str) -> int | None:
    """The LIMIT the guard put on `checked` that `original` did not ask for (added, or capped lower)."""
    final = outer_limit(checked, checked_dialect)
    own = outer_limit(original, original_dialect)
    return final if final is not None and (own is None or own > final) else None


def reuse_message(rewrite: Rewrite, status: str, why: list[str], as_of: str) -> str | None:
    """The sentence said first about a reused query: what was re-parameterised, or that (and why) it was not."""
    kept = f" Kept as the past query had it: {'; '.join(rewrite.kept)}." if rewrite.kept else ""
    if status == "reparameterised":
        return (f"Re-parameterised a verified past query for your question: {'; '.join(rewrite.changes)}; "
                f"re-validated by the SQL guard.{kept}")  # fmt: skip
    if why:
        dates = (f" Its dates ({rewrite.before}) are its own, not your question's"
                 + (f" (“{rewrite.period.text}”: {rewrite.period.span()})" if rewrite.period else "") + "."
                 if rewrite.has_dates and rewrite.before else "")  # fmt: skip
        reasons = "; ".join(why)
        return f"Reused a verified past query UNCHANGED: it could not be re-parameterised — {reasons}.{dates}{kept}"
    if rewrite.dates_differ and rewrite.before:
        return (f"Reused a verified past query as it was: its dates ({rewrite.before}) are its own — your question "
                f"names no period (the data runs to {as_of}); name one (“last week”, “in October”, “since "
                f"September 1”) to have them replaced.{kept}")  # fmt: skip
    if rewrite.period is not None and rewrite.after:
        return f"Reused a verified past query: its dates ({rewrite.after}) already match your question.{kept}"
    return f"Reused a verified past query as it was.{kept}" if kept else None


class Text2SQLAgent:
    def __init__(self, service: SqlService, llm: LLMSettings | None = None, chat: Any = None) -> None:
        self.service = service
        self.llm = llm or LLMSettings()
        self._chat = chat
        self.graph = self._build().compile()

    def chat(self) -> Any:
        if self._chat is None:
            from langchain_openai import ChatOpenAI

            key = self.llm.api_key.get_secret_value() if self.llm.api_key else "not-needed"
            self._chat = ChatOpenAI(model=self.llm.model, base_url=self.llm.base_url, api_key=key,
                                    timeout=self.llm.timeout, max_retries=1, temperature=0)  # fmt: skip
        return self._chat

    # -- entry point -----------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        execute: bool = False,
        clearance: Classification = Classification.INTERNAL,
        dialect: str | None = None,
    ) -> Answer:
        question = question.strip()
        if not question:
            raise SqlError("bad_question", "the question is empty")
        if len(question) > MAX_QUESTION:
            raise SqlError("bad_question", f"the question is {len(question):,} characters; at most {MAX_QUESTION:,}")
        state: State = {"question": question, "execute": execute, "clearance": clearance, "dialect": dialect,
                        "feedback": []}  # fmt: skip
        result = self.graph.invoke(state)
        answer: Answer = result["answer"]
        return answer

    # -- the graph ---------------------------------------------------------------------------------

    def _build(self) -> StateGraph[State]:
        graph: StateGraph[State] = StateGraph(State)
        graph.add_node("classify", self._classify)
        graph.add_node("retrieve", self._retrieve)
        graph.add_node("reuse", self._reuse)
        graph.add_node("generate", self._generate)
        graph.add_node("validate", self._validate)
        graph.add_node("execute", self._execute)
        graph.add_node("finish", self._finish)
        graph.add_edge(START, "classify")
        graph.add_edge("classify", "retrieve")
        graph.add_node("compose", self._compose)
        graph.add_conditional_edges("retrieve", self._after_retrieve,
                                    ["compose", "reuse", "generate", "validate", "finish"])  # fmt: skip
        graph.add_conditional_edges("compose", self._after_compose, ["execute", "reuse", "finish"])
        graph.add_conditional_edges("reuse", self._after_reuse, ["execute", "generate", "finish"])
        graph.add_edge("generate", "validate")
        graph.add_conditional_edges("validate", self._after_validate, ["generate", "execute", "finish"])
        graph.add_edge("execute", "finish")
        graph.add_edge("finish", END)
        return graph

    def _timed(self, answer: Answer, step: str, started: float) -> None:
        answer.timings_ms[step] = round(answer.timings_ms.get(step, 0.0) + (time.perf_counter() - started) * 1000, 2)

    def _classify(self, state: State) -> State:
        kind = classify(state["question"])
        mode: Literal["llm", "retrieval_only"] = "llm" if self.llm.configured else "retrieval_only"
        answer = Answer(question=state["question"], kind=kind, mode=mode, dialect=self.service.engine().dialect)
        if mode == "retrieval_only" and kind == "text_to_sql":
            answer.notes.append("No LLM configured (BASTION_LLM_BASE_URL, BASTION_LLM_MODEL): retrieval-only mode — "
                                "verified past queries and tables, no generated SQL.")  # fmt: skip
        sql = sql_in(state["question"]) if kind == "execution" else None
        return {"answer": answer, "sql": sql}

    def _retrieve(self, state: State) -> State:
        answer = state["answer"]
        started = time.perf_counter()
        if answer.kind != "execution":
            answer.candidate_tables = self.service.search_tables(state["question"], k=5)
            answer.past_queries = self.service.search_queries(state["question"], k=5, clearance=state["clearance"])
            answer.definitions = self._definitions(state["question"])
            for hit in answer.candidate_tables:
                if hit.deprecated and hit.successor:
                    answer.warnings.append(f"{hit.table} is deprecated: use {hit.successor}")
        self._timed(answer, "retrieve", started)
        composition, rewrite = None, None
        if answer.kind == "text_to_sql" and answer.mode == "retrieval_only":
            started = time.perf_counter()
            ranked = [hit.table for hit in answer.candidate_tables]
            rewrite = self._rewrite(answer, state["question"])
            composed = compose(state["question"], self.service.catalog, ranked, dialect=answer.dialect)
            if not self._fits(answer, rewrite, composed):  # a past query that fits comes first
                if isinstance(composed, Composition):
                    composition = composed
                elif composed.final:  # a sum that means nothing, and no verified past query that fits
                    refused = answer.declined = composed.reasons[0]
                    answer.warnings.append(f"not answered: {refused}")
                    answer.notes.insert(0, f"Not answered: {refused}. No verified past query fits the question "
                                           "closely enough to be reused instead.")  # fmt: skip
                else:
                    answer.notes.append("Not composed from the catalog: " + "; ".join(composed.reasons[:2]) + ".")
            self._timed(answer, "compose", started)
        return {"answer": answer, "composition": composition, "rewrite": rewrite}

    def _definitions(self, question: str) -> list[str]:
        words = set(tokenize(question))
        catalog = self.service.catalog
        found = [f"{t.name}: {t.definition} (columns: {', '.join(t.synonyms)})" for t in catalog.glossary.values()
                 if words & set(tokenize(" ".join([t.name, *t.synonyms])))]  # fmt: skip
        found += [f"{m.name}: {m.definition} = {m.sql}" for m in catalog.metrics.values()
                  if words & set(tokenize(m.name))]  # fmt: skip
        return found[:8]

    def _rewrite(self, answer: Answer, question: str) -> Rewrite | None:
        """The best reusable past query re-parameterised for the question (None when there is none)."""
        best = self._best_reusable(answer)
        if best is None:
            return None
        return reparameterise(question, best.hit.sql, self.service.catalog, self.service.index.query_dialect)

    def _fits(self, answer: Answer, rewrite: Rewrite | None, composed: Composition | Declined) -> bool:
        """A verified past query close to the question (score ≥ REUSE_SCORE) whose literals all take the
        question's values, with no period left as the past query had it: reused before anything is composed.
        When the question also composes, the past query must answer the same question: read the table the composed
        reading reads its measure from ("conversions by age bucket" is not a query that counts users), keep no id
        or value filter the question does not name ("clicks by advertiser" is not advertiser 3's), and filter the
        way the reading does where both filter ("secret boards" is not `NOT is_secret`). When the composer declined
        a sum that means nothing, the past query must aggregate that number itself (else: not answered)."""
        best = self._best_reusable(answer)
        if best is None or rewrite is None or best.hit.score < REUSE_SCORE:
            return False
        if rewrite.unresolved or (rewrite.dates_differ and not rewrite.changed):
            return False
        if isinstance(composed, Composition):
            if composed.table not in best.hit.tables or rewrite.narrowed:
                return False
            # The composed reading's value and flag filters, as the past query has them where it filters there:
            # "non-checkout conversions" is not a past query's `event_type = 'CHECKOUT'`.
            past = _conditions(rewrite.sql, self.service.index.query_dialect)
            ours = _conditions(composed.sql, answer.dialect) or {}
            return past is not None and all(past.get(column, wanted) == wanted for column, wanted in ours.items())
        if composed.final:  # "DAU and new users by country": a past query without DAU does not answer it
            return _aggregates(rewrite.sql, self.service.index.query_dialect, set(composed.numbers))
        return True

    def _best_reusable(self, answer: Answer) -> ReusableQuery | None:
        valid = [q for q in answer.past_queries if q.valid_today and q.hit.success_rate >= 0.9]
        return valid[0] if valid else None

    def _after_retrieve(self, state: State) -> str:
        answer = state["answer"]
        if answer.kind == "execution":
            return "validate"
        if answer.kind != "text_to_sql":
            return "finish"
        best = self._best_reusable(answer)
        if answer.mode == "retrieval_only":
            if state.get("composition") is not None:
                return "compose"
            if answer.declined is not None:  # a sum that means nothing: the reason is the answer
                return "finish"
            return "reuse" if best is not None else "finish"
        return "reuse" if best is not None and best.hit.score >= REUSE_SCORE else "generate"

    def _compose(self, state: State) -> State:
        """The composed query, validated like any other (guard + EXPLAIN); if it fails, the past queries remain."""
        answer = state["answer"]
        composition = state.get("composition")
        assert composition is not None
        started = time.perf_counter()
        try:
            validation = self.service.validate(composition.sql, answer.dialect, state["clearance"])
        except SqlError as exc:
            answer.notes.append(f"The composed query could not be validated ({exc.code}); not used.")
            self._timed(answer, "compose", started)
            return {"answer": answer, "composition": None}
        self._timed(answer, "compose", started)
        if not validation.ok or validation.guard.sql is None:
            problems = [str(e) for e in validation.guard.errors[:2]] or [str(validation.explain_error)[:160]]
            answer.notes.append("The composed query did not pass validation, not used: " + "; ".join(problems))
            return {"answer": answer, "composition": None}
        answer.sql, answer.source = validation.guard.sql, "composed"
        answer.tables = validation.guard.tables
        answer.reading = list(composition.reading)
        answer.warnings.extend(w.message for w in validation.guard.warnings)
        message = ("Composed from the catalog (its metrics, columns and joins; no LLM): "
                   + "; ".join(composition.reading) + ". Check this reading answers your question.")  # fmt: skip
        answer.notes.insert(0, message)
        if composition.default_period is not None:
            answer.warnings.append(f"your question names no period: {composition.default_period} — name one "
                                   "(“last week”, “in September”) to change it")  # fmt: skip
        answer.notes = [n for n in answer.notes if not n.startswith("No LLM configured")]
        answer.notes.append("No LLM configured (BASTION_LLM_BASE_URL, BASTION_LLM_MODEL): the query was composed "
                            "from the catalog, not generated.")  # fmt: skip
        limit = imposed_limit(composition.sql, answer.dialect, answer.sql, answer.dialect)
        return {"answer": answer, "sql": answer.sql, "imposed_limit": limit}

    def _after_compose(self, state: State) -> str:
        if state.get("composition") is None:
            return "reuse" if self._best_reusable(state["answer"]) is not None else "finish"
        return "execute" if state["execute"] else "finish"

    def _reuse(self, state: State) -> State:
        answer = state["answer"]
        best = self._best_reusable(answer)
        assert best is not None and best.sql is not None
        answer.sql, answer.source = best.sql, "reused"
        answer.reused_queries = [best.hit.id]
        answer.tables = list(best.hit.tables)
        answer.warnings.extend(best.hit.warnings)
        started = time.perf_counter()
        source_dialect = self.service.index.query_dialect
        catalog = self.service.catalog
        rewrite = state.get("rewrite") or reparameterise(state["question"], best.hit.sql, catalog, source_dialect)
        why = list(rewrite.unresolved)
        status: Literal["reparameterised", "unchanged", "as_is"] = "unchanged" if why else "as_is"
        original = best.hit.sql
        if rewrite.changed and not why:
            try:
                validation = self.service.validate(rewrite.sql, source_dialect, state["clearance"])
            except SqlError as exc:
                why.append(f"the re-parameterised query could not be validated ({exc.code}: {exc.message[:160]})")
            else:
                if validation.ok and validation.guard.sql is not None:
                    answer.sql, status, original = validation.guard.sql, "reparameterised", rewrite.sql
                    answer.tables = validation.guard.tables
                else:
                    problems = [str(e) for e in validation.guard.errors[:2]] or [str(validation.explain_error)[:160]]
                    why.append("the re-parameterised query did not pass validation: " + "; ".join(problems))
            status = "reparameterised" if not why else "unchanged"
        as_of = str(catalog.as_of) if catalog.as_of else "today"
        message = reuse_message(rewrite, status, why, as_of)
        done = status == "reparameterised"
        answer.reuse = Reuse(
            query_id=best.hit.id, status=status, message=message, dates_differ=rewrite.dates_differ and not done,
            dates_before=rewrite.before, dates_after=rewrite.after if done else None,
            changes=rewrite.changes if done else [], kept=rewrite.kept, why=why,
        )  # fmt: skip
        if message:
            answer.notes.insert(0, message)  # up front: before the mode note and the rest
        self._timed(answer, "reparameterise", started)
        if answer.mode == "retrieval_only":
            answer.notes.append(f"The closest verified past query (score {best.hit.score:.2f}): “{best.hit.summary}”. "
                                "Check it answers your question.")  # fmt: skip
        limit = imposed_limit(original, source_dialect, answer.sql, answer.dialect)
        return {"answer": answer, "sql": answer.sql, "imposed_limit": limit}

    def _after_reuse(self, state: State) -> str:
        return "execute" if state["execute"] else "finish"

    def _generate(self, state: State) -> State:
        answer = state["answer"]
        catalog = self.service.catalog
        tables = [t for h in answer.candidate_tables if (t := catalog.table(h.table)) is not None and not t.deprecated]
        examples = [(q.hit.summary, q.sql) for q in answer.past_queries if q.valid_today and q.sql][:3]
        messages = build_messages(state["question"], tables, catalog, answer.dialect, examples, state["feedback"])
        started = time.perf_counter()
        try:
            reply = self.chat().invoke(messages)
        except Exception as exc:  # the LLM is an external service: any failure is reported, not raised
            answer.errors.append(Issue(code="llm_unavailable", message=f"the LLM call failed: {str(exc)[:300]}",
                                       hint="check BASTION_LLM_BASE_URL / BASTION_LLM_MODEL"))  # fmt: skip
            self._timed(answer, "llm", started)
            return {"answer": answer, "sql": None}
        self._timed(answer, "llm", started)
        answer.attempts += 1
        content = reply.content if isinstance(reply.content, str) else str(reply.content)
        answer.reused_queries = [q.hit.id for q in answer.past_queries if q.valid_today][:3]
        return {"answer": answer, "sql": extract_sql(content)}

    def _validate(self, state: State) -> State:
        answer = state["answer"]
        sql = state.get("sql")
        if not sql:
            return {"answer": answer}
        started = time.perf_counter()
        validation = self.service.validate(sql, None, state["clearance"])
        self._timed(answer, "validate", started)
        feedback = list(state["feedback"])
        if validation.ok and validation.guard.sql is not None:
            answer.sql = validation.guard.sql
            answer.source = "given" if answer.kind == "execution" else "generated"
            answer.tables = validation.guard.tables
            answer.errors = []
            answer.warnings.extend(w.message for w in validation.guard.warnings)
            limit = imposed_limit(sql, answer.dialect, validation.guard.sql, answer.dialect)
            return {"answer": answer, "sql": validation.guard.sql, "imposed_limit": limit}
        errors = list(validation.guard.errors)
        if validation.explain_error is not None:
            errors.append(Issue(code="explain_failed", message=validation.explain_error,
                                hint="the engine rejected the plan: check types, functions and joins"))  # fmt: skip
        answer.errors = errors
        feedback.append((sql, "\n".join(f"- {e}" for e in errors)))
        return {"answer": answer, "sql": None, "feedback": feedback}

    def _after_validate(self, state: State) -> str:
        answer = state["answer"]
        if answer.sql is not None and not answer.errors:
            return "execute" if state["execute"] or answer.kind == "execution" else "finish"
        if answer.kind == "execution" or any(e.code == "llm_unavailable" for e in answer.errors):
            return "finish"
        return "generate" if answer.attempts < MAX_ATTEMPTS else "finish"

    def _execute(self, state: State) -> State:
        answer = state["answer"]
        if answer.sql is None:
            return {"answer": answer}
        started = time.perf_counter()
        try:
            result = self.service.run(answer.sql, None, state["clearance"])
        except SqlError as exc:
            answer.errors.append(Issue(code=exc.code, message=exc.message))
            answer.errors.extend(exc.issues)
        else:
            rows = result.result
            answer.rows, answer.executed = rows, True
            if rows.row_count == 0:
                answer.warnings.append("the query returned no rows: check literal values against describe_table")
            imposed = state.get("imposed_limit")
            hint = "narrow the question or ask for a top N"
            if rows.truncated:
                answer.truncated = True
                why = f"the first {rows.row_count:,} rows only (the row cap); more rows exist"
                answer.warnings.insert(0, f"the result was truncated: {why} — {hint}")
            elif imposed is not None and rows.row_count >= imposed:
                answer.truncated = True
                why = f"it stops at the LIMIT {imposed:,} the guard adds; there may be more rows"
                answer.warnings.insert(0, f"the result was truncated: {why} — {hint}")
        self._timed(answer, "execute", started)
        return {"answer": answer}

    def _finish(self, state: State) -> State:
        answer = state["answer"]
        if answer.kind == "text_to_sql" and answer.sql is None and answer.mode == "llm" and answer.errors:
            answer.notes.append(f"No valid SQL after {answer.attempts} attempt(s); the errors are below.")
        if answer.sql is not None and state.get("dialect") and state["dialect"] != answer.dialect:
            translated = transpile(answer.sql, answer.dialect, str(state["dialect"]))
            answer.sql_in_dialect = translated.sql
            answer.warnings.extend(f"{state['dialect']}: {u}" for u in translated.unsupported)
        answer.warnings = list(dict.fromkeys(answer.warnings))
        return {"answer": answer}


_Condition = frozenset[tuple[str, str]]


def _outer_select(sql: str, dialect: str) -> exp.Select | None:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (ParseError, TokenError, ValueError):
        return None
    return tree if isinstance(tree, exp.Select) else tree.find(exp.Select)


def _conditions(sql: str, dialect: str) -> dict[str, _Condition] | None:
    """The value and flag conditions of a query's WHERE, per column (qualifiers dropped): `event_type <> 'X'`,
    `NOT is_secret`, `country IN (…)`. Date ranges and anything else are left out; None if it does not parse."""
    select = _outer_select(sql, dialect)
    if select is None:
        return None
    where = select.args.get("where")
    conjuncts = [] if where is None else list(where.this.flatten()) if isinstance(where.this, exp.And) else [where.this]
    found: dict[str, set[tuple[str, str]]] = {}
    for conjunct in conjuncts:
        negated = isinstance(conjunct, exp.Not)
        node = conjunct.this if negated else conjunct
        if isinstance(node, exp.Paren):
            node = node.this
        if isinstance(node, exp.Column):
            found.setdefault(node.name, set()).add(("flag", "false" if negated else "true"))
        elif isinstance(node, (exp.EQ, exp.NEQ)) and isinstance(node.this, exp.Column) and isinstance(
                node.expression, exp.Literal):  # fmt: skip
            equal = isinstance(node, exp.EQ) != negated
            found.setdefault(node.this.name, set()).add(("=" if equal else "<>", node.expression.name))
        elif isinstance(node, exp.In) and isinstance(node.this, exp.Column) and all(
                isinstance(v, exp.Literal) for v in node.expressions):  # fmt: skip
            values = ",".join(sorted(v.name for v in node.expressions))
            found.setdefault(node.this.name, set()).add(("not in" if negated else "in", values))
    return {column: frozenset(conditions) for column, conditions in found.items()}


def _aggregates(sql: str, dialect: str, columns: set[str]) -> bool:
    """The query aggregates every one of `columns` (sum, avg, … of it in its SELECT)."""
    select = _outer_select(sql, dialect)
    if select is None:
        return False
    aggregated = {c.name for item in select.expressions for agg in item.find_all(exp.AggFunc)
                  for c in agg.find_all(exp.Column)}  # fmt: skip
    return columns <= aggregated
