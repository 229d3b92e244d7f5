"""Bump the registry revision in every transaction that changes governed state.

Caches in every replica compare their revision with this counter, so a change committed
anywhere invalidates them. The bump runs just before commit, making the counter row the
last lock a transaction takes (no lock-order inversions with row locks taken earlier).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from registry.db.models import (
    ApiKey,
    ClientPolicy,
    Policy,
    RegistryRevision,
    Server,
    ServerVersion,
    Team,
    TeamMember,
    Tool,
    ToolSetting,
)

GOVERNED = (ApiKey, ClientPolicy, Policy, Server, ServerVersion, Team, TeamMember, Tool, ToolSetting)
_FLAG = "bastion_governed_change"


def _before_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    if any(isinstance(obj, GOVERNED) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[_FLAG] = True


def _before_commit(session: Session) -> None:
    # commit() runs this hook before its own final flush: flush now so _before_flush sees it all.
    session.flush()
    if not session.info.get(_FLAG):
        return
    bumped = session.execute(
        update(RegistryRevision).where(RegistryRevision.id == 1).values(value=RegistryRevision.value + 1)
    )
    if bumped.rowcount == 0:  # type: ignore[attr-defined]
        # The migration creates the row; recreate it if someone removed it.
        session.execute(insert(RegistryRevision).values(id=1, value=1))


def install(factory: sessionmaker[Session], on_change: Callable[[], None]) -> None:
    from sqlalchemy import event

    def after_commit(session: Session) -> None:
        if session.info.pop(_FLAG, False):
            on_change()

    def after_rollback(session: Session) -> None:
        session.info.pop(_FLAG, None)

    event.listen(factory, "before_flush", _before_flush)
    event.listen(factory, "before_commit", _before_commit)
    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_soft_rollback", lambda session, _previous: after_rollback(session))


def mark_changed(session: Session) -> None:
    """For changes made with Core statements, which the flush hook does not see."""
    session.info[_FLAG] = True


def current(session: Session) -> int:
    return int(session.scalar(select(RegistryRevision.value).where(RegistryRevision.id == 1)) or 0)
