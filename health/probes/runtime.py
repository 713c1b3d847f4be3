"""One asyncio loop and one HTTP connection pool per worker process, reused by every batch.

Keeping the loop and the aiohttp session alive between batches keeps connections to
instances alive too (keep-alive), so a probe every 10 s reuses its socket instead of
opening a new one each time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import aiohttp
from django.conf import settings

from controlplane.outbound import GuardedResolver
from health.choices import CheckKind
from health.probes import ProbeResult
from health.probes.grpc import probe_grpc
from health.probes.http import probe_http
from health.probes.tcp import probe_tcp
from health.probes.tls import probe_tls
from health.specs import ProbeSpec

T = TypeVar("T")

# Idle connections are kept longer than the default 10 s period so each instance's next
# probe finds its socket still open.
KEEPALIVE_SECONDS = 30.0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in requirements; stay portable
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ProbeRuntime:
    """The event loop, the shared connection pool and the concurrency bound of a process."""

    def __init__(self, concurrency: int) -> None:
        self.pid = os.getpid()
        self.concurrency = concurrency
        self.loop = _new_loop()
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.concurrency,
                resolver=GuardedResolver(),
                ttl_dns_cache=10,
                keepalive_timeout=KEEPALIVE_SECONDS,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Probes judge what the instance said; they never follow aiohttp's defaults.
                auto_decompress=True,
                raise_for_status=False,
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "Signalbox-Health/1"},
            )
        return self._session

    @property
    def semaphore(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        return self._semaphore

    async def probe(self, spec: ProbeSpec, host: str, port: int) -> ProbeResult:
        async with self.semaphore:
            if spec.kind == CheckKind.HTTP:
                return await probe_http(await self.session(), spec, host, port)
            if spec.kind == CheckKind.TCP:
                return await probe_tcp(spec, host, port)
            if spec.kind == CheckKind.GRPC:
                return await probe_grpc(spec, host, port)
            return await probe_tls(spec, host, port)

    def close(self) -> None:
        if self._session is not None and not self._session.closed:
            self.run(self._session.close())
        self.loop.close()


_runtime: ProbeRuntime | None = None


def runtime() -> ProbeRuntime:
    """This process's runtime; a forked Celery child gets its own, never its parent's."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid() or _runtime.loop.is_closed():
        _runtime = ProbeRuntime(settings.SIGNALBOX_PROBE_CONCURRENCY)
    return _runtime


def reset_runtime() -> None:
    """Close this process's loop and pool (tests, and the benchmark between phases)."""
    global _runtime
    if _runtime is not None and _runtime.pid == os.getpid():
        _runtime.close()
    _runtime = None
