"""API throttling per caller: each API token (and each signed-in person) has its own budget.

Keyed on the token, never on the address: a fleet behind one NAT gateway shares an address,
not a token. A fixed window counted in Redis (atomic INCR, through controlplane.redis and
its timeouts), so every web process shares one count; past the budget DRF answers 429 with
Retry-After, the seconds left in the window.
"""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from catalog.models import ApiToken
from controlplane import redis

logger = logging.getLogger(__name__)

_RATE = re.compile(r"^(\d+)/(s|sec|second|m|min|minute|h|hour|d|day)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
OFF = "off"


def parse_rate(name: str, rate: str) -> tuple[int, int] | None:
    """(requests, seconds) from "600/min"; None for "off"; ImproperlyConfigured otherwise."""
    rate = rate.strip().lower()
    if rate == OFF:
        return None
    match = _RATE.match(rate)
    if match is None or int(match.group(1)) < 1:
        raise ImproperlyConfigured(
            f"{name}={rate!r}: write requests per period, e.g. 600/min, 20/s, 10000/hour, "
            "or off"
        )
    return int(match.group(1)), _SECONDS[match.group(2)[0]]


class CallerRateThrottle(BaseThrottle):
    """The `token` rate per API token, the `user` rate per signed-in person."""

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        caller = _caller(request)
        if caller is None:
            return True  # anonymous requests are refused (401) before they cost anything
        scope, ident = caller
        rate = parse_rate(scope, rates()[scope])
        if rate is None:
            return True
        limit, period = rate
        now = time.time()
        window = int(now // period)
        key = cache_key(scope, ident, window)
        try:
            count = _increment(key, period)
        except Exception:
            # Redis away: the API keeps answering (docs/operations.md), unthrottled.
            logger.warning("throttle count unavailable for %s; allowing", key, exc_info=True)
            return True
        if count <= limit:
            return True
        self.retry_after = (window + 1) * period - now
        return False

    def wait(self) -> float | None:
        return math.ceil(self.retry_after) if self.retry_after is not None else None


def rates() -> dict[str, str]:
    """The configured rates by scope (REST_FRAMEWORK's DEFAULT_THROTTLE_RATES)."""
    configured: dict[str, str] = getattr(settings, "REST_FRAMEWORK", {})["DEFAULT_THROTTLE_RATES"]
    return configured


def cache_key(scope: str, ident: str, window: int) -> str:
    return f"signalbox:throttle:{scope}:{ident}:{window}"


def _caller(request: Request) -> tuple[str, str] | None:
    if isinstance(request.auth, ApiToken):
        return "token", request.auth.key_id
    if request.user.is_authenticated:
        return "user", str(request.user.pk)
    return None


def _increment(key: str, period: int) -> int:
    # The key names its window, so it only has to outlive it.
    with redis.client().pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, period + 1)
        count, _ = pipe.execute()
    return int(count)
