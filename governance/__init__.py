"""Governance: classification, reviews, lifecycle, principals and policy evaluation.

Pure logic with no I/O and no dependency on any other Bastion package.
"""

from governance.classification import Classification, highest
from governance.integrity import canonical_json, tool_definition_hash
from governance.lifecycle import EDITABLE, PUBLISHED, TRANSITIONS, TransitionError, VersionStatus, check_transition
from governance.policy import (
    Decision,
    Environment,
    PolicyRule,
    ServerFacts,
    ToolAnnotations,
    ToolFacts,
    evaluate,
)
from governance.principal import SYSTEM, Principal, Role, TeamFacts
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
    "PUBLISHED",
    "SYSTEM",
    "TRANSITIONS",
    "Classification",
    "Decision",
    "Environment",
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
    "canonical_json",
    "check_transition",
    "evaluate",
    "highest",
    "latest_decisions",
    "tool_definition_hash",
]
