"""The SSRF guard: probes never reach link-local or cloud-metadata addresses unless allowed.

Hostnames are resolved once and every resolved address is checked; HTTP probes go
through `GuardedResolver`, so the address aiohttp connects to is the one checked (no
DNS-rebinding window between the check and the connection).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from functools import lru_cache
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from django.conf import settings

LINK_LOCAL_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)
# Cloud instance-metadata endpoints: AWS/GCP/Azure/OpenStack (169.254.169.254), AWS over
# IPv6 (fd00:ec2::254), Alibaba (100.100.100.200).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})


class ForbiddenAddress(OSError):
    """The probe target is a link-local or metadata address and the setting forbids it.

    An OSError so aiohttp reports it as a connection error carrying this reason."""


def allowed() -> bool:
    return bool(settings.SIGNALBOX_PROBE_ALLOW_LINK_LOCAL)


def check_address(address: str) -> None:
    """Raise ForbiddenAddress for a link-local or metadata IP (IPv4-mapped IPv6 included)."""
    if allowed():
        return
    reason = _forbidden_reason(address)
    if reason:
        raise ForbiddenAddress(reason)


@lru_cache(maxsize=65536)
def _forbidden_reason(address: str) -> str:
    # Cached: a fleet probes the same few thousand addresses over and over.
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return f"refused: {address} is a cloud metadata address"
    if any(ip in network for network in LINK_LOCAL_NETWORKS):
        return f"refused: {address} is link-local"
    return ""


def check_hostname(host: str) -> None:
    if not allowed() and host.rstrip(".").lower() in METADATA_HOSTNAMES:
        raise ForbiddenAddress(f"refused: {host} is a cloud metadata hostname")


@lru_cache(maxsize=65536)
def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def resolve(host: str, port: int) -> list[str]:
    """The addresses a probe of host:port may connect to, after the guard."""
    check_hostname(host)
    if is_ip(host):
        check_address(host)
        return [host]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise OSError(f"{host} did not resolve")
    for address in addresses:
        check_address(address)
    return addresses


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that refuses forbidden addresses before any connection is made."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: Any = socket.AF_INET
    ) -> list[ResolveResult]:
        check_hostname(host)
        if is_ip(host):
            check_address(host)
            ip_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            return [
                ResolveResult(
                    hostname=host, host=host, port=port, family=ip_family, proto=0, flags=0
                )
            ]
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_address(result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()
