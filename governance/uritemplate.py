"""Which URIs a resource template (RFC 6570) admits, decided in linear time, and URIs a read must never send.

A template is compiled to a small NFA (Thompson's construction) and simulated over the URI one character at a
time, so no URI, however crafted, makes matching backtrack: time is O(len(uri) × len(template)). A variable
matches only what an expansion can produce: unreserved characters and percent-escapes (`{+x}` and `{#x}` also
reserved characters), query and path-parameter operators only the names they declare. Raw controls, spaces
and anything outside ASCII are never matched (an expansion percent-encodes them).

`unsafe_reason` refuses, before any matching, what would let a read escape the place a template names even
where a pattern admits it: dot segments (`.` / `..`, encoded or not), encoded slashes and backslashes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["TemplateError", "UriTemplate", "unsafe_reason"]

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%")
_RESERVED = frozenset(":/?#[]@!$&'()*+,;=")
_EXPRESSION = re.compile(r"\{([+#./;?&]?)([^{}]*)\}")
_VARSPEC = re.compile(r"^([A-Za-z0-9_%.]+)(?::[1-9][0-9]{0,3}|\*)?$")
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|00)", re.IGNORECASE)


class TemplateError(ValueError):
    """A template this matcher cannot read (the registry refuses it)."""


def unsafe_reason(uri: str) -> str | None:
    """Why a URI must not be read through a template, or None."""
    if not uri.isascii() or any(not 0x21 <= ord(c) <= 0x7E for c in uri):
        return "it holds spaces, control or non-ASCII characters"
    if "\\" in uri or _ENCODED_SEPARATOR.search(uri):
        return "it holds a backslash or an encoded slash, backslash or NUL"
    rest = uri.split("?", 1)[0].split("#", 1)[0]
    rest = rest.split("://", 1)[1] if "://" in rest else rest.split(":", 1)[-1]
    if any(unquote(segment) in (".", "..") for segment in rest.split("/")):
        return "it holds a dot segment (. or ..)"
    return None


# --- the NFA ---------------------------------------------------------------------------------------------
# A state either consumes one character from a set and moves to `out`, or (chars None) is a split to its
# `outs` without consuming anything. State -1 is the match.


@dataclass(slots=True)
class _State:
    chars: frozenset[str] | None
    outs: list[int] = field(default_factory=list)


class _Builder:
    def __init__(self) -> None:
        self.states: list[_State] = []

    def add(self, chars: frozenset[str] | None) -> int:
        self.states.append(_State(chars))
        return len(self.states) - 1

    # Each fragment is built as (entry, exits): `exits` are states whose `outs` get the next fragment's entry.
    def literal(self, text: str) -> tuple[int, list[int]]:
        first = last = self.add(frozenset(text[0]))
        for ch in text[1:]:
            nxt = self.add(frozenset(ch))
            self.states[last].outs.append(nxt)
            last = nxt
        return first, [last]

    def star(self, chars: frozenset[str]) -> tuple[int, list[int]]:
        split = self.add(None)
        loop = self.add(chars)
        self.states[split].outs.append(loop)
        self.states[loop].outs.append(split)
        return split, [split]

    def seq(self, parts: list[tuple[int, list[int]]]) -> tuple[int, list[int]]:
        entry, exits = parts[0]
        for nxt_entry, nxt_exits in parts[1:]:
            for e in exits:
                self.states[e].outs.append(nxt_entry)
            exits = nxt_exits
        return entry, exits

    def optional(self, part: tuple[int, list[int]]) -> tuple[int, list[int]]:
        split = self.add(None)
        self.states[split].outs.append(part[0])
        return split, [split, *part[1]]

    def repeat(self, part: tuple[int, list[int]]) -> tuple[int, list[int]]:
        """Zero or more of ``part``."""
        split = self.add(None)
        self.states[split].outs.append(part[0])
        for e in part[1]:
            self.states[e].outs.append(split)
        return split, [split]

    def choice(self, parts: list[tuple[int, list[int]]]) -> tuple[int, list[int]]:
        split = self.add(None)
        exits: list[int] = []
        for entry, part_exits in parts:
            self.states[split].outs.append(entry)
            exits.extend(part_exits)
        return split, exits


def _names(body: str, template: str) -> list[str]:
    names = []
    for spec in body.split(","):
        m = _VARSPEC.match(spec)
        if m is None:
            raise TemplateError(f"malformed expression {{{body[:40]}}} in the template")
        names.append(m.group(1))
    return names


def _expression(b: _Builder, op: str, names: list[str]) -> tuple[int, list[int]]:
    value = _UNRESERVED
    if op == "":  # one value, or several joined by commas (`{x,y}`)
        return b.seq([b.star(value), b.repeat(b.seq([b.literal(","), b.star(value)]))])
    if op == "+":  # reserved expansion: slashes and the like too, but no query or fragment
        return b.star(value | _RESERVED - frozenset("?#"))
    if op == "#":
        return b.optional(b.seq([b.literal("#"), b.star(value | _RESERVED - frozenset("#"))]))
    if op in (".", "/"):
        return b.repeat(b.seq([b.literal(op), b.star(value)]))
    # ; ? & : name=value pairs of the declared names only.
    if op == ";":
        return b.repeat(b.seq([b.literal(";"), b.choice([_pair(b, n, value) for n in names])]))
    first = b.choice([_pair(b, n, value) for n in names])
    more = b.repeat(b.seq([b.literal("&"), b.choice([_pair(b, n, value) for n in names])]))
    return b.optional(b.seq([b.literal(op), first, more]))


def _pair(b: _Builder, name: str, value: frozenset[str]) -> tuple[int, list[int]]:
    return b.seq([b.literal(name), b.optional(b.seq([b.literal("="), b.star(value)]))])


class UriTemplate:
    """A compiled template: ``matches(uri)`` says whether some expansion of it is ``uri``."""

    def __init__(self, template: str) -> None:
        if not template.isascii() or any(not 0x21 <= ord(c) <= 0x7E for c in template):
            raise TemplateError("a template holds printable ASCII only (no spaces or control characters)")
        b = _Builder()
        parts: list[tuple[int, list[int]]] = []
        last = 0
        for m in _EXPRESSION.finditer(template):
            if m.start() > last:
                parts.append(b.literal(template[last : m.start()]))
            parts.append(_expression(b, m.group(1), _names(m.group(2), template)))
            last = m.end()
        literal_rest = template[last:]
        if "{" in literal_rest or "}" in literal_rest or "{" in _EXPRESSION.sub("", template):
            raise TemplateError("the template has an unbalanced or malformed {expression} (RFC 6570)")
        if literal_rest:
            parts.append(b.literal(literal_rest))
        if not parts:
            raise TemplateError("the template is empty")
        self.template = template
        self.prefix = template[: template.index("{")] if "{" in template else template
        self.entry, exits = b.seq(parts)
        for e in exits:
            b.states[e].outs.append(-1)
        self.states = b.states

    def _closure(self, start: set[int]) -> set[int]:
        seen = set(start)
        stack = list(start)
        while stack:
            s = stack.pop()
            if s == -1 or self.states[s].chars is not None:
                continue
            for nxt in self.states[s].outs:
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    def matches(self, uri: str) -> bool:
        if not uri.startswith(self.prefix):
            return False
        current = self._closure({self.entry})
        for ch in uri:
            step = {nxt for s in current if s != -1 and (cs := self.states[s].chars) is not None and ch in cs
                    for nxt in self.states[s].outs}  # fmt: skip
            if not step:
                return False
            current = self._closure(step)
        return -1 in current
