"""One headless Chromium for the whole test run (Debian's `/usr/bin/chromium`, driven by Playwright).

Browser downloads are impossible on these machines, so Playwright is pointed at the system binary. Without
it the browser tests skip with the reason, or fail when `BASTION_TEST_REQUIRE_SERVICES=1` (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Without these, as root and on a closed network, Chromium refuses to start or piles up connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} is missing: the browser tests need Chromium (`make install` adds it as root)"
    if os.environ.get("BASTION_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """The run's one browser; each test opens its own context (cookies, storage) on it."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last. Playwright's sync API keeps an event loop on the main thread while the browser
    is open, which anyio-driven tests cannot share; with the browser tests at the end, the run's one browser
    never overlaps another test."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))
