"""The client's address for login lockout: the peer, or X-Forwarded-For only when trusted."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """With N trusted proxies, each appends the address it saw to X-Forwarded-For, so the
    client is the N-th entry from the right; entries left of it are the client's to forge.
    With none, the header is ignored: anyone can send it."""
    peer = str(request.META.get("REMOTE_ADDR", ""))
    trusted = settings.SIGNALBOX_TRUSTED_PROXY_COUNT
    if trusted == 0:
        return peer
    header = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    hops = [hop.strip() for hop in header.split(",") if hop.strip()]
    if not hops:
        return peer
    return hops[-trusted] if len(hops) >= trusted else hops[0]
