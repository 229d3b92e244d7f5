"""Content fingerprints: is this the same page? Pluggable; the learner only calls `same`.

- `simhash` of the visible text (word 3-shingles, 64 bits, near-duplicate within 3 bits): robust
  to timestamps and ad slots, the default;
- `dom` hash of the tag structure (exact): cheap, but one template serves many products;
- `title_og`: title + Open Graph tags (exact);
- a table of precomputed fingerprints (`TableFingerprinter`), e.g. from a crawler's store.

The page's own canonical tag is deliberately not used: it proved unreliable.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal, Protocol
from urllib.parse import urlsplit

import httpx
import numpy as np

from tools.dedupe.netguard import (
    AddressPolicy,
    AddressRefused,
    GuardedBackend,
    GuardedTransport,
    Resolver,
    non_public_reason,
    system_resolver,
)

FingerprintKind = Literal["simhash", "dom", "title_og"]
SIMHASH_BITS = 64
# Manku et al. (WWW 2007) use 3 bits to find near-duplicates among billions of pages; here one page
# is compared with one variant of it, so the bar sits between render noise and real change (the
# simulator measures noise ≤ 8 bits and distinct pages ≥ 17 bits).
SIMHASH_NEAR = 10


@dataclass(frozen=True, slots=True)
class Fingerprint:
    status: int
    kind: str
    value: int | str

    def same(self, other: Fingerprint) -> bool:
        if self.status != other.status or self.kind != other.kind:
            return False
        if self.kind == "simhash" and isinstance(self.value, int) and isinstance(other.value, int):
            return (self.value ^ other.value).bit_count() <= SIMHASH_NEAR
        return self.value == other.value


@dataclass(frozen=True, slots=True)
class Page:
    url: str
    status: int
    html: str


class Fingerprinter(Protocol):
    """Fingerprint a URL; None when it cannot be fetched (the test is skipped, not counted)."""

    async def __call__(self, url: str) -> Fingerprint | None: ...


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.title: list[str] = []
        self.meta: dict[str, str] = {}
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("script", "style", "noscript", "template"):
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag == "meta":
            values = dict(attrs)
            key = values.get("property") or values.get("name") or ""
            if key.startswith("og:") and values.get("content") is not None:
                self.meta[key] = values["content"] or ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript", "template") and self._skip:
            self._skip -= 1
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.text.append(data)


def _parse(html: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser


_word_hashes: dict[str, int] = {}
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SHINGLE_MULTIPLIERS = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _word_hash(word: str) -> int:
    value = _word_hashes.get(word)
    if value is None:
        value = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        if len(_word_hashes) < 1_000_000:
            _word_hashes[word] = value
    return value


def simhash(words: list[str], shingle: int = 3) -> int:
    """64-bit simhash of the word shingles of `words` (stable across processes).

    Words are hashed once (blake2b, cached); a shingle's hash mixes its words' hashes with
    position-dependent multipliers and a splitmix64 finaliser, vectorised with NumPy.
    """
    if not words:
        words = [""]
    hashes = np.fromiter((_word_hash(w) for w in words), dtype=np.uint64, count=len(words))
    width = min(shingle, len(words))
    count = len(words) - width + 1
    with np.errstate(over="ignore"):
        mixed = np.zeros(count, dtype=np.uint64)
        for offset in range(width):
            mixed ^= hashes[offset : offset + count] * _SHINGLE_MULTIPLIERS[offset % 3]
        mixed ^= mixed >> np.uint64(30)
        mixed *= _MIX1
        mixed ^= mixed >> np.uint64(27)
        mixed *= _MIX2
        mixed ^= mixed >> np.uint64(31)
    bits = np.unpackbits(mixed.view(np.uint8).reshape(count, 8), axis=1, bitorder="little")
    votes = bits.sum(axis=0, dtype=np.int64) * 2 - count
    packed = np.packbits(votes > 0, bitorder="little")
    return int.from_bytes(packed.tobytes(), "little")


def page_fingerprint(page: Page, kind: FingerprintKind = "simhash") -> Fingerprint:
    if page.status >= 400:
        # An error page says nothing about which content the URL names: compare statuses only.
        return Fingerprint(page.status, kind, 0 if kind == "simhash" else "")
    parsed = _parse(page.html)
    if kind == "simhash":
        words = " ".join([*parsed.title, *parsed.text]).lower().split()
        return Fingerprint(page.status, kind, simhash(words))
    if kind == "dom":
        return Fingerprint(
            page.status, kind, hashlib.blake2b(" ".join(parsed.tags).encode(), digest_size=16).hexdigest()
        )
    og = "\n".join(f"{k}={v}" for k, v in sorted(parsed.meta.items()) if k != "og:url")
    return Fingerprint(page.status, kind, " ".join("".join(parsed.title).split()) + "\n" + og)


Fetch = Callable[[str], Awaitable[Page | None]]


class PageFingerprinter:
    """Fetch a page and fingerprint it."""

    def __init__(self, fetch: Fetch, kind: FingerprintKind = "simhash") -> None:
        self.fetch = fetch
        self.kind = kind

    async def __call__(self, url: str) -> Fingerprint | None:
        page = await self.fetch(url)
        return None if page is None else page_fingerprint(page, self.kind)


class TableFingerprinter:
    """Precomputed fingerprints by URL (compared exactly; ints as 64-bit simhashes)."""

    def __init__(self, table: Mapping[str, str | int], kind: str = "table") -> None:
        self.table = dict(table)
        self.kind = kind

    async def __call__(self, url: str) -> Fingerprint | None:
        value = self.table.get(url)
        if value is None:
            return None
        return Fingerprint(200, "simhash" if isinstance(value, int) else self.kind, value)


MAX_REDIRECTS = 5


class HttpFetcher:
    """GET pages over HTTP with a per-domain rate limit (politeness), a size cap and timeouts.

    Every connection — the URL's and each redirect hop's, at most `max_redirects` hops — goes through
    `netguard.GuardedBackend`: the host is resolved once, each address is checked, and the socket is
    opened to a checked address. Non-public addresses raise `AddressRefused` (the caller decides;
    learning stops) unless `allow_private`. A chain longer than `max_redirects`, or a redirect to
    another scheme, is a failed fetch (None).
    """

    def __init__(
        self,
        requests_per_second: float = 2.0,
        timeout: float = 10.0,
        max_bytes: int = 2_000_000,
        *,
        allow_private: bool = False,
        max_redirects: int = MAX_REDIRECTS,
        policy: AddressPolicy = non_public_reason,
        resolver: Resolver = system_resolver,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if max_redirects < 0:
            raise ValueError("max_redirects must be 0 or more")
        self.interval = 1.0 / requests_per_second
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.backend = GuardedBackend(allow_private=allow_private, policy=policy, resolver=resolver)
        self.client = httpx.AsyncClient(
            transport=GuardedTransport(self.backend),
            timeout=timeout,
            follow_redirects=False,  # followed below, one checked hop at a time
            trust_env=False,
            headers={"User-Agent": "BastionDedupe/0.1 (+url-normalization)"},
        )
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetched = 0
        self.failed = 0
        self.redirects = 0

    async def _wait_turn(self, host: str) -> None:
        lock = self._locks.setdefault(host, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            start = max(now, self._next.get(host, now))
            self._next[host] = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)

    async def _read(self, response: httpx.Response) -> str:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode(response.encoding or "utf-8", errors="replace")

    async def __call__(self, url: str) -> Page | None:
        current = url
        try:
            for hop in range(self.max_redirects + 1):
                await self._wait_turn(urlsplit(current).hostname or "")
                try:
                    async with self.client.stream("GET", current) as response:
                        target = response.next_request  # set for a redirect with a Location
                        if target is None:
                            html = await self._read(response)
                            self.fetched += 1
                            return Page(url, response.status_code, html)
                except AddressRefused as exc:
                    raise exc.at(current, hop) from None
                if hop == self.max_redirects or target.url.scheme not in ("http", "https"):
                    break  # too many redirects, or a redirect off the web
                self.redirects += 1
                current = str(target.url)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError):  # ValueError: urlsplit of a malformed URL
            pass
        self.failed += 1
        return None

    async def aclose(self) -> None:
        await self.client.aclose()
