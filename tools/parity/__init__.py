"""Training/serving parity audit: equality on keys, coverage, missing values, distributions, embeddings, funnel."""

from tools.parity.audit import audit
from tools.parity.model import AuditReport, Finding, ParityError, Redactor, Tolerances
from tools.parity.vectors import EmbeddingReport, FunnelReport, compare_embeddings, funnel_alignment

__all__ = [
    "AuditReport",
    "EmbeddingReport",
    "Finding",
    "FunnelReport",
    "ParityError",
    "Redactor",
    "Tolerances",
    "audit",
    "compare_embeddings",
    "funnel_alignment",
]
