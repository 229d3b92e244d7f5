"""Semantic versions (semver 2.0.0): strict parsing and a sortable string key."""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII digits only (\d also matches "٣" and "²"), and the whole string (no trailing newline as $ allows).
_SEMVER = re.compile(
    r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?",
    re.ASCII,
)

_NUM_WIDTH = 10
MAX_LENGTH = 255


class SemverError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Semver:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...]
    build: str | None

    @property
    def sort_key(self) -> str:
        """A string whose lexicographic order is semver precedence (build metadata ignored).

        Numeric parts are zero-padded; a release sorts after its pre-releases ('~' > any
        identifier character); numeric pre-release identifiers sort before alphanumeric ones;
        identifiers are joined with '!', which sorts below every identifier character, so
        `a.b` < `a-b` as semver requires. Compare these keys bytewise (collation "C").
        """
        head = ".".join(f"{part:0{_NUM_WIDTH}d}" for part in (self.major, self.minor, self.patch))
        if not self.prerelease:
            return head + "~"
        ids = []
        for ident in self.prerelease:
            ids.append(f"0{int(ident):0{_NUM_WIDTH}d}" if ident.isascii() and ident.isdigit() else f"1{ident}")
        return head + "-" + "!".join(ids)


def parse(text: str) -> Semver:
    if text == "latest":
        raise SemverError("'latest' is reserved and cannot be used as a version")
    if len(text) > MAX_LENGTH:
        raise SemverError(f"version is longer than {MAX_LENGTH} characters")
    match = _SEMVER.fullmatch(text)
    if not match:
        shown = text if len(text) <= 60 else text[:59] + "…"
        raise SemverError(f"{shown!r} is not a semantic version (expected MAJOR.MINOR.PATCH, e.g. 1.2.0)")
    major, minor, patch, pre, build = match.groups()
    prerelease = tuple(pre.split(".")) if pre else ()
    if any(len(n) > _NUM_WIDTH for n in (major, minor, patch, *(i for i in prerelease if i.isdigit()))):
        raise SemverError("version numbers above 9,999,999,999 are not supported")
    return Semver(int(major), int(minor), int(patch), prerelease, build)
