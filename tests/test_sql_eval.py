"""The guard evaluation's mutations are realistic and land where they claim; none crashes the harness."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp

from governance.catalog import Catalog, Column, Table
from governance.sqlguard import GuardPolicy, check
from tools.sql.evaluation import CLAUSES, MUTATIONS, Inapplicable, mutate

CATALOG = Catalog(
    tables={
        "orders": Table(
            name="orders", columns=[Column(name=c) for c in ("order_id", "customer_id", "amount", "placed")]
        ),
        "customers": Table(name="customers", columns=[Column(name=c) for c in ("customer_id", "region", "joined")]),
        "refunds": Table(name="refunds", columns=[Column(name=c) for c in ("refund_id", "reason", "refunded_at")]),
    }
)
POLICY = GuardPolicy(partition_filter_min_rows=None)
JOINED = (
    "SELECT o.customer_id, sum(o.amount) AS total FROM orders AS o JOIN customers AS c "
    "ON o.customer_id = c.customer_id WHERE c.region = 'EU' GROUP BY o.customer_id HAVING sum(o.amount) > 10 "
    "ORDER BY total"
)
QUERIES = [JOINED, "SELECT count(*) FROM orders", "SELECT 1 FROM orders", "SELECT * FROM customers"]


def _distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


@pytest.mark.parametrize("sql", QUERIES)
@pytest.mark.parametrize("kind", MUTATIONS)
def test_every_mutation_is_refused_or_inapplicable_and_never_crashes(kind: str, sql: str) -> None:
    gold = check(sql, CATALOG, "postgres", POLICY)
    assert gold.ok, gold.errors
    for n in range(6):  # several positions
        try:
            mutated, catalog = mutate(kind, sql, "postgres", CATALOG, gold.columns, n)
        except Inapplicable:
            assert kind.endswith("join_on") or kind in ("wrong_alias", "pii_column") or "typo" in kind
            continue
        result = check(mutated, catalog, "postgres", POLICY)
        assert not result.ok, (kind, mutated)


@pytest.mark.parametrize("clause", CLAUSES)
def test_an_unknown_column_lands_in_the_clause_it_names(clause: str) -> None:
    for family in ("sibling_column", "typo"):
        mutated, _ = mutate(f"{family}@{clause}", JOINED, "postgres", CATALOG, [], 3)
        tree = sqlglot.parse_one(mutated, read="postgres")
        known = {c.name for t in CATALOG.tables.values() for c in t.columns if t.name in ("orders", "customers")}
        aliases = {"total", "mutation_rank"}
        strangers = [c for c in tree.find_all(exp.Column) if c.name not in known | aliases]
        assert len(strangers) == 1, mutated
        stranger = strangers[0]
        holder = {
            "select": exp.Select, "where": exp.Where, "group_by": exp.Group, "having": exp.Having,
            "order_by": exp.Order, "join_on": exp.Join, "window": exp.Window,
        }[clause]  # fmt: skip
        parent = stranger.find_ancestor(holder)
        if clause == "select":
            assert stranger.find_ancestor(exp.Where, exp.Group, exp.Having, exp.Order, exp.Join, exp.Window) is None
        else:
            assert parent is not None, (clause, mutated)
        if family == "sibling_column":  # a real column of a table the query does not read
            assert stranger.name in {c.name for c in CATALOG.tables["refunds"].columns}
        else:  # a near miss of a column the query can see
            assert min(_distance(stranger.name, k) for k in known) in (1, 2)


def test_a_query_without_a_column_is_mutated_by_adding_one_not_by_crashing() -> None:
    mutated, _ = mutate("typo@where", "SELECT count(*) FROM orders", "postgres", CATALOG, [], 0)
    assert "WHERE NOT" in mutated and not check(mutated, CATALOG, "postgres", POLICY).ok
    with pytest.raises(Inapplicable):
        mutate("sibling_column@join_on", "SELECT count(*) FROM orders", "postgres", CATALOG, [], 0)


def test_select_1_is_no_longer_counted_as_garbage() -> None:
    garbage = {mutate("garbage", "SELECT * FROM orders", "postgres", CATALOG, [], n)[0] for n in range(20)}
    assert "SELECT 1" not in garbage
    assert all(not check(g, CATALOG, "postgres", POLICY).ok for g in garbage)
