"""Where notifications may go: user-configured URLs pass health's SSRF guard, when saved and
when sent, and a send connects only to an address the guard checked."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import httpx

from health.probes.guard import ForbiddenAddress, check_address, check_hostname, is_ip


@dataclass(frozen=True)
class Destination:
    """A URL and the addresses its host resolved to, every one allowed by the guard."""

    url: httpx.URL
    addresses: list[str]

    @classmethod
    def of(cls, url: str) -> Destination:
        """Resolve and check; raises ForbiddenAddress (link-local, cloud metadata), OSError
        (the name does not resolve) or httpx.InvalidURL."""
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as DNS and TLS see it
        check_hostname(host)
        if is_ip(host):
            check_address(host)
            return cls(parsed, [host])
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise OSError(f"{host} did not resolve")
        for address in addresses:
            check_address(address)
        return cls(parsed, addresses)

    def request_to(self, address: str) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """(URL, extra headers, httpx extensions) for a request that connects to `address`
        but names the original host in Host and TLS (SNI and certificate check): the name
        is not resolved again, so it cannot rebind to a forbidden address after the check."""
        host = self.url.raw_host.decode("ascii")
        if address == host:
            return self.url, {}, {}
        return (
            self.url.copy_with(host=address),
            {"Host": self.url.netloc.decode("ascii")},
            {"sni_hostname": host},
        )


def refusal(url: str) -> str:
    """Why a URL may not be saved as a notification target ("" when it may).

    A name that does not resolve yet is accepted: it is checked again at every send."""
    try:
        Destination.of(url)
    except ForbiddenAddress as exc:
        return f"{exc}; notifications never go to link-local or cloud-metadata addresses"
    except (OSError, httpx.InvalidURL):
        return ""
    return ""
