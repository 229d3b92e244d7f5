"""Which reviews count, who may give them, and the lifecycle moves the registry makes on its own.

Separation of duties: a reviewer may not review a server that her team owns — nor one her team owned at
any time since the version under review was submitted, so moving a server to another team, reviewing it,
and moving it back does not work. Changing the owning team voids the reviews of every version in review
or published (they go back to review); raising the classification sends a published version back to
review when the stricter classification needs reviews it does not have.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from governance import (
    PUBLISHED,
    Classification,
    Principal,
    ReviewDecision,
    ReviewKind,
    ReviewRequirements,
    VersionStatus,
    latest_decisions,
)
from registry.db import revision
from registry.db.models import Review, Server, ServerOwnership, ServerVersion, Team, VersionTransition
from registry.errors import Forbidden
from registry.services.common import team_facts

# Statuses whose reviews are live: the version is being reviewed, or was approved on their strength.
_REVIEWED = (VersionStatus.IN_REVIEW.value, VersionStatus.APPROVED.value, VersionStatus.DEPRECATED.value)


def valid_reviews(version: ServerVersion) -> list[Review]:
    return [r for r in version.reviews if r.invalidated_at is None]


def decisions(version: ServerVersion) -> dict[ReviewKind, ReviewDecision]:
    return latest_decisions((ReviewKind(r.kind), ReviewDecision(r.decision)) for r in valid_reviews(version))


def recompute_latest(session: Session, server: Server) -> None:
    """Mark exactly one version latest: the highest approved one, else the highest deprecated one."""
    rows = session.execute(
        select(ServerVersion.id, ServerVersion.status, ServerVersion.version_key).where(
            ServerVersion.server_id == server.id, ServerVersion.status.in_([s.value for s in PUBLISHED])
        )
    ).all()
    approved = [r for r in rows if r.status == VersionStatus.APPROVED.value]
    pool = approved or rows
    latest_id = max(pool, key=lambda r: r.version_key).id if pool else None
    revision.mark_changed(session)
    # Touch only rows whose flag flips: updated_at drives `updated_since` syncs.
    session.execute(
        update(ServerVersion)
        .where(
            ServerVersion.server_id == server.id,
            ServerVersion.is_latest.is_(True),
            ServerVersion.id != (latest_id if latest_id is not None else -1),
        )
        .values(is_latest=False)
        .execution_options(synchronize_session="fetch")
    )
    if latest_id is not None:
        session.execute(
            update(ServerVersion)
            .where(ServerVersion.id == latest_id, ServerVersion.is_latest.is_(False))
            .values(is_latest=True)
            .execution_options(synchronize_session="fetch")
        )


# -- ownership ----------------------------------------------------------------------------------------------


def record_owner(session: Session, server: Server, previous: Team, actor: Principal, now: datetime) -> None:
    """Close the previous team's ownership and open the current one's (history starts at creation)."""
    open_rows = list(
        session.scalars(
            select(ServerOwnership).where(ServerOwnership.server_id == server.id, ServerOwnership.until.is_(None))
        )
    )
    if not open_rows:
        session.add(ServerOwnership(server_id=server.id, team_id=previous.id, since=server.created_at, until=now,
                                    changed_by="(before history)"))  # fmt: skip
    for row in open_rows:
        row.until = now
    session.add(ServerOwnership(server_id=server.id, team_id=server.team.id, since=now, changed_by=actor.subject))


def owners_since(session: Session, server: Server, since: datetime | None) -> list[Team]:
    """Every team that owned the server at some time from `since` until now (the current team included)."""
    stmt = (
        select(Team)
        .join(ServerOwnership, ServerOwnership.team_id == Team.id)
        .where(ServerOwnership.server_id == server.id)
    )
    if since is not None:
        stmt = stmt.where((ServerOwnership.until.is_(None)) | (ServerOwnership.until > since))
    teams = {server.team.id: server.team}
    for team in session.scalars(stmt):
        teams.setdefault(team.id, team)
    return list(teams.values())


def require_separation(session: Session, actor: Principal, server: Server, version: ServerVersion) -> None:
    """Members of any team that owned the server since the version was submitted may not review it."""
    for team in owners_since(session, server, version.submitted_at):
        if team_facts(team).has_member(actor):
            when = "owns" if team.id == server.team.id else "owned"
            raise Forbidden(
                f"separation of duties: you belong to team {team.name}, which {when} {server.name} during the "
                f"review of {version.version}; someone outside its owning teams must review it"
            )


# -- moves the registry makes -------------------------------------------------------------------------------


def reconcile(
    session: Session,
    actor: Principal,
    server: Server,
    requirements: ReviewRequirements,
    *,
    owner_changed: str | None = None,
) -> list[str]:
    """After a governed change to `server`: void reviews or send versions back to review where the
    approval no longer holds. `owner_changed` is the reason when the owning team changed. Returns the
    versions sent back to review."""
    now = datetime.now(UTC)
    versions = session.scalars(
        select(ServerVersion).where(ServerVersion.server_id == server.id, ServerVersion.status.in_(_REVIEWED))
    )
    classification = Classification(server.classification)
    returned: list[str] = []
    for version in versions:
        if owner_changed is not None:
            for review in valid_reviews(version):
                review.invalidated_at, review.invalidated_reason = now, owner_changed[:500]
        published = version.status != VersionStatus.IN_REVIEW.value
        missing = requirements.missing(classification, decisions(version))
        if published and (owner_changed is not None or missing):
            reason = owner_changed or (
                f"classification is now {classification.value}: needs {', '.join(k.value for k in missing)} review"
            )
            _back_to_review(version, actor, reason, now)
            returned.append(version.version)
    session.flush()
    if returned:
        recompute_latest(session, server)
    return returned


def _back_to_review(version: ServerVersion, actor: Principal, reason: str, now: datetime) -> None:
    current = version.status
    version.status = VersionStatus.IN_REVIEW.value
    version.status_changed_at = now
    version.status_message = reason[:500]
    version.updated_at = now
    version.transitions.append(VersionTransition(from_status=current, to_status=VersionStatus.IN_REVIEW.value,
                                                 actor=actor.subject, reason=reason[:500]))  # fmt: skip
