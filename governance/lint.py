"""Lint tool descriptions for prompt-injection ("tool poisoning") before registration.

A tool's description is read by the model as instructions. Registrations are refused when a
description tries to steer the model, hides text from humans, or reaches for other tools'
secrets. Each finding names the rule and quotes the offending text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    message: str


# Unicode tag characters (invisible, used to smuggle text), and runs of zero-width characters.
_TAGS = re.compile("[\U000e0000-\U000e007f]")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u180e]{2,}")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")

_INSTRUCTIONS = [
    (
        re.compile(r"\bignore\s+(all\s+|any\s+)?(previous|prior|above|earlier)\s+(instructions|prompts?|rules)", re.I),
        "tells the model to ignore its instructions",
    ),
    (
        re.compile(
            r"\b(disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|system|safety)\b", re.I
        ),
        "tells the model to override its instructions",
    ),
    (
        re.compile(r"<\s*/?\s*(important|system|instructions?|secret|admin)\s*>", re.I),
        "contains pseudo-markup that addresses the model",
    ),
    (
        re.compile(
            r"\b(do\s+not|don'?t|never)\s+(tell|inform|mention|reveal|show)\s+(this\s+to\s+)?(the\s+)?user", re.I
        ),
        "asks the model to hide something from the user",
    ),
    (
        re.compile(
            r"\byou\s+(must|should|are\s+required\s+to)\s+(always\s+)?(first\s+)?(call|invoke|run|use|send|read)\b",
            re.I,
        ),
        "orders the model to take actions",
    ),
    (
        re.compile(r"\bbefore\s+(using|calling)\s+(this|any)\s+tool\b.*\b(read|send|call|pass|include)\b", re.I | re.S),
        "orders the model to act before using the tool",
    ),
]

_SECRETS = [
    (
        re.compile(r"(~/\.ssh|id_rsa|\.aws/credentials|\.env\b|/etc/passwd|\.netrc|\.kube/config)", re.I),
        "references credential files",
    ),
    (
        re.compile(
            r"\b(api[_ -]?keys?|access[_ -]?tokens?|passwords?|secrets?|credentials?)\b.{0,60}\b"
            r"(of|from|for)\s+(other|another|all)\s+(tools?|servers?)",
            re.I | re.S,
        ),
        "reaches for other tools' secrets",
    ),
    (
        re.compile(
            r"\b(include|pass|send|add|append)\b.{0,40}\b(api[_ -]?key|token|password|secret|credentials?)\b"
            r".{0,40}\b(parameter|argument|field|sidenote|notes?)\b",
            re.I | re.S,
        ),
        "asks for credentials to be passed along",
    ),
]


def lint_description(text: str) -> list[Finding]:
    findings: list[Finding] = []
    if _TAGS.search(text):
        findings.append(Finding("hidden-unicode", "contains invisible Unicode tag characters"))
    if _ZERO_WIDTH.search(text):
        findings.append(Finding("hidden-unicode", "contains a run of zero-width characters"))
    if _BIDI.search(text):
        findings.append(Finding("hidden-unicode", "contains bidirectional override characters"))
    # Match on a normalised copy, so full-width or compatibility forms do not slip past.
    visible = unicodedata.normalize("NFKC", _TAGS.sub("", text))
    for pattern, message in _INSTRUCTIONS:
        match = pattern.search(visible)
        if match:
            findings.append(Finding("instructions-to-model", f"{message}: {match.group(0)[:80]!r}"))
    for pattern, message in _SECRETS:
        match = pattern.search(visible)
        if match:
            findings.append(Finding("secret-exfiltration", f"{message}: {match.group(0)[:80]!r}"))
    return findings
