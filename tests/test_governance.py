"""The pure governance core: classification, reviews, lifecycle, policy evaluation."""

from __future__ import annotations

import pytest

from governance import (
    Classification,
    Environment,
    PolicyRule,
    Principal,
    ReviewDecision,
    ReviewKind,
    ReviewRequirements,
    ServerFacts,
    TeamFacts,
    ToolAnnotations,
    ToolFacts,
    TransitionError,
    VersionStatus,
    check_transition,
    evaluate,
    latest_decisions,
)

C = Classification


def test_clearance_covers_its_level_and_below_only() -> None:
    assert C.CONFIDENTIAL.covers(C.PUBLIC)
    assert C.CONFIDENTIAL.covers(C.CONFIDENTIAL)
    assert not C.CONFIDENTIAL.covers(C.RESTRICTED)
    assert not C.PUBLIC.covers(C.INTERNAL)


def test_default_review_requirements_follow_classification() -> None:
    req = ReviewRequirements()
    assert req.required_for(C.PUBLIC) == [ReviewKind.SECURITY]
    assert req.required_for(C.INTERNAL) == [ReviewKind.SECURITY]
    assert req.required_for(C.CONFIDENTIAL) == [ReviewKind.SECURITY, ReviewKind.PRIVACY]
    assert req.required_for(C.RESTRICTED) == [ReviewKind.SECURITY, ReviewKind.PRIVACY, ReviewKind.GENAI]


def test_partial_custom_mapping_never_means_no_review() -> None:
    req = ReviewRequirements(by_classification={C.INTERNAL: [ReviewKind.SECURITY, ReviewKind.GENAI]})
    # Levels above a configured one inherit it; levels below fall back to security.
    assert req.required_for(C.RESTRICTED) == [ReviewKind.SECURITY, ReviewKind.GENAI]
    assert req.required_for(C.PUBLIC) == [ReviewKind.SECURITY]


def test_latest_decision_per_kind_wins() -> None:
    decisions = latest_decisions(
        [
            (ReviewKind.SECURITY, ReviewDecision.REJECT),
            (ReviewKind.SECURITY, ReviewDecision.APPROVE),
            (ReviewKind.PRIVACY, ReviewDecision.APPROVE),
        ]
    )
    assert ReviewRequirements().missing(C.RESTRICTED, decisions) == [ReviewKind.GENAI]


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("draft", "in_review"),
        ("in_review", "approved"),
        ("in_review", "rejected"),
        ("approved", "deprecated"),
        ("approved", "revoked"),
        ("deprecated", "approved"),
        ("deprecated", "revoked"),
    ],
)
def test_legal_transitions(current: str, target: str) -> None:
    check_transition(VersionStatus(current), VersionStatus(target))


@pytest.mark.parametrize(
    ("current", "target"),
    [("draft", "approved"), ("rejected", "in_review"), ("revoked", "approved"), ("approved", "draft")],
)
def test_illegal_transitions_say_what_is_allowed(current: str, target: str) -> None:
    with pytest.raises(TransitionError) as info:
        check_transition(VersionStatus(current), VersionStatus(target))
    message = str(info.value)
    assert f"from {current} to {target}" in message
    assert "allowed from" in message or "is final" in message


TEAM = TeamFacts(name="ads", groups=frozenset({"ads-eng"}), members=frozenset({"owner-olga"}))


def server(**overrides: object) -> ServerFacts:
    fields: dict[str, object] = {
        "name": "dev.bastion/ads",
        "environment": Environment.PROD,
        "classification": C.INTERNAL,
        "owner": TEAM,
        "published_version": "1.0.0",
    }
    fields.update(overrides)
    return ServerFacts.model_validate(fields)


def user(*groups: str, clearance: Classification = C.INTERNAL, subject: str = "ursula") -> Principal:
    return Principal(subject=subject, groups=frozenset(groups), clearance=clearance)


def test_unpublished_server_is_denied_by_lifecycle() -> None:
    decision = evaluate(user(), server(published_version=None), [])
    assert not decision.allowed
    assert decision.denied_by == "lifecycle"


def test_group_allowlist_gates_the_server() -> None:
    facts = server(allowed_groups=frozenset({"ads-eng"}))
    assert evaluate(user("ads-eng"), facts, []).allowed
    denied = evaluate(user("analysts"), facts, [])
    assert not denied.allowed
    assert denied.denied_by == "server.allowed_groups"
    assert "ads-eng" in denied.reasons[-1]


def test_clearance_must_cover_server_and_tool_policy() -> None:
    facts = server(classification=C.CONFIDENTIAL)
    assert evaluate(user(clearance=C.INTERNAL), facts, []).denied_by == "classification"
    assert evaluate(user(clearance=C.CONFIDENTIAL), facts, []).allowed
    rules = [PolicyRule(tool="revenue", required_clearance=C.RESTRICTED)]
    tool = ToolFacts(name="revenue", annotations=ToolAnnotations(read_only=True, destructive=False))
    assert evaluate(user(clearance=C.CONFIDENTIAL), facts, rules, tool).denied_by == "classification"
    # The tool rule does not affect other tools.
    other = ToolFacts(name="other", annotations=ToolAnnotations(read_only=True, destructive=False))
    assert evaluate(user(clearance=C.CONFIDENTIAL), facts, rules, other).allowed


def test_tool_policy_limits_groups_for_that_tool_only() -> None:
    rules = [PolicyRule(tool="get_revenue_metrics", allowed_groups=frozenset({"ads-eng"}))]
    revenue = ToolFacts(name="get_revenue_metrics", annotations=ToolAnnotations(read_only=True, destructive=False))
    denied = evaluate(user("analysts"), server(), rules, revenue)
    assert denied.denied_by == "policy.tool.allowed_groups"
    assert evaluate(user("ads-eng"), server(), rules, revenue).allowed


def test_dev_servers_are_for_their_team_only() -> None:
    facts = server(environment=Environment.DEV)
    assert evaluate(user("analysts"), facts, []).denied_by == "environment"
    assert evaluate(user("ads-eng"), facts, []).allowed
    assert evaluate(user(subject="owner-olga"), facts, []).allowed


def test_approval_required_by_policy_or_by_annotations() -> None:
    read_only = ToolFacts(name="q", annotations=ToolAnnotations(read_only=True, destructive=False))
    assert not evaluate(user(), server(), [], read_only).requires_approval
    writes = ToolFacts(name="w", annotations=ToolAnnotations(read_only=False, destructive=False))
    decision = evaluate(user(), server(), [], writes)
    assert decision.allowed and decision.requires_approval
    assert any("not read-only" in r for r in decision.approval_reasons)
    policy = [PolicyRule(tool="q", require_approval=True)]
    assert evaluate(user(), server(), policy, read_only).requires_approval


def test_credential_scope_limits_servers() -> None:
    scoped = Principal(subject="key:ci", server_scope=frozenset({"dev.bastion/other"}))
    assert evaluate(scoped, server(), []).denied_by == "credential.scope"
