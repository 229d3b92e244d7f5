"""Alembic, configured in code so migrations run the same from the CLI, tests and `make run`."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in passwords.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def revision(database_url: str, message: str) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=True)


@functools.cache
def head() -> str:
    """The revision this version of Bastion needs."""
    found = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert found is not None
    return found


def current(engine: Engine) -> str | None:
    """The database's revision (None: never migrated). Raises when the database is unreachable."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def schema_problem(engine: Engine) -> str | None:
    """Why the schema is not what this version needs (None when it is at head)."""
    found = current(engine)
    if found == head():
        return None
    if found is None:
        return "the database has not been migrated: run `bastion db upgrade`"
    return f"the database schema is at revision {found}, this version needs {head()}: run `bastion db upgrade`"


_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


def grant_app_role(engine: Engine, role: str) -> list[str]:
    """PostgreSQL: let `role` run the app without being able to rewrite the audit log.

    The role gets what the app needs on every table, but only SELECT and INSERT on `audit_events`: it can
    neither UPDATE, DELETE nor TRUNCATE it, and — not owning it — cannot disable its triggers or drop it.
    Run migrations (and this) as the tables' owner, the app as `role`. Idempotent; run after every upgrade.
    """
    if engine.dialect.name != "postgresql":
        raise ValueError("a separate application role applies to PostgreSQL only")
    if not _ROLE.fullmatch(role):
        raise ValueError(f"{role[:70]!r} is not a plain role name")
    statements = [
        f'GRANT USAGE ON SCHEMA public TO "{role}"',
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
        f'REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM "{role}"',
        f'REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM "{role}"',
        f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    return statements


def can_rewrite_audit(engine: Engine) -> bool:
    """PostgreSQL: whether the connected role could disable the audit log's triggers (owner or superuser)."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT r.rolsuper OR pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_class c "
                "JOIN pg_roles r ON r.rolname = current_user WHERE c.relname = 'audit_events'"
            )
        ).first()
    return bool(row and row[0])
