"""A background load generator: calls the entry services' /api/work at a steady rate, so
circuits, health error rates and load balancer stats see traffic; and each service's
preview URL (a blue/green rollout's new side, before any user is sent to it) at a rate of
its own, so the new side's analysis has requests to judge."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from fleet.errors import FleetError

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from fleet.runtime import Fleet

TICK_SECONDS = 0.05
# Calls in flight at most; beyond it calls are dropped and counted, never queued, so a
# hung fleet does not pile up unbounded tasks.
MAX_IN_FLIGHT = 500
CALL_TIMEOUT = aiohttp.ClientTimeout(total=10)
# Calls per second to each preview: the demo's analysis reads every 10 s and needs 5
# responses (deployments/demo.py); 2/s leaves room for a slow new version and a late tick.
PREVIEW_RPS = 2.0


@dataclass
class Preview:
    """A URL that reaches only a service's new version (a load balancer's preview frontend)."""

    url: str
    rps: float = PREVIEW_RPS
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    owed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "rps": self.rps, "sent": self.sent,
                "succeeded": self.succeeded, "failed": self.failed}


class Traffic:
    """Calls to entry services, spread round-robin over services and environments."""

    def __init__(self, fleet: Fleet, rps: float) -> None:
        self.fleet = fleet
        self.rps = rps
        self.sent = 0
        self.succeeded = 0
        self.failed = 0
        self.dropped = 0
        self._in_flight: set[asyncio.Task[None]] = set()
        self.previews: dict[tuple[str, str], Preview] = {}
        self._task: asyncio.Task[None] | None = None
        self._targets: itertools.cycle[tuple[str, str]] | None = None

    def start(self) -> None:
        plan = self.fleet.plan
        targets = [(s, e) for s in plan.entry_services() for e in plan.environment_slugs()]
        if targets:
            self._targets = itertools.cycle(targets)
        self._task = asyncio.create_task(self._run())

    def set_rate(self, rps: float) -> None:
        self.rps = rps

    def set_preview(self, service: str, environment: str, url: Any, rps: Any = PREVIEW_RPS,
                    ) -> Preview | None:
        """Call a service's preview URL `rps` times a second (url None: stop calling it)."""
        plan = self.fleet.plan
        if plan.service(service) is None or environment not in plan.environment_slugs():
            raise FleetError(404, f"no service {service!r} in environment {environment!r}")
        if url is None:
            self.previews.pop((service, environment), None)
            return None
        fields = {}
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            fields["url"] = ["must be an http:// or https:// URL"]
        if isinstance(rps, bool) or not isinstance(rps, int | float) or not 0 <= rps <= 1000:
            fields["rps"] = ["must be a number from 0 to 1000"]
        if fields:
            raise FleetError(400, "bad preview", fields)
        preview = Preview(url.rstrip("/"), float(rps))
        self.previews[(service, environment)] = preview
        return preview

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def to_json(self) -> dict[str, Any]:
        return {
            "rps": self.rps,
            "sent": self.sent,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "dropped": self.dropped,
            "in_flight": len(self._in_flight),
            "previews": [
                {"service": s, "environment": e, **p.to_json()}
                for (s, e), p in sorted(self.previews.items())
            ],
        }

    async def _run(self) -> None:
        owed = 0.0
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            elapsed, last = now - last, now
            owed = owed + self.rps * elapsed if self.rps > 0 and self._targets else 0.0
            while owed >= 1:
                owed -= 1
                self._send(self._call())
            for preview in list(self.previews.values()):
                preview.owed += preview.rps * elapsed
                while preview.owed >= 1:
                    preview.owed -= 1
                    self._send(self._call_preview(preview))

    def _send(self, call: Coroutine[Any, Any, None]) -> None:
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            call.close()
            self.dropped += 1
            return
        task = asyncio.create_task(call)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _call(self) -> None:
        assert self._targets is not None
        service, environment = next(self._targets)
        base = self.fleet.pick(service, environment)
        if base is None:
            self.dropped += 1
            return
        self.sent += 1
        if await self._get(f"{base}/api/work"):
            self.succeeded += 1
        else:
            self.failed += 1

    async def _call_preview(self, preview: Preview) -> None:
        preview.sent += 1
        if await self._get(f"{preview.url}/api/work"):
            preview.succeeded += 1
        else:
            preview.failed += 1

    async def _get(self, url: str) -> bool:
        """One business call; True when it answered below 500."""
        try:
            async with self.fleet.session.get(url, timeout=CALL_TIMEOUT) as resp:
                await resp.read()
                return resp.status < 500
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False
