"""Governance: classification, reviews, lifecycle, principals and policy evaluation.

Pure logic with no I/O and no dependency on any other Bastion package.
"""

from governance.classification import Classification, highest
from governance.integrity import ITEM_KINDS, canonical_json, item_definition_hash, tool_definition_hash
from governance.lifecycle import EDITABLE, PUBLISHED, TRANSITIONS, TransitionError, VersionStatus, check_transition
from governance.lint import Finding, lint_description
from governance.policy import (
    ClientRule,
    Decision,
    Environment,
    PolicyRule,
    ServerFacts,
    ToolAnnotations,
    ToolFacts,
    evaluate,
)
from governance.principal import SYSTEM, Principal, Role, TeamFacts, current_approval, current_principal
from governance.redaction import REDACTED, arguments_hash, redact
from governance.reviews import (
    DEFAULT_REQUIRED_REVIEWS,
    ReviewDecision,
    ReviewKind,
    ReviewRequirements,
    latest_decisions,
)

__all__ = [
    "DEFAULT_REQUIRED_REVIEWS",
    "EDITABLE",
    "ITEM_KINDS",
    "PUBLISHED",
    "REDACTED",
    "SYSTEM",
    "TRANSITIONS",
    "Classification",
    "ClientRule",
    "Decision",
    "Environment",
    "Finding",
    "PolicyRule",
    "Principal",
    "ReviewDecision",
    "ReviewKind",
    "ReviewRequirements",
    "Role",
    "ServerFacts",
    "TeamFacts",
    "ToolAnnotations",
    "ToolFacts",
    "TransitionError",
    "VersionStatus",
    "arguments_hash",
    "canonical_json",
    "check_transition",
    "current_approval",
    "current_principal",
    "evaluate",
    "highest",
    "item_definition_hash",
    "latest_decisions",
    "lint_description",
    "redact",
    "tool_definition_hash",
]
