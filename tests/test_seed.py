"""The seed file: idempotent, builtins approved under team platform, refuses silent changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from bastion.builtins import LOCK_FILE, builtin_lock, definitions_resolver
from registry.context import RegistryContext
from registry.db.models import AdminEvent, ServerVersion
from registry.errors import Conflict, Invalid
from registry.services.seed import apply_seed, load_seed
from tests.helpers import Tokens


def seed(ctx: RegistryContext, path: Path | None = None):  # type: ignore[no-untyped-def]
    with ctx.db.transaction() as session:
        return apply_seed(
            session,
            load_seed(path or ctx.settings.seed_file),
            ctx.settings.review_requirements,
            definitions_resolver(ctx),
        )


def test_seed_is_idempotent(ctx: RegistryContext) -> None:
    first = seed(ctx)
    assert "version dev.bastion/registry@1.0.0" in first.created
    with ctx.db.session() as session:
        events = session.scalar(select(func.count()).select_from(AdminEvent))
    second = seed(ctx)
    assert second.created == [] and second.updated == []
    with ctx.db.session() as session:
        assert (
            session.scalar(select(func.count()).select_from(ServerVersion)) == 6
        )  # registry, rerank, dedupe, sql, parity and inference
        assert session.scalar(select(func.count()).select_from(AdminEvent)) == events


def test_seeded_builtin_is_approved_under_platform(ctx: RegistryContext, client: TestClient, tokens: Tokens) -> None:
    seed(ctx)
    entry = client.get(
        "/v0.1/servers/dev.bastion%2Fregistry/versions/latest", headers=tokens("ursula", ["analysts"])
    ).json()
    ours = entry["_meta"]["dev.bastion/registry"]
    assert ours["owner"]["team"] == "platform"
    assert ours["reviewStatus"] == "approved"
    assert {t["name"] for t in ours["tools"]} == {"search_servers", "check_access"}
    assert all(t["annotations"]["readOnlyHint"] for t in ours["tools"])


def test_changing_a_seeded_version_in_place_is_refused(ctx: RegistryContext, tmp_path: Path) -> None:
    seed(ctx)
    changed = tmp_path / "seed.yaml"
    changed.write_text(ctx.settings.seed_file.read_text().replace("builtin: registry", "tools: []\n    builtin: null"))
    with pytest.raises(Conflict, match="bump the version"):
        seed(ctx, changed)


def test_malformed_seed_is_reported(ctx: RegistryContext, tmp_path: Path) -> None:
    bad = tmp_path / "seed.yaml"
    bad.write_text("teams:\n  - name: Not Valid\n    supportChannel: x\n")
    with pytest.raises(Invalid, match=r"teams\.0\.name"):
        seed(ctx, bad)
    bad.write_text("teams: [unclosed")
    with pytest.raises(Invalid, match="not valid YAML"):
        seed(ctx, bad)


def test_seeded_rerank_builtin_is_published_read_only(ctx: RegistryContext, client: TestClient, tokens: Tokens) -> None:
    seed(ctx)
    entry = client.get("/v0.1/servers/dev.bastion%2Frerank/versions/latest", headers=tokens("ursula")).json()
    tools = entry["_meta"]["dev.bastion/registry"]["tools"]
    assert [t["name"] for t in tools] == ["rerank"]
    assert tools[0]["annotations"]["readOnlyHint"] is True and tools[0]["annotations"]["idempotentHint"] is True
    assert "candidates" in tools[0]["inputSchema"]["properties"]


def test_seeded_dedupe_builtin_asks_approval_for_learning_only(
    ctx: RegistryContext, client: TestClient, tokens: Tokens
) -> None:
    from governance import (
        Classification,
        Environment,
        Principal,
        ServerFacts,
        TeamFacts,
        ToolAnnotations,
        ToolFacts,
        evaluate,
    )

    seed(ctx)
    entry = client.get("/v0.1/servers/dev.bastion%2Fdedupe/versions/latest", headers=tokens("ursula")).json()
    tools = {t["name"]: t for t in entry["_meta"]["dev.bastion/registry"]["tools"]}
    assert set(tools) >= {"normalize_urls", "dedupe_urls", "explain_url", "learn_rules", "rules_diff"}
    facts = ServerFacts(
        name="dev.bastion/dedupe", environment=Environment.PROD, classification=Classification.INTERNAL,
        owner=TeamFacts(name="platform"), published_version="1.0.0",
    )  # fmt: skip
    user = Principal(subject="ursula")
    for name, tool in tools.items():
        hints = tool["annotations"]
        annotations = ToolAnnotations(
            read_only=hints["readOnlyHint"], destructive=hints["destructiveHint"],
            idempotent=hints["idempotentHint"], open_world=hints["openWorldHint"],
        )  # fmt: skip
        decision = evaluate(user, facts, [], ToolFacts(name=name, annotations=annotations))
        assert decision.allowed
        assert decision.requires_approval is (name == "learn_rules"), name


def test_seeded_sql_builtin_is_read_only_and_needs_no_approval(
    ctx: RegistryContext, client: TestClient, tokens: Tokens
) -> None:
    seed(ctx)
    entry = client.get("/v0.1/servers/dev.bastion%2Fsql/versions/latest", headers=tokens("ursula")).json()
    ours = entry["_meta"]["dev.bastion/registry"]
    assert ours["owner"]["team"] == "analytics" and ours["reviewStatus"] == "approved"
    tools = {t["name"]: t for t in ours["tools"]}
    assert set(tools) == {"search_tables", "search_queries", "describe_table", "validate_sql", "run_sql", "ask"}
    assert all(t["annotations"]["readOnlyHint"] and not t["annotations"]["destructiveHint"] for t in tools.values())
    assert tools["ask"]["annotations"]["openWorldHint"]  # it calls the configured LLM


def test_a_builtin_whose_tools_changed_has_a_new_version(ctx: RegistryContext) -> None:
    """A deployment keeps the builtin versions it registered. Tools changed under the same version make `registry
    seed` refuse ("bump the version") and the gateway withhold them as drifted. Before: the sql builtin's `ask`
    schema changed (Answer.source "composed", Answer.reading) under dev.bastion/sql 1.2.0 and no test noticed."""
    lock = json.loads(LOCK_FILE.read_text())
    current = builtin_lock(ctx, ctx.settings.seed_file)
    for name, now in current.items():
        was = lock.get(name)
        if was is not None and was["tools"] != now["tools"]:
            changed = sorted(t for t in {*was["tools"], *now["tools"]} if was["tools"].get(t) != now["tools"].get(t))
            assert now["version"] != was["version"], (
                f"{name}'s tools changed ({', '.join(changed)}) under version {was['version']}: bump its version in "
                "seed/registry.yaml, then run scripts/lock_builtins.py"
            )
    assert current == lock, "seed/builtins.lock.json is out of date: run scripts/lock_builtins.py"
