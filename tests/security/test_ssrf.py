"""SSRF through the dedupe fetcher (`learn_rules` fetches pages from caller-supplied logs).

Real loopback HTTP servers play both parts: a "public" site on 127.0.0.2 (the address policy is
injected so that this one loopback address counts as public) and a private service on 127.0.0.1
that must never receive a request. Every connection — the first URL and every redirect hop — must
go to an address that was checked, the one the connection is then made to.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from tools.dedupe.fingerprint import HttpFetcher, Page
from tools.dedupe.netguard import AddressRefused, IPAddress, Resolver, non_public_reason, system_resolver
from tools.dedupe.service import DedupeError, DedupeService, DedupeSettings

PUBLIC_IP = ipaddress.IPv4Address("127.0.0.2")


class Site:
    """A threaded HTTP server on `host` that records the paths it was asked for."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.requests.append(self.path)
                path = urlsplit(self.path)
                if path.path == "/to":
                    self._redirect(parse_qs(path.query)["u"][0])
                elif path.path.startswith("/hop/"):
                    n = int(path.path.rsplit("/", 1)[1])
                    self._redirect(f"/hop/{n + 1}" if n < site.chain else "/page")
                else:
                    body = f"<html><title>{host}</title><body>{path.path} on {host}</body></html>".encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.chain = 1_000_000
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.host = host
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def public() -> Iterator[Site]:
    site = Site(str(PUBLIC_IP))
    yield site
    site.stop()


@pytest.fixture
def private() -> Iterator[Site]:
    site = Site("127.0.0.1")
    yield site
    site.stop()


def public_policy(address: IPAddress) -> str | None:
    """The production policy, except that 127.0.0.2 plays a public address."""
    return None if address == PUBLIC_IP else non_public_reason(address)


def resolver_with(names: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[IPAddress]:
        if host in names:
            return [ipaddress.ip_address(a) for a in names[host]]
        return await system_resolver(host, port)

    return resolve


def fetch(fetcher: HttpFetcher, url: str) -> Page | None:
    async def run() -> Page | None:
        try:
            return await fetcher(url)
        finally:
            await fetcher.aclose()

    return anyio.run(run)


# -- redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{port}/secret",
        "http://localhost:{port}/secret",
        "http://2130706433:{port}/secret",
        "http://0x7f.1:{port}/secret",
        "http://127.1:{port}/secret",
        "http://017700000001:{port}/secret",
        "http://[::ffff:127.0.0.1]:{port}/secret",
        "http://[::1]:{port}/secret",
        "http://intranet.test:{port}/secret",
        "http://metadata.test/latest/meta-data/",
        "http://10.0.0.7:{port}/secret",
        "http://[fd00::1]:{port}/secret",
        "/to?u=http://127.0.0.1:{port}/secret",  # a second redirect, relative first
    ],
)
def test_a_public_page_redirecting_to_a_private_address_is_refused(public: Site, private: Site, target: str) -> None:
    target = target.format(port=private.port)
    if target.startswith("/"):
        target = public.url(target)
    fetcher = HttpFetcher(
        requests_per_second=1000,
        timeout=5,
        policy=public_policy,
        resolver=resolver_with({"intranet.test": ["127.0.0.1"], "metadata.test": ["169.254.169.254"]}),
    )
    with pytest.raises(AddressRefused) as refused:
        fetch(fetcher, public.url(f"/to?u={target}"))
    assert refused.value.hop >= 1 and "redirect" in str(refused.value)
    assert "private addresses is off" in str(refused.value)
    assert private.requests == []  # nothing reached the private service
    assert public.requests[0].startswith("/to?u=")


def test_redirect_chains_stop_at_the_cap(public: Site) -> None:
    fetcher = HttpFetcher(requests_per_second=1000, timeout=5, policy=public_policy, max_redirects=5)
    assert fetch(fetcher, public.url("/hop/0")) is None
    assert public.requests == [f"/hop/{n}" for n in range(6)]  # the URL and 5 redirects, no more
    assert fetcher.failed == 1 and fetcher.redirects == 5

    public.requests.clear()
    public.chain = 3
    fetcher = HttpFetcher(requests_per_second=1000, timeout=5, policy=public_policy, max_redirects=5)
    page = fetch(fetcher, public.url("/hop/0"))
    assert page is not None and page.status == 200 and "/page on 127.0.0.2" in page.html
    assert page.url == public.url("/hop/0")
    assert public.requests == ["/hop/0", "/hop/1", "/hop/2", "/hop/3", "/page"]


def test_a_redirect_to_another_scheme_is_a_failed_fetch(public: Site) -> None:
    fetcher = HttpFetcher(requests_per_second=1000, timeout=5, policy=public_policy)
    assert fetch(fetcher, public.url("/to?u=file:///etc/passwd")) is None
    assert fetcher.failed == 1


