"""Health reflects the database; migrations and models never drift apart."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from bastion.app import create_app
from registry.context import RegistryContext
from registry.db.models import Base
from registry.settings import RegistrySettings


def test_healthz_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_503_when_database_is_unreachable(tmp_path: Path) -> None:
    # Nothing listens on port 1: a real connection failure, not a mock.
    settings = RegistrySettings(
        data_dir=tmp_path, database_url="postgresql://postgres@127.0.0.1:1/nope", jwt_secret="s" * 40
    )
    ctx = RegistryContext.create(settings)
    with TestClient(create_app(settings, ctx)) as client:
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "Traceback" not in response.text


def test_migrations_match_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_audit_rows_cannot_be_changed_or_deleted(db_url: str) -> None:
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_events (at, kind, subject, groups, decision, outcome, latency_ms, result_size,"
                " minutes_saved) VALUES (CURRENT_TIMESTAMP, 'call', 'u', '[]', 'allowed', 'ok', 1, 1, 0)"
            )
        )
    for statement in ("UPDATE audit_events SET subject = 'someone-else'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT subject FROM audit_events")).scalar_one() == "u"
    engine.dispose()


def test_web_page_is_served(client: TestClient) -> None:
    home = client.get("/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/ui/"
    page = client.get("/ui/")
    assert page.status_code == 200
    assert "<title>Bastion console</title>" in page.text and "/ui/app.js" in page.text
    static = Path(__file__).parent.parent / "registry/api/static"
    modules = sorted(p.name for p in static.glob("*.js"))
    assert {"app.js", "core.js", "servers.js", "reviews.js", "approvals.js", "audit.js", "chat.js"} <= set(modules)
    for name in modules:  # user data is never parsed as HTML, in any of the page's modules
        script = client.get(f"/ui/{name}")
        assert script.status_code == 200 and "javascript" in script.headers["content-type"], name
        for sink in ("innerHTML", "outerHTML =", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in script.text, f"{name} uses {sink}"
