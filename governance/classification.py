"""Data classification levels and clearance checks."""

from __future__ import annotations

from enum import StrEnum


class Classification(StrEnum):
    """How sensitive a server's or tool's data is, least to most sensitive."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def covers(self, other: Classification) -> bool:
        """A clearance covers every classification at or below its own level."""
        return self.rank >= other.rank


_ORDER: list[Classification] = [
    Classification.PUBLIC,
    Classification.INTERNAL,
    Classification.CONFIDENTIAL,
    Classification.RESTRICTED,
]


def highest(*levels: Classification | None) -> Classification:
    """The most sensitive of the given levels (PUBLIC when none is given)."""
    present = [level for level in levels if level is not None]
    return max(present, key=lambda level: level.rank, default=Classification.PUBLIC)
