"""Contracts of the parity audit: what goes in (sources, keys, tolerances) and what comes out (findings)."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, Field

Severity = Literal["critical", "high", "medium", "low", "info"]
SEVERITY_ORDER: dict[str, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1, "info": 0}


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text):,} characters)"


class ParityError(Exception):
    """Bad input: names the input (training/serving/…) and, where it applies, the column."""

    def __init__(self, source: str, message: str, column: str | None = None) -> None:
        # Errors never echo unbounded input: every part is cut to a readable length.
        source, message = _bounded(source, 60), _bounded(message, 600)
        column = _bounded(column, 80) if column is not None else None
        where = f"{source}" + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")
        self.source = source
        self.column = column
        self.message = message


# Column names that hold personal data wherever they appear (substring match, lower case), as for audit rows.
DEFAULT_PII_KEYS = ("email", "phone", "ssn", "ip_address", "device_id", "address")


class Redactor:
    """Which columns' raw values a report may not show, and how they are shown instead.

    Findings quote values (examples of differing rows, categorical remaps, version stamps). For a column
    that holds personal data — by name (`email`, `hashed_email`, `ip_address`, …) or because the catalog
    tags a column of that name as PII or above the caller's clearance — each value is replaced by a short
    keyed digest (HMAC-SHA-256 under a key drawn per redactor, i.e. per report): equal values look equal
    within a report, so a remap or skew stays readable, but a digest cannot be looked up in a dictionary of
    e-mail addresses or matched across reports.
    """

    def __init__(self, pii_keys: Iterable[str] = DEFAULT_PII_KEYS, columns: Iterable[str] = (),
                 sensitive: Callable[[str], bool] | None = None) -> None:  # fmt: skip
        self.pii_keys = tuple(k.lower() for k in pii_keys if k)
        self.columns = {c.lower() for c in columns}
        self.extra = sensitive
        self._key = os.urandom(32)

    def applies(self, column: str | None) -> bool:
        if column is None:
            return False
        lowered = column.lower()
        return (lowered in self.columns or any(key in lowered for key in self.pii_keys)
                or (self.extra is not None and self.extra(column)))  # fmt: skip

    def value(self, column: str | None, value: Any) -> Any:
        if value is None or not self.applies(column):
            return value
        digest = hmac.new(self._key, str(value).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        return f"redacted:{digest[:12]}"


class Tolerances(BaseModel):
    atol: float = Field(1e-9, ge=0, description="Absolute tolerance for numeric equality")
    rtol: float | None = Field(None, ge=0, description="Relative tolerance; default from `precision`")
    precision: Literal["fp64", "fp32", "fp16", "bf16"] = Field(
        "fp16", description="The lowest precision either side may store: its rounding is not a bug"
    )
    min_mismatch_rate: float = Field(0.001, ge=0, le=1, description="Flag a feature above this mismatch rate")
    psi_threshold: float = Field(0.2, ge=0, description="Population stability index flagged as drift")
    missing_rate_delta: float = Field(0.01, ge=0, le=1, description="Flag null/default rates differing by more")

    def relative(self) -> float:
        if self.rtol is not None:
            return self.rtol
        # Twice the unit roundoff: one rounding on each side.
        return {"fp64": 1e-12, "fp32": 2.4e-7, "fp16": 1e-3, "bf16": 8e-3}[self.precision]


class Finding(BaseModel):
    check: str = Field(description="coverage, duplicates, value_mismatch, missing_feature, …")
    severity: Severity
    feature: str | None = None
    summary: str
    likely_cause: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    examples: list[dict[str, Any]] = Field(default_factory=list)


class FeatureStats(BaseModel):
    feature: str
    kind: Literal["numeric", "categorical"]
    compared: int = Field(description="Joined rows compared")
    mismatches: int
    mismatch_rate: float
    null_rate_training: float
    null_rate_serving: float
    default_rate_training: float = Field(description="Zero (numeric) or empty string share")
    default_rate_serving: float
    psi: float | None = None
    wasserstein: float | None = Field(None, description="Normalised by the training interquartile range")
    js_divergence: float | None = None
    linf: float | None = None


class Coverage(BaseModel):
    training_rows: int
    serving_rows: int
    joined_rows: int
    training_only_keys: int
    serving_only_keys: int
    training_duplicate_keys: int
    serving_duplicate_keys: int


class AuditReport(BaseModel):
    keys: list[str]
    coverage: Coverage
    features: list[FeatureStats]
    findings: list[Finding]
    flagged_features: list[str] = Field(description="Features with a finding of severity medium or above")
    partial: bool = Field(False, description="Some checks could not run: see problems; the rest is valid")
    problems: list[str] = Field(default_factory=list)
    tolerances: Tolerances
    elapsed_s: float = 0.0
