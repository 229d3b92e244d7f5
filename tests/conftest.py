"""Shared fixtures: a migrated database per backend, settings, an app client, token minting."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bastion.app import create_app
from registry.context import RegistryContext
from registry.db import upgrade
from registry.db.models import Base
from registry.settings import RegistrySettings, normalize_database_url
from tests.helpers import Api, Tokens

pytest_plugins = ["tests.gateway_fixtures", "tests.knowledge_fixtures", "tests.browser"]

TEST_SECRET = "test-secret-" + "x" * 40


def service_url(env: str, what: str) -> str:
    """A service URL from the environment, or a visible skip (a failure when CI requires it)."""
    url = os.environ.get(env)
    if url:
        return url
    message = f"{env} is not set: {what} tests need it (CI sets it; see .ci/run)"
    if os.environ.get("BASTION_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "registry.db"
    upgrade(f"sqlite:///{path}")
    return path


@contextmanager
def scratch_postgres(migrate: bool = True) -> Iterator[str]:
    """A new database on the configured PostgreSQL server (migrated to head unless told not to), dropped after."""
    base = normalize_database_url(service_url("BASTION_TEST_POSTGRES_URL", "PostgreSQL"))
    name = f"bastion_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        if migrate:
            upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database on the configured server, migrated once, dropped at the end."""
    with scratch_postgres() as url:
        yield url


def _truncate(url: str) -> None:
    engine = create_engine(url)
    # Keep registry_revision: caches rely on its counter only ever growing.
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name != "registry_revision")
    with engine.begin() as conn:
        # Test-only reset: the audit log refuses TRUNCATE through a trigger.
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "registry.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> RegistrySettings:
    return RegistrySettings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        jwt_secret=TEST_SECRET,
        public_url="http://testserver",
        seed_file=Path(__file__).parent.parent / "seed" / "registry.yaml",
    )


@pytest.fixture
def ctx(settings: RegistrySettings) -> Iterator[RegistryContext]:
    context = RegistryContext.create(settings)
    yield context
    context.db.dispose()


@pytest.fixture
def client(settings: RegistrySettings, ctx: RegistryContext) -> Iterator[TestClient]:
    with TestClient(create_app(settings, ctx), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def tokens(settings: RegistrySettings) -> Tokens:
    return Tokens(settings)


@pytest.fixture
def api(client: TestClient, tokens: Tokens) -> Api:
    return Api(client, tokens)
