"""File access through the tools: parity inputs and dedupe logs stay inside their directories, and SQL text in
a parity input passes the same guard as `run_sql` (old code: `sql:SELECT content FROM read_text('/etc/passwd')`
returned the file in the findings' examples; `table:users.users` with `features: ["email"]` returned e-mails).
"""

from __future__ import annotations

import re

import duckdb
import pytest

from tests.security.clients import call, everything, text
from tests.security.conftest import Live

EMAIL = re.compile(r"user\d+@mail\.example")
PASSWD = re.compile(r"root:.*:0:0:")

PARITY_INPUTS = [
    "sql:SELECT content AS user_id FROM read_text('/etc/passwd')",
    "sql:SELECT * FROM read_csv('/etc/passwd')",
    "sql:SELECT file AS user_id FROM glob('/etc/*')",
    "sql:SELECT * FROM '/etc/passwd'",
    "sql:SELECT user_id, email FROM users.users",
    "sql:SELECT u FROM users.users u",
    "sql:SELECT * FROM users.users",
    "sql:SELECT user_id, country FROM users.users; DROP TABLE users.users",
    "../../../../etc/passwd",
    "/etc/passwd",
    "../parity/../../registry.db",
]


@pytest.mark.parametrize("source", PARITY_INPUTS)
def test_parity_inputs_cannot_read_files_or_pii(live: Live, source: str) -> None:
    result = call(live.base, live.token("ann", ["analysts"]), "parity__audit_parity",
                  {"training": source, "serving": "table:users.users", "keys": ["user_id"]})  # fmt: skip
    body = everything(result)
    assert result.is_error, body[:500]
    assert not PASSWD.search(body) and not EMAIL.search(body)


def test_parity_table_input_withholds_pii_features(live: Live) -> None:
    result = call(live.base, live.token("ann", ["analysts"]), "parity__audit_parity",
                  {"training": "table:users.users", "serving": "table:users.users", "keys": ["user_id"],
                   "features": ["email"]})  # fmt: skip
    assert result.is_error and "withheld" in text(result) and not EMAIL.search(everything(result))


def test_parity_version_column_cannot_list_a_pii_column(live: Live) -> None:
    result = call(live.base, live.token("ann", ["analysts"]), "parity__compare_embeddings",
                  {"training": "sql:SELECT user_id, [1.0] AS v, email AS m FROM users.users", "serving":
                   "table:users.users", "key": "user_id", "column": "v", "version_column": "m"})  # fmt: skip
    assert result.is_error and not EMAIL.search(everything(result))


def test_parity_findings_redact_personal_data_in_files(live: Live) -> None:
    """A log file in the parity directory with an e-mail column: the mismatch is reported, the addresses not."""
    root = live.data_dir / "parity"
    root.mkdir(exist_ok=True)
    con = duckdb.connect()
    con.execute(f"COPY (SELECT i AS id, 'user' || i || '@mail.example' AS email FROM range(300) t(i)) "
                f"TO '{root / 'pii_train.parquet'}'")  # fmt: skip
    con.execute(f"COPY (SELECT i AS id, 'user' || (i + 1) || '@mail.example' AS email FROM range(300) t(i)) "
                f"TO '{root / 'pii_serve.parquet'}'")  # fmt: skip
    con.close()
    result = call(live.base, live.token("ann", ["analysts"]), "parity__audit_parity",
                  {"training": "pii_train.parquet", "serving": "pii_serve.parquet", "keys": ["id"]})  # fmt: skip
    body = everything(result)
    assert not result.is_error, body[:500]
    assert "email" in (result.structured_content or {}).get("flagged_features", [])
    assert not EMAIL.search(body) and "redacted:" in body


@pytest.mark.parametrize("source", ["../../../../etc/passwd", "/etc/passwd", "../registry.db"])
def test_dedupe_learning_reads_logs_from_its_directory_only(live: Live, source: str) -> None:
    """learn_rules needs approval; an admin approves it here so the source check itself is what refuses."""
    from tests.security.test_approvals import decide

    token = live.token("root-learner", ["bastion-admins"], clearance="restricted")
    parked = call(live.base, token, "dedupe__learn_rules", {"domain": "shop.example", "source": source})
    approval = (parked.structured_content or {}).get("approvalId")
    assert approval, text(parked)
    assert decide(live, approval, live.admin).status_code == 200
    result = call(live.base, token, "dedupe__learn_rules",
                  {"domain": "shop.example", "source": source, "_approval_id": approval})  # fmt: skip
    assert result.is_error and not PASSWD.search(everything(result))
    assert "outside the log directory" in text(result) or "no log named" in text(result)
