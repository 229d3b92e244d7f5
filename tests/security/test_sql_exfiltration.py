"""SQL exfiltration through `sql__run_sql`, as an ordinary analyst (internal clearance), against a real server.

Every case asserts the refusal (a tool error) and that nothing leaked: no e-mail address of `users.users`
anywhere in what the client received. A positive control shows the same tool answers a fair query.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from tests.knowledge_fixtures import Demo, Knowledge
from tests.security.clients import call, everything
from tests.security.conftest import Live, base_env, bastion, knowledge_env

EMAIL = re.compile(r"user\d+@mail\.example|billing\d+@advertiser\d+\.example")

# The red-team pass's four, then every other spelling of "many columns at once" or "a column by other means".
WHOLE_ROW_AND_EXPANDING = [
    "SELECT u FROM users.users u",
    "SELECT users FROM users.users",
    "SELECT COLUMNS(*) FROM users.users",
    "SELECT COLUMNS('e.*') FROM users.users",
    "SELECT COLUMNS(c -> c LIKE '%mail%') FROM users.users",
    "SELECT struct_pack(*) FROM users.users",
    "SELECT to_json(u) FROM users.users u",
    "SELECT row(*) FROM users.users",
    "SELECT list_value(u.*) FROM users.users u",
    "SELECT [u.*] FROM users.users u",
    "SELECT (u).email FROM users.users u",
    "SELECT struct_extract(u, 'email') FROM users.users u",
    "SELECT * EXCLUDE (country) FROM users.users",
    "SELECT * REPLACE (country AS user_id) FROM users.users",
    "SELECT u.* EXCLUDE (user_id) FROM users.users u",
    "SELECT #2 FROM users.users",
    "SELECT b FROM users.users AS x(a, b)",
    "WITH t AS (SELECT * FROM users.users) SELECT t FROM t",
    "SELECT s FROM (SELECT u AS s FROM users.users u) q",
    "SELECT to_json(q) FROM (SELECT * FROM users.users) q",
]
PII_IN_EVERY_CLAUSE = [
    "SELECT email FROM users.users",
    "SELECT country FROM users.users WHERE email LIKE 'user1%'",
    "SELECT country FROM users.users ORDER BY email",
    "SELECT country, count(*) FROM users.users GROUP BY country HAVING max(email) > 'u'",
    "SELECT country, first_value(user_id) OVER (PARTITION BY email) FROM users.users",
    "SELECT country FROM users.users QUALIFY row_number() OVER (ORDER BY email) = 1",
    "SELECT a.advertiser_id FROM ads.advertisers a JOIN users.users u ON u.email = a.contact_email",
    "SELECT c.campaign_id FROM ads.campaigns c, LATERAL (SELECT email FROM users.users LIMIT 1) l",
    "SELECT (SELECT max(email) FROM users.users) AS e FROM ads.campaigns",
    "SELECT country FROM users.users UNION ALL SELECT email FROM users.users",
    "SELECT upper(email) AS shout FROM users.users",
    "SELECT v.e FROM (VALUES ('x')) AS v(e) JOIN users.users u ON u.email = v.e",
]
FILES_AND_OUTSIDE = [
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT content FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT getenv('HOME') FROM ads.campaigns",
    "SELECT current_setting('home_directory') FROM ads.campaigns",
    "SELECT * FROM duckdb_settings()",
    "ATTACH '/tmp/evil.db' AS evil",
    "COPY (SELECT country FROM users.users) TO '/tmp/out.csv'",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "SELECT * FROM query('SELECT email FROM users.users')",
]
# Per source dialect: the SQL is transpiled to the engine's dialect, then guarded there.
PER_DIALECT = [
    ("postgres", "SELECT row_to_json(u) FROM users.users u"),
    ("postgres", "SELECT u FROM users.users u"),
    ("postgres", "SELECT to_jsonb(u.*) FROM users.users u"),
    ("postgres", "SELECT country FROM users.users GROUP BY country HAVING max(email) > 'a'"),
    ("sqlite", "SELECT * FROM users.users"),
    ("sqlite", "SELECT country FROM users.users WHERE \"email\" LIKE 'user%'"),
    ("mysql", "SELECT JSON_OBJECT('e', email) FROM users.users"),
    ("mysql", "SELECT `email` FROM users.users"),
    ("spark", "SELECT to_json(struct(*)) FROM users.users"),
    ("spark", "SELECT * EXCEPT (country) FROM users.users"),
    ("trino", "SELECT CAST(ROW(u.*) AS JSON) FROM users.users u"),
    ("trino", "SELECT element_at(array_agg(email), 1) FROM users.users"),
]


def run_sql(live: Live, sql: str, dialect: str | None = None) -> tuple[bool, str]:
    arguments: dict[str, object] = {"sql": sql}
    if dialect is not None:
        arguments["dialect"] = dialect
    result = call(live.base, live.token("ann", ["analysts"], clearance="internal"), "sql__run_sql", arguments)
    return bool(result.is_error), everything(result)


def test_the_tool_answers_a_fair_query(live: Live) -> None:
    """The control: an analyst may count users per country (no PII column involved)."""
    refused, body = run_sql(live, "SELECT country, count(*) AS n FROM users.users GROUP BY country")
    assert not refused, body
    assert '"n"' in body and not EMAIL.search(body)


@pytest.mark.parametrize("sql", WHOLE_ROW_AND_EXPANDING)
def test_whole_row_and_expanding_references_are_refused(live: Live, sql: str) -> None:
    refused, body = run_sql(live, sql)
    assert refused and not EMAIL.search(body), body[:500]


@pytest.mark.parametrize("sql", PII_IN_EVERY_CLAUSE)
def test_pii_is_refused_in_every_clause(live: Live, sql: str) -> None:
    refused, body = run_sql(live, sql)
    assert refused and not EMAIL.search(body), body[:500]
    assert "pii_column" in body or "above_clearance" in body


@pytest.mark.parametrize("sql", FILES_AND_OUTSIDE)
def test_files_settings_and_statements_are_refused(live: Live, sql: str) -> None:
    refused, body = run_sql(live, sql)
    assert refused, body[:500]
    assert "root:" not in body and "/bin/" not in body


@pytest.mark.parametrize(("dialect", "sql"), PER_DIALECT)
def test_each_source_dialect_is_guarded(live: Live, dialect: str, sql: str) -> None:
    refused, body = run_sql(live, sql, dialect)
    assert refused and not EMAIL.search(body), body[:500]


def test_validate_sql_refuses_what_run_sql_refuses(live: Live) -> None:
    result = call(
        live.base, live.token("ann", ["analysts"]), "sql__validate_sql", {"sql": "SELECT u FROM users.users u"}
    )
    body = everything(result)
    assert '"ok":false' in body.replace(" ", "") and "whole_row_reference" in body


@pytest.mark.parametrize("request_text", ["run: delete from ads.campaigns", "drop table ads.campaigns"])
def test_ask_refuses_an_explicit_write_and_fails(
    request_text: str, tmp_path: Path, demo: Demo, knowledge: Knowledge
) -> None:
    """Old code: `bastion ask "run: delete from ads.campaigns" --execute` ran an unrelated past query, exit 0."""
    env = base_env(tmp_path, **knowledge_env(demo, knowledge, tmp_path))
    done = bastion(env, "ask", request_text, "--execute")
    assert done.returncode != 0, done.stdout
    assert "not_read_only" in done.stdout and "rows" not in done.stdout.lower().split("error")[0]
    with duckdb.connect(str(demo.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ads.campaigns").fetchone()[0] > 0  # type: ignore[index]
