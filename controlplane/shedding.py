"""Load shedding: a bound on the HTTP requests one web process works on at once.

Past `SIGNALBOX_MAX_IN_FLIGHT` requests in progress, the next one is answered at once with
503 and `Retry-After` instead of joining a queue that only grows until every request times
out. /healthz and /readyz are never shed: a busy process is alive and ready, and an
orchestrator that restarted it or took it out of rotation would only move its load onto
the others. Websockets are not counted (a page holds one for as long as it is open), nor
are config long-polls (held on purpose).

It runs in front of everything else in the web process (controlplane/asgi.py), so a shed
request costs no Django, no database and no thread: what keeps it cheap when it matters.
uvicorn's own `--limit-concurrency` counts connections, websockets included, and answers
a bare 503 without `Retry-After`; docs/operations.md says how to choose the number.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import Counter

from controlplane.metrics import REGISTRY

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NEVER_SHED = frozenset({"/healthz", "/readyz"})
# Long-polls are held on purpose (for up to 5 minutes) and cost a coroutine, not work:
# counted like websockets, i.e. not at all (docs/debugging.md, the config long-poll).
HELD_PREFIXES = ("/api/v1/config/",)
# Seconds a shed client is asked to wait: long enough to let the queue drain (a full process
# answers its in-flight requests in well under a second), short enough not to look down.
RETRY_AFTER_SECONDS = 1
# At most one log line per this many seconds while shedding: the counter has the numbers.
LOG_EVERY_SECONDS = 10.0

SHED = Counter(
    "signalbox_http_requests_shed_total",
    "HTTP requests this web process answered 503 at once because it was full.",
    registry=REGISTRY,
)

_API_BODY = json.dumps(
    {
        "error": {
            "status": 503,
            "code": "overloaded",
            "message": f"Signalbox is busy; try again in {RETRY_AFTER_SECONDS} s.",
            "fields": {},
        }
    }
).encode()
_PAGE_BODY = (
    "<!doctype html><title>Signalbox is busy</title>"
    "<h1>Signalbox is busy</h1>"
    f"<p>Too many requests at once. Try again in {RETRY_AFTER_SECONDS} second; "
    "this page will work again as soon as the load passes.</p>"
).encode()


def _headers(content_type: bytes, body: bytes) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        (b"cache-control", b"no-store"),
    ]


_API_ANSWER = _headers(b"application/json", _API_BODY)
_PAGE_ANSWER = _headers(b"text/html; charset=utf-8", _PAGE_BODY)


class LoadShedding:
    """ASGI middleware: at most `limit` HTTP requests in progress in this process (0: no
    limit); the rest are answered 503 with Retry-After, in the API's error shape under /api/."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0
        self._shed_since_log = 0
        self._logged_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.limit
            or scope["type"] != "http"
            or scope["path"] in NEVER_SHED
            or scope["path"].startswith(HELD_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            await self._shed(scope, send)
            return
        # One event loop per process: no lock needed around the count.
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _shed(self, scope: Scope, send: Send) -> None:
        SHED.inc()
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_SECONDS:
            logger.warning(
                "shedding load: %d request(s) in progress (SIGNALBOX_MAX_IN_FLIGHT=%d); "
                "%d answered 503 since the last line",
                self.in_flight, self.limit, self._shed_since_log,
            )  # fmt: skip
            self._logged_at, self._shed_since_log = now, 0
        api = scope["path"].startswith("/api/")
        body = _API_BODY if api else _PAGE_BODY
        headers = _API_ANSWER if api else _PAGE_ANSWER
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
