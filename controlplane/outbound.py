"""The outbound guard: every request to an address a user configured passes through here.

Probes, Prometheus and Hystrix scrapes, notifiers, rollout analysis providers and anything
later that calls a user-set address use one policy (docs/configuration.md, Outbound calls):

- cloud-metadata addresses and names, link-local, unspecified, multicast and broadcast
  addresses are always refused (IPv4-mapped, -compatible and NAT64 forms included);
- loopback and private addresses are refused unless an admin allowed their network in
  `SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS`;
- the address checked is the resolved one, never the name, and the connection goes to the
  address that was checked (no DNS-rebinding window between check and connect);
- every redirect that is followed is checked again, as a new request.

Four ways in, one policy: `request()` (a whole HTTP exchange, for notifiers and analysis
providers), `GuardedResolver` + `check_host()` (for aiohttp sessions: probes and scrapes),
`resolve()`/`aresolve()` (for raw sockets: TCP, TLS and gRPC probes) and
`guarded_connections()` (for libraries that connect by themselves: Apprise). `refusal()`
answers "may this URL be saved?" for serializers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json as jsonlib
import re
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance-metadata endpoints: AWS/GCP/Azure/OpenStack (169.254.169.254), AWS over
# IPv6 (fd00:ec2::254), Alibaba (100.100.100.200), Oracle's second one (192.0.0.192).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
METADATA_HOSTNAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data"}
)
# (network, what it is): refused whatever the settings say.
ALWAYS_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("169.254.0.0/16", "link-local"),
        ("fe80::/10", "link-local"),
        ("0.0.0.0/8", "an unspecified address"),
        ("::/128", "an unspecified address"),
        ("224.0.0.0/4", "multicast"),
        ("ff00::/8", "multicast"),
        ("255.255.255.255/32", "broadcast"),
    )
)
# Refused unless SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS covers the address.
RESTRICTED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("127.0.0.0/8", "loopback"),
        ("::1/128", "loopback"),
        ("10.0.0.0/8", "private"),
        ("172.16.0.0/12", "private"),
        ("192.168.0.0/16", "private"),
        ("100.64.0.0/10", "shared address space (CGNAT)"),
        ("fc00::/7", "private (unique local)"),
    )
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
SCHEMES = frozenset({"http", "https"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# What a caller may keep of an answer it did not expect (an error page): enough to tell
# what went wrong, too little to carry a secret or a document out of someone's network.
EXCERPT_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")


class Refused(OSError):
    """The address is one the outbound policy forbids.

    An OSError, so HTTP clients and socket code report it as a connection failure that
    carries this reason."""


# -- the policy -----------------------------------------------------------------------------


def allowed_networks() -> tuple[IPNetwork, ...]:
    return _parse_networks(tuple(settings.SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS))


@lru_cache(maxsize=8)
def _parse_networks(values: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in values)


def check_address(address: str) -> None:
    """Raise Refused unless the policy lets a request go to this IP address."""
    reason = _reason(address, allowed_networks())
    if reason:
        raise Refused(reason)


@lru_cache(maxsize=65536)
def _reason(address: str, allowed: tuple[IPNetwork, ...]) -> str:
    # Cached: a fleet probes the same few thousand addresses over and over.
    ip = _embedded_ipv4(ipaddress.ip_address(address.split("%", 1)[0]))
    if ip in METADATA_ADDRESSES:
        return f"refused: {address} is a cloud metadata address"
    for network, what in ALWAYS_REFUSED:
        if ip.version == network.version and ip in network:
            return f"refused: {address} is {what}"
    for network, what in RESTRICTED:
        if ip.version == network.version and ip in network:
            if any(ip.version == n.version and ip in n for n in allowed):
                return ""
            return (
                f"refused: {address} is {what}; an admin may allow its network in "
                "SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS"
            )
    return ""


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 form stands for (mapped, compatible, NAT64), else `ip`."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    packed = ip.packed
    if ip in NAT64 or (packed[:12] == bytes(12) and int(ip) > 1):
        return ipaddress.IPv4Address(packed[12:])
    return ip


@lru_cache(maxsize=65536)
def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def check_host(host: str) -> None:
    """Refuse metadata names and forbidden IP literals; a name is checked once resolved."""
    host = host.strip("[]")
    if host.rstrip(".").lower() in METADATA_HOSTNAMES:
        raise Refused(f"refused: {host} is a cloud metadata hostname")
    if is_ip(host):
        check_address(host)


def resolve(host: str, port: int) -> list[str]:
    """The addresses a connection to host:port may use, every one checked (sync)."""
    check_host(host)
    host = host.strip("[]")
    if is_ip(host):
        return [host]
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _checked(host, (str(info[4][0]) for info in infos))


async def aresolve(host: str, port: int) -> list[str]:
    """The addresses a connection to host:port may use, every one checked (asyncio)."""
    check_host(host)
    host = host.strip("[]")
    if is_ip(host):
        return [host]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return _checked(host, (str(info[4][0]) for info in infos))


def _checked(host: str, addresses: Iterable[str]) -> list[str]:
    found = list(dict.fromkeys(addresses))
    if not found:
        raise OSError(f"{host} did not resolve")
    # One forbidden address refuses the name: a round-robin answer mixing the metadata
    # address with a public one would otherwise reach it on some attempts.
    for address in found:
        check_address(address)
    return found


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses forbidden addresses before any connection is made.

    aiohttp does not call a resolver for IP literals: callers check each URL's host with
    `check_host()` before each request (and each redirect they follow)."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: Any = socket.AF_INET
    ) -> list[ResolveResult]:
        check_host(host)
        if is_ip(host):
            ip_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            return [
                ResolveResult(
                    hostname=host, host=host, port=port, family=ip_family, proto=0, flags=0
                )
            ]
        results = await self._inner.resolve(host, port, family)
        _checked(host, (r["host"] for r in results))
        return results

    async def close(self) -> None:
        await self._inner.close()


def refused_by(exc: BaseException) -> Refused | None:
    """The guard's refusal behind a client library's connection error, if that was the cause
    (aiohttp wraps a resolver's error in ClientConnectorDNSError, which prints without it)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, Refused):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return None


# -- URLs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """A URL and the addresses its host resolved to, every one allowed by the policy."""

    url: httpx.URL
    addresses: list[str]

    @classmethod
    def of(cls, url: str | httpx.URL) -> Destination:
        """Parse, resolve and check. Raises Refused, OSError (does not resolve) or
        httpx.InvalidURL (not an http(s) URL with a host)."""
        parsed = httpx.URL(url)
        if parsed.scheme not in SCHEMES or not parsed.raw_host:
            raise httpx.InvalidURL("must be an http:// or https:// URL with a host")
        host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS see it
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return cls(parsed, resolve(host, port))

    def request_to(self, address: str) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """(URL, extra headers, httpx extensions) for a request that connects to `address`
        but names the original host in Host and TLS (SNI and certificate check): the name
        is not resolved again, so it cannot rebind to a forbidden address after the check."""
        host = self.url.raw_host.decode("ascii")
        if address == host.strip("[]"):
            return self.url, {}, {}
        return (
            self.url.copy_with(host=address),
            {"Host": self.url.netloc.decode("ascii")},
            {"sni_hostname": host},
        )


def refusal(url: str, *, resolve_names: bool = True) -> str:
    """Why `url` may not be saved as a target of outbound calls ("" when it may).

    A name that does not resolve yet is accepted: it is checked again at every call. With
    `resolve_names` off only the URL's form and an IP-literal host are checked (for
    targets derived in bulk, where a slow resolver must not hold the caller)."""
    try:
        if not resolve_names:
            parsed = httpx.URL(url)
            if parsed.scheme not in SCHEMES or not parsed.raw_host:
                raise httpx.InvalidURL("must be an http:// or https:// URL with a host")
            check_host(parsed.raw_host.decode("ascii"))
            return ""
        Destination.of(url)
    except Refused as exc:
        return str(exc)
    except httpx.InvalidURL as exc:
        return str(exc)
    except (OSError, UnicodeError):
        return ""
    return ""


# -- one HTTP exchange -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What an outbound request got back: status, headers and at most `max_bytes` of body."""

    status_code: int
    headers: httpx.Headers
    content: bytes
    url: str
    redirects: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    json: Any = None,
    params: Mapping[str, str] | None = None,
    max_redirects: int = 0,
    max_bytes: int = 1_000_000,
) -> Reply:
    """One HTTP exchange with a user-configured URL, under the policy.

    Each hop is resolved and checked, and connects only to a checked address (in order,
    until one connects). Redirects are followed up to `max_redirects` times, each checked
    as a new request; past that, or with none allowed, the 3xx is the answer. Raises
    Refused, httpx.InvalidURL, OSError (the name does not resolve) or httpx.HTTPError.
    """
    body = content if json is None else jsonlib.dumps(json).encode()
    sent_headers = dict(headers or {})
    if json is not None:
        sent_headers.setdefault("Content-Type", "application/json")
    target = httpx.URL(url, params=params) if params else httpx.URL(url)
    hops: list[str] = []
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        while True:
            reply = _exchange(client, method, target, sent_headers, body, max_bytes)
            location = reply.headers.get("Location")
            if (
                reply.status_code not in REDIRECT_STATUSES
                or not location
                or len(hops) >= max_redirects
            ):
                return Reply(reply.status_code, reply.headers, reply.content, str(target), hops)
            hops.append(str(target))
            target = target.join(location)
            if reply.status_code not in (307, 308):
                method, body = "GET", None  # what browsers and curl -L do after 301-303


