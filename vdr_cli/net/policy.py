"""Which URLs vdr may fetch: anything a person typed; only the public web for the model.

Two modes. `user`: the URL came from a person (an argument, a line they piped), so any
http(s) host is fine, their own intranet included. `agent`: the URL was chosen by the model
(or came out of web content), so it may not reach private, loopback, link-local, CGNAT,
cloud-metadata, multicast, reserved or unspecified addresses, in any spelling: decimal,
octal, hex and short IPv4 forms, IPv4-mapped/compatible IPv6, 6to4, NAT64 and Teredo
embeddings. URLs with credentials are refused (`http://good.com@10.0.0.1/` tricks).

The address check that matters happens at connect time: in agent mode the client's
transport resolves the host itself, checks every address, and connects to the checked
address (`_GuardedBackend`), so a DNS answer that changes between a check and the connect
(rebinding) cannot win, and every redirect hop goes through the same door. `check()` is
the early, syntactic half: it gives clear errors before any packet is sent.

`net.allow_private` (or --allow-private) lifts the private-address rules, not the
cloud-metadata, multicast, reserved or unspecified ones: nothing legitimate lives there.
Guarded clients ignore proxy environment variables: through a proxy the address that is
connected to is the proxy's, and the check would mean nothing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx

from vdr_cli.net.errors import BlockedUrl
from vdr_cli.net.special_ranges import METADATA_ADDRESSES, special_purpose

Mode = Literal["user", "agent"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> addresses (strings); the default is the system resolver.
Resolver = Callable[[str, int], Awaitable[list[str]]]

SCHEMES = ("http", "https")
METADATA_HOSTS = {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
PRIVATE_HINT = "the URL was chosen by the model; --allow-private (or `vdr config set net.allow_private true`) lets it reach private addresses"


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse a host the way browsers and inet_aton do: 1 to 4 parts, each decimal, 0x-hex or 0-octal.

    `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` are all 127.0.0.1. Returns None for a
    name that is not numeric.
    """
    if host.endswith("."):
        host = host[:-1]
    parts = host.split(".")
    if not host or len(parts) > 4:
        return None
    values = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                values.append(int(part[2:] or "0", 16))
            elif len(part) > 1 and part.startswith("0"):
                values.append(int(part, 8))
            else:
                if not part.isdigit():
                    return None
                values.append(int(part, 10))
        except ValueError:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for i, v in enumerate(head):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64, Teredo client)."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    packed = ip.packed
    if packed[:12] == bytes(12) and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed[12:])
    return None


