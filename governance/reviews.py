"""Which reviews a server version needs before it may be approved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, Field

from governance.classification import Classification


class ReviewKind(StrEnum):
    SECURITY = "security"
    PRIVACY = "privacy"
    GENAI = "genai"


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


DEFAULT_REQUIRED_REVIEWS: dict[Classification, list[ReviewKind]] = {
    Classification.PUBLIC: [ReviewKind.SECURITY],
    Classification.INTERNAL: [ReviewKind.SECURITY],
    Classification.CONFIDENTIAL: [ReviewKind.SECURITY, ReviewKind.PRIVACY],
    Classification.RESTRICTED: [ReviewKind.SECURITY, ReviewKind.PRIVACY, ReviewKind.GENAI],
}


class ReviewRequirements(BaseModel):
    """Classification → review kinds that must all approve. Configurable per deployment."""

    by_classification: dict[Classification, list[ReviewKind]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_REQUIRED_REVIEWS.items()}
    )

    def required_for(self, classification: Classification) -> list[ReviewKind]:
        # A level missing from a custom mapping inherits the nearest stricter requirement
        # below it, so a partial configuration never silently needs no review at all.
        for level in sorted(Classification, key=lambda c: c.rank, reverse=True):
            if level.rank <= classification.rank and level in self.by_classification:
                return list(self.by_classification[level])
        return [ReviewKind.SECURITY]

    def missing(
        self,
        classification: Classification,
        latest_decisions: Mapping[ReviewKind, ReviewDecision],
    ) -> list[ReviewKind]:
        """Required kinds whose latest decision is not an approval."""
        return [
            kind
            for kind in self.required_for(classification)
            if latest_decisions.get(kind) is not ReviewDecision.APPROVE
        ]


def latest_decisions(
    reviews: Iterable[tuple[ReviewKind, ReviewDecision]],
) -> dict[ReviewKind, ReviewDecision]:
    """Reduce reviews given oldest-first to the latest decision per kind."""
    out: dict[ReviewKind, ReviewDecision] = {}
    for kind, decision in reviews:
        out[kind] = decision
    return out
