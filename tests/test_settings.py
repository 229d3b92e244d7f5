"""Settings from BASTION_* variables, and the README documenting every one of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bastion.app import create_app
from governance import Classification, ReviewKind
from registry.context import RegistryContext
from registry.settings import RegistrySettings, normalize_database_url
from tests.helpers import Api, Tokens

README = Path(__file__).parent.parent / "README.md"


def test_env_variables_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_ADMIN_GROUPS", "ops, platform-admins")
    monkeypatch.setenv("BASTION_REQUIRED_REVIEWS", '{"public": ["security", "genai"]}')
    monkeypatch.setenv("BASTION_DEFAULT_CLEARANCE", "public")
    settings = RegistrySettings()
    assert settings.admin_groups == ["ops", "platform-admins"]
    assert settings.review_requirements.required_for(Classification.PUBLIC) == [ReviewKind.SECURITY, ReviewKind.GENAI]
    assert settings.default_clearance is Classification.PUBLIC


def test_postgres_urls_use_psycopg3() -> None:
    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_generated_secret_is_stable_and_private(tmp_path: Path) -> None:
    settings = RegistrySettings(data_dir=tmp_path)
    first = settings.hs_secret()
    assert RegistrySettings(data_dir=tmp_path).hs_secret() == first
    assert len(first) >= 48
    assert (tmp_path / "jwt-secret").stat().st_mode & 0o077 == 0


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    documented = set(re.findall(r"`(BASTION_[A-Z_]+)`", text))
    from tools.dedupe.service import DedupeSettings
    from tools.rerank.server import RerankSettings

    expected = {f"BASTION_{name.upper()}" for name in RegistrySettings.model_fields}
    expected |= {f"BASTION_RERANK_{name.upper()}" for name in RerankSettings.model_fields}
    expected |= {f"BASTION_DEDUPE_{name.upper()}" for name in DedupeSettings.model_fields}
    from embeddings.settings import IndexSettings, LLMSettings
    from tools.sql.service import SqlSettings

    expected |= {f"BASTION_{name.upper()}" for name in IndexSettings.model_fields}
    expected |= {f"BASTION_LLM_{name.upper()}" for name in LLMSettings.model_fields}
    expected |= {f"BASTION_SQL_{name.upper()}" for name in SqlSettings.model_fields}
    from tools.parity.server import ParitySettings

    expected |= {f"BASTION_PARITY_{name.upper()}" for name in ParitySettings.model_fields}
    from tools.inference.server import InferenceSettings

    expected |= {f"BASTION_INFERENCE_{name.upper()}" for name in InferenceSettings.model_fields}
    assert expected <= documented, f"README lacks {sorted(expected - documented)}"


def test_anonymous_discovery_when_enabled(settings: RegistrySettings, tokens: Tokens) -> None:
    open_settings = settings.model_copy(update={"discovery_anonymous": True})
    ctx = RegistryContext.create(open_settings)
    with TestClient(create_app(open_settings, ctx)) as client:
        api = Api(client, tokens)
        api.team("t")
        api.server("dev.bastion/public", "t", environment="prod")
        api.publish("dev.bastion/public", "1.0.0")
        api.server("dev.bastion/lab", "t", environment="dev")
        api.publish("dev.bastion/lab", "1.0.0")
        body = client.get("/v0.1/servers").json()
        assert [e["server"]["name"] for e in body["servers"]] == ["dev.bastion/public"]
        assert client.get("/v1/catalog").status_code == 401  # only discovery is opened
    ctx.db.dispose()
