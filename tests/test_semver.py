from __future__ import annotations

import random

import pytest

from registry import semver

# The precedence example from semver.org §11, plus the separator edge case.
ORDERED = [
    "1.0.0-a.b",
    "1.0.0-a-b",
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.2.0",
    "1.10.0",
    "2.0.0",
]


def test_sort_key_orders_by_semver_precedence() -> None:
    shuffled = ORDERED[:]
    random.Random(7).shuffle(shuffled)
    assert sorted(shuffled, key=lambda v: semver.parse(v).sort_key) == ORDERED


def test_build_metadata_does_not_change_precedence() -> None:
    assert semver.parse("1.0.0+build.5").sort_key == semver.parse("1.0.0").sort_key


@pytest.mark.parametrize("bad", ["latest", "1.0", "^1.2.3", "01.0.0", "1.0.0-", "1.x", "v1.0.0", "", "1.0.0-01"])
def test_invalid_versions_are_refused(bad: str) -> None:
    with pytest.raises(semver.SemverError):
        semver.parse(bad)


@pytest.mark.parametrize("text", ["1.2.3\n", "1.٣.3", "1.2.3-rc.²", "１.2.3"])
def test_only_ascii_digits_and_the_whole_string(text: str) -> None:
    """Old code: `\\d` accepted Unicode digits and `$` a trailing newline (via server.json import and the CLI)."""
    with pytest.raises(semver.SemverError):
        semver.parse(text)