# -- names and addresses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "answers",
    [["127.0.0.1"], ["10.1.2.3"], ["169.254.169.254"], [str(PUBLIC_IP), "127.0.0.1"], ["::ffff:127.0.0.1"]],
)
def test_a_name_resolving_to_a_private_address_is_refused(private: Site, answers: list[str]) -> None:
    fetcher = HttpFetcher(
        requests_per_second=1000, timeout=5, policy=public_policy,
        resolver=resolver_with({"shop.test": answers}),
    )  # fmt: skip
    with pytest.raises(AddressRefused) as refused:
        fetch(fetcher, f"http://shop.test:{private.port}/secret")
    assert refused.value.host == "shop.test" and refused.value.hop == 0
    assert private.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(public: Site) -> None:
    """DNS rebinding: a second lookup would answer 127.0.0.1; the fetcher never makes one."""
    try:
        private = Site("127.0.0.1", public.port)  # the same port on the private address
    except OSError:
        pytest.skip("the public site's port is taken on 127.0.0.1")
    answers = iter(["127.0.0.2", "127.0.0.1", "127.0.0.1", "127.0.0.1"])
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        lookups.append(host)
        return [ipaddress.ip_address(next(answers))]

    try:
        fetcher = HttpFetcher(requests_per_second=1000, timeout=5, policy=public_policy, resolver=rebinding)
        page = fetch(fetcher, f"http://rebind.test:{public.port}/page")
    finally:
        private.stop()
    assert page is not None and "on 127.0.0.2" in page.html
    assert lookups == ["rebind.test"] and private.requests == [] and public.requests == ["/page"]


def test_an_unresolvable_name_is_a_failed_fetch_not_a_public_one() -> None:
    async def nowhere(host: str, port: int) -> list[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    fetcher = HttpFetcher(requests_per_second=1000, timeout=5, resolver=nowhere)
    assert fetch(fetcher, "http://does-not-exist.invalid/") is None
    assert fetcher.failed == 1 and fetcher.fetched == 0


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "255.255.255.255", "240.0.0.1", "192.0.2.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "64:ff9b:1::1",
        "2002:7f00:1::1", "2002:a00:1::1", "2001:db8::1", "::127.0.0.1",
    ],
)  # fmt: skip
def test_non_public_addresses_have_a_reason(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) is None


def test_environment_proxies_are_not_used(public: Site, private: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, private.url(""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    page = fetch(HttpFetcher(requests_per_second=1000, timeout=5, policy=public_policy), public.url("/page"))
    assert page is not None and page.status == 200
    assert private.requests == [] and public.requests == ["/page"]


# -- the service (what `learn_rules` and `bastion dedupe learn` use) ---------------------------


def _service_fetch(tmp_path: Path, fetch_private: bool, url: str) -> object:
    service = DedupeService(
        DedupeSettings(store=tmp_path / "m.db", log_dir=tmp_path, fetch_private=fetch_private, fetch_rate=1000)
    )
    fingerprinter, close = service.fingerprinter("simhash", None)

    async def run() -> object:
        try:
            return await fingerprinter(url)
        finally:
            assert close is not None
            await close()

    return anyio.run(run)


def test_the_service_refuses_loopback_with_a_clear_error(tmp_path: Path, private: Site) -> None:
    for url in (
        private.url("/secret"),
        f"http://localhost:{private.port}/secret",
        f"http://2130706433:{private.port}/",
    ):
        with pytest.raises(DedupeError, match=r"private addresses is off.*BASTION_DEDUPE_FETCH_PRIVATE=true"):
            _service_fetch(tmp_path, False, url)
    assert private.requests == []


def test_fetch_private_still_fetches_loopback_and_follows_redirects(tmp_path: Path, private: Site) -> None:
    fingerprint = _service_fetch(tmp_path, True, private.url("/page"))
    assert fingerprint is not None and getattr(fingerprint, "status", None) == 200
    fetcher = HttpFetcher(requests_per_second=1000, timeout=5, allow_private=True)
    page = fetch(fetcher, private.url(f"/to?u=http://localhost:{private.port}/page"))
    assert page is not None and page.status == 200 and "/page on 127.0.0.1" in page.html
    assert private.requests == ["/page", f"/to?u=http://localhost:{private.port}/page", "/page"]


def test_the_service_resolves_once_so_a_rebinding_name_cannot_reach_loopback(
    tmp_path: Path, private: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The system resolver first fails for the name, then answers 127.0.0.1 (a rebinding DNS server).

    A check that resolves separately from the connection (and treats "unresolvable" as public) lets
    the connection's own lookup reach loopback; resolving once, for the connection, cannot.
    """
    real = socket.getaddrinfo
    calls: list[str] = []

    def rebinding(host: object, port: object, *args: object, **kwargs: object) -> object:
        if host in ("rebind.test", b"rebind.test"):
            calls.append(str(host))
            if len(calls) == 1:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", private.port))]
        return real(host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert _service_fetch(tmp_path, False, f"http://rebind.test:{private.port}/secret") is None
    assert private.requests == [] and len(calls) == 1
