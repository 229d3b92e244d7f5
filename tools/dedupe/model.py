"""Layer 4 contracts: the learned map (domain, query pattern → important parameters) and its diff."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Verdict = Literal["important", "neutral", "kept_few_samples"]


class ParamEvidence(BaseModel):
    """What the renders said about one parameter of one pattern."""

    tests: int = 0
    changes: int = 0
    verdict: Verdict
    reason: str
    changed_values: list[str] = Field(default_factory=list, description="Values whose removal changed the page")


class PatternRule(BaseModel):
    params: list[str] = Field(description="The query pattern: sorted parameter names")
    urls: int = Field(0, description="How many log URLs had this pattern")
    important: list[str]
    defaults: dict[str, list[str]] = Field(
        default_factory=dict, description="Values that show the same page as leaving the parameter out"
    )
    evidence: dict[str, ParamEvidence] = Field(default_factory=dict)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.params)


class DomainParam(BaseModel):
    """A parameter's verdict over all of a domain's learned patterns: used for patterns not learned."""

    neutral: bool = Field(description="Neutral in every learned pattern, confidently over the pooled tests")
    patterns: int
    tests: int
    changes: int
    defaults: list[str] = Field(default_factory=list)


class LearnSettings(BaseModel):
    """The knobs of a learning run (recorded with every map version)."""

    method: Literal["group", "fixed"] = Field(
        "group", description="group: group testing + sequential stopping + defaults; fixed: the published MIQPS"
    )
    top_patterns: int = Field(50, ge=1, le=10_000, description="K: how many of the most frequent patterns to test")
    max_samples: int = Field(20, ge=1, le=1000, description="S: at most this many URLs per parameter/pattern")
    threshold: float = Field(0.1, gt=0, le=1, description="T: important when content changes in ≥ T of tests")
    min_samples: int = Field(5, ge=1, le=1000, description="N: fewer samples than this keeps the parameter")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Sequential stopping: one-sided confidence")
    seed: int = 0


class DomainMap(BaseModel):
    domain: str
    version: int = 0
    created_at: datetime | None = None
    created_by: str | None = None
    source: str = ""
    settings: LearnSettings = Field(default_factory=LearnSettings)
    renders: int = Field(0, description="Pages fetched and fingerprinted to learn this map")
    log_urls: int = 0
    patterns: list[PatternRule] = Field(default_factory=list)
    params: dict[str, DomainParam] = Field(
        default_factory=dict, description="Domain-wide verdicts, applied to query patterns the map has no rule for"
    )
    status: Literal["active", "rejected", "superseded"] = "active"
    gate: GateReport | None = None

    def pattern(self, params: tuple[str, ...]) -> PatternRule | None:
        for rule in self.patterns:
            if rule.key == params:
                return rule
        return None


class GateReport(BaseModel):
    """The anomaly gate's verdict on a new map against the active one."""

    passed: bool
    compared_patterns: int
    flipped_patterns: int
    flipped_share: float
    max_share: float
    flips: list[str] = Field(default_factory=list, description="pattern: parameter important → neutral")
    overridden: bool = False

    def short(self) -> str:
        verdict = "passed" if self.passed else ("overridden" if self.overridden else "rejected")
        return f"{verdict} ({self.flipped_patterns}/{self.compared_patterns} flipped, limit {self.max_share:.0%})"

    def summary(self) -> str:
        verdict = "passed" if self.passed else ("overridden" if self.overridden else "rejected")
        return (
            f"anomaly gate {verdict}: {self.flipped_patterns}/{self.compared_patterns} shared patterns "
            f"({self.flipped_share:.0%}) flip a parameter from important to neutral; limit {self.max_share:.0%}"
        )


class PatternChange(BaseModel):
    pattern: list[str]
    change: Literal["added", "removed", "changed"]
    became_important: list[str] = Field(default_factory=list)
    became_neutral: list[str] = Field(default_factory=list)
    defaults_added: dict[str, list[str]] = Field(default_factory=dict)
    defaults_removed: dict[str, list[str]] = Field(default_factory=dict)
    important: list[str] = Field(default_factory=list, description="For added/removed patterns")


class MapDiff(BaseModel):
    domain: str
    from_version: int
    to_version: int
    changes: list[PatternChange]
    unchanged: int
    text: str = Field(description="The diff as lines a reviewer reads")


DomainMap.model_rebuild()
