"""A background load generator: calls the entry services' /api/work at a steady rate, so
circuits, health error rates and load balancer stats see traffic."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from fleet.runtime import Fleet

TICK_SECONDS = 0.05
# Calls in flight at most; beyond it calls are dropped and counted, never queued, so a
# hung fleet does not pile up unbounded tasks.
MAX_IN_FLIGHT = 500
CALL_TIMEOUT = aiohttp.ClientTimeout(total=10)


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
        }

    async def _run(self) -> None:
        owed = 0.0
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            owed = owed + self.rps * (now - last) if self.rps > 0 else 0.0
            last = now
            while owed >= 1:
                owed -= 1
                if len(self._in_flight) >= MAX_IN_FLIGHT:
                    self.dropped += 1
                    continue
                task = asyncio.create_task(self._call())
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
        try:
            async with self.fleet.session.get(f"{base}/api/work", timeout=CALL_TIMEOUT) as resp:
                await resp.read()
                ok = resp.status < 500
        except (aiohttp.ClientError, TimeoutError, OSError):
            ok = False
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1
