"""The lifecycle of a server version: a small explicit state machine."""

from __future__ import annotations

from enum import StrEnum


class VersionStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    DEPRECATED = "deprecated"
    REVOKED = "revoked"


# Only these moves are legal. Rejected and revoked are terminal: a fix ships as a new version,
# because a version's content is immutable once submitted.
TRANSITIONS: dict[VersionStatus, frozenset[VersionStatus]] = {
    VersionStatus.DRAFT: frozenset({VersionStatus.IN_REVIEW}),
    VersionStatus.IN_REVIEW: frozenset({VersionStatus.APPROVED, VersionStatus.REJECTED}),
    VersionStatus.APPROVED: frozenset({VersionStatus.DEPRECATED, VersionStatus.REVOKED}),
    VersionStatus.DEPRECATED: frozenset({VersionStatus.APPROVED, VersionStatus.REVOKED}),
    VersionStatus.REJECTED: frozenset(),
    VersionStatus.REVOKED: frozenset(),
}

# Statuses in which a version is published: usable and discoverable.
PUBLISHED: frozenset[VersionStatus] = frozenset({VersionStatus.APPROVED, VersionStatus.DEPRECATED})

# Statuses in which the version's content may still change.
EDITABLE: frozenset[VersionStatus] = frozenset({VersionStatus.DRAFT})


class TransitionError(ValueError):
    """A lifecycle move that the state machine forbids."""

    def __init__(self, current: VersionStatus, target: VersionStatus) -> None:
        allowed = sorted(s.value for s in TRANSITIONS[current])
        hint = f"allowed from {current.value}: {', '.join(allowed)}" if allowed else f"{current.value} is final"
        super().__init__(f"cannot move a version from {current.value} to {target.value} ({hint})")
        self.current = current
        self.target = target


def check_transition(current: VersionStatus, target: VersionStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise TransitionError(current, target)
