"""Redact secrets and configured PII from tool arguments before they are stored or shown.

The argument hash is taken over the *unredacted* arguments, so an approval or an audit row
can still prove which exact call it refers to without keeping the secret.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from governance.integrity import canonical_json

REDACTED = "[REDACTED]"

# Argument names that carry credentials, whatever the tool.
SECRET_KEY = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|authorization|"
    r"credential|cookie|session[_-]?id|client[_-]?secret|bearer)",
    re.IGNORECASE,
)
# Values that look like credentials even under an innocent key.
SECRET_VALUE = re.compile(
    r"^(Bearer\s+\S+|bst_[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+|"
    r"(sk|pk|ghp|gho|xox[bap])[-_][A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16})$"
)


def arguments_hash(arguments: dict[str, Any] | None) -> str:
    """Stable SHA-256 of the exact arguments (sorted keys), for binding approvals and audit."""
    return "sha256:" + hashlib.sha256(canonical_json(arguments or {})).hexdigest()


def redact(value: Any, pii_keys: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with secret- and PII-keyed fields (at any depth) replaced."""
    pii = {k.lower() for k in pii_keys}
    return _redact(value, pii)


def _redact(value: Any, pii: set[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key)
            if SECRET_KEY.search(name) or name.lower() in pii:
                out[key] = REDACTED
            else:
                out[key] = _redact(item, pii)
        return out
    if isinstance(value, list):
        return [_redact(item, pii) for item in value]
    if isinstance(value, str) and SECRET_VALUE.match(value.strip()):
        return REDACTED
    return value