def _exchange(
    client: httpx.Client,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    body: bytes | None,
    max_bytes: int,
) -> Reply:
    destination = Destination.of(url)
    error: Exception | None = None
    for address in destination.addresses:
        target, host_header, extensions = destination.request_to(address)
        try:
            with client.stream(
                method,
                target,
                content=body,
                headers={**headers, **host_header},
                extensions=extensions,
            ) as response:
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                    size += len(chunk)
                    if size >= max_bytes:
                        break
                return Reply(
                    response.status_code, response.headers, b"".join(chunks)[:max_bytes], str(url)
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            error = exc  # the next address may answer
    assert error is not None  # Destination.of never returns without an address
    raise error


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """A bounded, one-line, printable excerpt of an answer, safe to store and show."""
    flat = _SPACE.sub(" ", _CONTROL.sub("", text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- every connection of a third-party library ---------------------------------------------

_guarded = threading.local()
_plain_connect = socket.socket.connect
_plain_connect_ex = socket.socket.connect_ex


@contextmanager
def guarded_connections() -> Iterator[None]:
    """While active, every socket this thread connects passes the policy.

    For libraries that make their own connections (Apprise's plugins: requests, smtplib,
    ...): `socket.socket.connect` and `connect_ex` are wrapped once per process and check
    the address about to be connected, resolving a name first, so the socket connects
    only to an address that was checked. Only TCP/IP sockets may connect (no Unix
    sockets). Other threads are untouched; work the library hands to its own threads is
    not covered, so callers run it in this one."""
    _install_socket_guard()
    previous = getattr(_guarded, "on", False)
    _guarded.on = True
    try:
        yield
    finally:
        _guarded.on = previous


def connections_guarded() -> bool:
    return bool(getattr(_guarded, "on", False))


def _install_socket_guard() -> None:
    if getattr(socket.socket.connect, "_signalbox_guard", False):
        return

    def connect(sock: socket.socket, address: Any) -> None:
        if connections_guarded():
            address = _checked_sockaddr(sock, address)
        _plain_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if connections_guarded():
            address = _checked_sockaddr(sock, address)
        return _plain_connect_ex(sock, address)

    connect._signalbox_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]


def _checked_sockaddr(sock: socket.socket, address: Any) -> Any:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise Refused("refused: only TCP/IP connections may go to a user-set address")
    host, port = str(address[0]), int(address[1])
    checked = resolve(host, port)
    wanted = 6 if sock.family == socket.AF_INET6 else 4
    for candidate in checked:
        if ipaddress.ip_address(candidate.split("%", 1)[0]).version == wanted:
            return (candidate, port, *tuple(address[2:]))
    raise OSError(f"{host} has no IPv{wanted} address")
