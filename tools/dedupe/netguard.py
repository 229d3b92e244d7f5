"""Outbound connections of the dedupe fetcher: every connection goes to an address that was checked.

The fetcher fetches URLs from logs that callers supply, and follows redirects that the fetched sites
choose: without care that is server-side request forgery (a log or a redirect pointing at
`127.0.0.1`, `169.254.169.254`, `10.0.0.5`, …). The guard sits where the connection is made, in an
httpcore network backend, so that it covers the first URL and every redirect hop alike:

- the host name is resolved **once** per connection (`Resolver`), every address it resolves to is
  checked (`AddressPolicy`), and the socket is opened to one of *those* addresses — never to the
  name, so a DNS answer that changes between the check and the connection (DNS rebinding) cannot
  move the connection elsewhere. TLS still verifies the certificate for the name (httpcore passes
  the URL's host as SNI / `server_hostname`), and the `Host` header is the URL's;
- numeric spellings (`2130706433`, `0x7f.1`, `127.1`, `[::ffff:127.0.0.1]`) are whatever the
  system resolver makes of them, and that resolved address is what is checked;
- a name that does not resolve is a failed connection (nothing is contacted), not "public";
- proxies from the environment are ignored (a proxy would make the connection on our behalf).

`allow_private=True` (`BASTION_DEDUPE_FETCH_PRIVATE=true`) skips the address policy only; the
resolve-once pinning stays.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from contextlib import AbstractContextManager, nullcontext

import anyio
import httpcore
import httpx

from tools.dedupe.syntax import clip

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
AddressPolicy = Callable[[IPAddress], "str | None"]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class AddressRefused(Exception):
    """A connection the guard refused: the host resolves to a non-public address."""

    code = "private_address"

    def __init__(self, host: str, address: IPAddress, reason: str, url: str | None = None, hop: int = 0) -> None:
        self.host, self.address, self.reason, self.url, self.hop = host, address, reason, url, hop
        where = f" (redirect {hop}, to {clip(url, 120)})" if url is not None and hop else ""
        target = f"{address}" if host.strip("[]") == str(address) else f"{clip(host, 120)}, which resolves to {address}"
        super().__init__(
            f"refused to connect to {target}: a {reason} address{where}; "
            "fetching private addresses is off (BASTION_DEDUPE_FETCH_PRIVATE=true allows it)"
        )

    def at(self, url: str, hop: int) -> AddressRefused:
        """The same refusal, saying which URL (and which redirect hop) asked for it."""
        return AddressRefused(self.host, self.address, self.reason, url, hop)


def non_public_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address (None when it is).

    IPv6 forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, Teredo, NAT64) are
    judged by that IPv4 address as well.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return non_public_reason(address.ipv4_mapped)
        if address in _NAT64_LOCAL:
            return "local-use NAT64"
        embedded: list[ipaddress.IPv4Address] = []
        if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        for inner in embedded:
            reason = non_public_reason(inner)
            if reason is not None:
                return f"{reason} (embedded in {address})"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "shared (carrier-grade NAT)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-global"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The system resolver's addresses for `host`, in its order, without duplicates."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        address = _literal(str(info[4][0]))
        if address is not None and address not in addresses:
            addresses.append(address)
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves once, checks every address, and connects to a checked one."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        policy: AddressPolicy = non_public_reason,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline: AbstractContextManager[object] = anyio.fail_after(timeout) if timeout else nullcontext()
        try:
            with deadline:
                addresses = await self.resolver(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {clip(host, 120)} timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {clip(host, 120)}: {clip(str(exc), 120)}") from None
        if not addresses:
            raise httpcore.ConnectError(f"{clip(host, 120)} resolves to no address")
        if not self.allow_private:
            for address in addresses:
                reason = self.policy(address)
                if reason is not None:
                    raise AddressRefused(host, address, reason)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("the dedupe fetcher does not connect to Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request/response mapping, exception mapping) over a `GuardedBackend`.

    httpx 0.28's `AsyncHTTPTransport` takes no network backend, but the httpcore connection pool
    it wraps does: the pool is rebuilt with the same settings and the guarded backend. Environment
    proxies are never used (`trust_env=False`).
    """

    def __init__(self, backend: GuardedBackend, limits: httpx.Limits = _LIMITS) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