def classify(ip: IPAddress) -> tuple[str, bool] | None:
    """Why an address is off limits to the model, and whether `allow_private` lifts that; None if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            ip = ipaddress.IPv6Address(str(ip).split("%")[0])
        inner = embedded_ipv4(ip)
        if inner is not None:
            found = classify(inner)
            if found:
                return f"embeds {inner}, {found[0]}", found[1]
            if ip in NAT64:
                return None  # DNS64 on an IPv6-only network: a public IPv4 host, reached by translation
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address", False
    if ip.is_unspecified:
        return "the unspecified address", False
    if ip.is_multicast:
        return "a multicast address", False
    if ip.is_loopback:
        return "a loopback address", True
    if ip.is_link_local:
        return "a link-local address", True
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a shared (CGNAT) address", True
    if isinstance(ip, ipaddress.IPv4Address) and ip.is_reserved:  # 240/4: Python files it under private too
        return "a reserved address", False
    if ip.is_private:
        return "a private address", True
    if ip.is_reserved:
        return "a reserved address", False
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address", True
    if not ip.is_global:
        return "not a globally routable address", True
    entry = special_purpose(ip)  # what is_global misses (192.0.0.0/24, 3fff::/20, ...)
    if entry is not None:
        return f"a special-purpose address ({entry})", True
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


@dataclass(frozen=True)
class UrlPolicy:
    """What may be fetched; `mode="agent"` for model-chosen URLs."""

    mode: Mode = "user"
    allow_private: bool = False
    allow: tuple[str, ...] = ()  # networks let through one by one ("127.0.0.1/32"), the rest stays blocked
    resolver: Resolver | None = None  # tests inject one; None is the system resolver

    def _allowed(self, ip: IPAddress, liftable: bool) -> bool:
        if liftable and self.allow_private:
            return True
        return liftable and any(ip in ipaddress.ip_network(net, strict=False) for net in self.allow)

    @property
    def guarded(self) -> bool:
        return self.mode == "agent"

    @classmethod
    def from_config(cls, mode: Mode = "user", allow_private: bool | None = None) -> "UrlPolicy":
        from vdr_cli import config

        return cls(mode=mode, allow_private=bool(config.current().get("net.allow_private", allow_private)))

    # -- the syntactic check ----------------------------------------------------------
    def check(self, url: str) -> str:
        """Validate a URL and return it normalised for fetching (numeric hosts in dotted form,
        no fragment). Raises `BlockedUrl` naming the URL and the reason."""
        shown = _shorten(url)
        parsed = self._parse(url)
        if parsed.scheme not in SCHEMES:
            raise BlockedUrl(f"{shown}: blocked: only http and https URLs are fetched (not {parsed.scheme or 'a relative URL'})", url=url)
        host = parsed.host
        if not host:
            raise BlockedUrl(f"{shown}: blocked: the URL has no host", url=url)
        if self.guarded and parsed.userinfo:
            raise BlockedUrl(f"{shown}: blocked: the URL carries credentials (user:password@host)", url=url)
        literal = _ip_literal(host)
        if literal is not None and isinstance(literal, ipaddress.IPv4Address) and str(literal) != host:
            parsed = parsed.copy_with(host=str(literal))  # one spelling: the one we check is the one dialled
        if self.guarded:
            if literal is not None:
                self._check_ip(literal, host, url)
            else:
                name = host.rstrip(".").lower()
                if name in METADATA_HOSTS:
                    raise BlockedUrl(f"{shown}: blocked: {name} is a cloud metadata host", url=url)
                if (name == "localhost" or name.endswith(".localhost")) and not self.allow_private:
                    raise BlockedUrl(f"{shown}: blocked: {name} is loopback", PRIVATE_HINT, url=url)
        return str(parsed.copy_with(fragment=None))

    def _parse(self, url: str) -> httpx.URL:
        try:
            return httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            # httpx refuses some numeric spellings ("0177.0.0.1"); read the host ourselves.
            try:
                parts = urlsplit(url)
                ip = parse_ipv4(parts.hostname or "")
                port = parts.port  # raises on "http://0.0.0.0:x/" (found by the reliability fuzzing)
            except ValueError:
                ip = None
            if ip is not None:
                netloc = str(ip) + (f":{port}" if port else "")
                if parts.username or parts.password:
                    netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
                try:
                    return httpx.URL(urlunsplit(parts._replace(netloc=netloc)))
                except (httpx.InvalidURL, ValueError):
                    pass
            raise BlockedUrl(f"{_shorten(url)}: not a valid URL ({exc})", url=url) from None

    def _check_ip(self, ip: IPAddress, host: str, url: str) -> None:
        found = classify(ip)
        if found is None:
            return
        reason, liftable = found
        if self._allowed(ip, liftable):
            return
        spelled = f"{host} is" if str(ip) == host else f"{host} is {ip},"
        raise BlockedUrl(f"{_shorten(url)}: blocked: {spelled} {reason}", PRIVATE_HINT if liftable else None, url=url)

    # -- the connect-time check ---------------------------------------------------------
    async def resolve(self, host: str, port: int) -> list[str]:
        """Resolve `host` and check every address; returns the addresses to dial (agent mode)."""
        literal = _ip_literal(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await (self.resolver or system_resolver)(host, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {host} ({exc})") from exc
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}")
        for addr in addresses:
            ip = ipaddress.ip_address(addr.split("%")[0])
            found = classify(ip)
            if found and not self._allowed(ip, found[1]):
                # Any bad answer condemns the host: mixing public and private answers is
                # how rebinding attacks hedge their bets.
                shown = f"{host} is" if addr == host else f"{host} resolves to {addr},"
                raise BlockedUrl(f"blocked: {shown} {found[0]}", PRIVATE_HINT if found[1] else None, url=host)
        return addresses

    # -- clients --------------------------------------------------------------------------
    def transport(self, *, max_connections: int = 32) -> httpx.AsyncBaseTransport | None:
        """The guarded transport in agent mode; None (httpx's default) in user mode."""
        if not self.guarded:
            return None
        return GuardedTransport(self, max_connections=max_connections)

    def make_client(self, *, timeout: float = 20.0, max_connections: int = 32, **kwargs: Any) -> httpx.AsyncClient:
        """A client from `net.client.make_client`, guarded when the policy needs it."""
        from vdr_cli.net.client import make_client

        return make_client(timeout=timeout, max_connections=max_connections,
                           transport=self.transport(max_connections=max_connections), **kwargs)


def _ip_literal(host: str) -> IPAddress | None:
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return parse_ipv4(host)


def _shorten(url: str, limit: int = 200) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and dials the checked address: the pin against DNS rebinding."""

    def __init__(self, policy: UrlPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        if timeout is not None:
            try:
                addresses = await asyncio.wait_for(self._policy.resolve(host, port), timeout)
            except asyncio.TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
        else:
            addresses = await self._policy.resolve(host, port)
        last: Exception | None = None
        for addr in addresses:
            try:
                return await self._inner.connect_tcp(addr, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        raise BlockedUrl("blocked: unix sockets are not reachable from model-chosen URLs")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the connection pool's network backend replaced by `_GuardedBackend`."""

    def __init__(self, policy: UrlPolicy, *, max_connections: int = 32) -> None:
        super().__init__(
            trust_env=True,  # CA bundle settings only; proxies are not used by a transport built here
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max(1, max_connections // 2)),
        )
        pool = self._pool
        # httpx builds the pool without a backend argument; swapping it is the one private
        # touch, and tests/test_net_policy.py fails loudly if httpcore renames it.
        if not hasattr(pool, "_network_backend"):  # pragma: no cover
            raise RuntimeError("httpcore's connection pool has no _network_backend: cannot pin addresses")
        pool._network_backend = _GuardedBackend(policy)
