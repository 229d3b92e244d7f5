"""Redact secrets and configured PII from tool arguments before they are stored or shown.

The argument hash is taken over the *unredacted* arguments, so an approval or an audit row
can still prove which exact call it refers to without keeping the secret.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

import orjson

REDACTED = "[REDACTED]"
_NUMBERS = (int, float, bool)

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


def arguments_bytes(arguments: dict[str, Any] | None) -> bytes:
    """The arguments as the bytes `arguments_hash` hashes: JSON with sorted keys, compact, UTF-8.

    orjson (C) rather than the stdlib: 360 KB of embeddings encode in ~1 ms, not 11. What orjson refuses
    (integers beyond 64 bits, non-string keys, a lone surrogate from a JSON escape) takes the stdlib, with
    a lone surrogate kept as its code unit: never an error."""
    try:
        return orjson.dumps(arguments or {}, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(arguments or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8", "surrogatepass")


def arguments_hash(arguments: dict[str, Any] | None) -> str:
    """Stable SHA-256 of the exact arguments (sorted keys), for binding approvals and audit."""
    return "sha256:" + hashlib.sha256(arguments_bytes(arguments)).hexdigest()


def redact(value: Any, pii_keys: Iterable[str] = ()) -> Any:
    """A copy of ``value`` with secret- and PII-keyed fields (at any depth) replaced."""
    pii = frozenset(k.lower() for k in pii_keys)
    return _redact(value, pii)


def _decide(name: str, pii: frozenset[str]) -> bool:
    return bool(SECRET_KEY.search(name)) or name.lower() in pii


_decide_once = functools.lru_cache(maxsize=4096)(_decide)


def _hidden(name: str, pii: frozenset[str]) -> bool:
    """Whether a field of this name is redacted. Names repeat across a list of objects, so short ones are
    decided once (cached); a long one is checked whole each time (a secret word may sit at its very end)."""
    return _decide_once(name, pii) if len(name) <= 200 else _decide(name, pii)


def _redact(value: Any, pii: frozenset[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = REDACTED if _hidden(str(key), pii) else _redact(item, pii)
        return out
    if isinstance(value, list):
        if value and all(type(item) in _NUMBERS for item in value):
            return value  # a vector (embeddings, scores): nothing to redact, no copy to make
        return [_redact(item, pii) for item in value]
    if isinstance(value, str) and SECRET_VALUE.match(value.strip()):
        return REDACTED
    return value
