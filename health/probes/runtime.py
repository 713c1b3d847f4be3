"""One asyncio loop and its connection pools per worker process, reused by every batch.

Which path each probe kind takes (docs/health.md, "Probe engine"):
- HTTP over plain http: `health.probes.fast` (httptools on asyncio transports, one
  kept-alive connection per instance, started by a callback, no task per probe);
- HTTP over https: aiohttp (TLS verification and SNI details), one pool per process;
- TCP, TLS expiry, gRPC: their own coroutine, one task each.
Keeping the loop and the pools alive between batches keeps connections to instances alive
(keep-alive), so a probe every 10 s reuses its socket instead of opening a new one.
At most `concurrency` probes are in flight; the rest wait in order, without a task.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
from django.conf import settings

from controlplane.outbound import GuardedResolver
from health.choices import CheckKind, Scheme
from health.probes import ProbeResult
from health.probes.fast import FastHttp, raise_descriptor_limit
from health.probes.grpc import probe_grpc
from health.probes.http import probe_http
from health.probes.tcp import probe_tcp
from health.probes.tls import probe_tls
from health.specs import ProbeSpec

T = TypeVar("T")
logger = logging.getLogger(__name__)
Done = Callable[[ProbeResult], None]

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
        # Soft RLIMIT_NOFILE to the hard limit before the client sizes its pool from it.
        self.descriptor_limit = raise_descriptor_limit()
        self.loop = _new_loop()
        self._session: aiohttp.ClientSession | None = None
        self.fast = FastHttp(self.loop)
        self.in_flight = 0
        self._waiting: deque[tuple[ProbeSpec, str, int, Done]] = deque()

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

    def start(self, spec: ProbeSpec, host: str, port: int, done: Done) -> None:
        """Start one probe now (or when a slot frees); `done` gets its result, once."""
        if self.in_flight >= self.concurrency:
            self._waiting.append((spec, host, port, done))
            return
        self.in_flight += 1
        answered = False

        def finished(result: ProbeResult) -> None:
            nonlocal answered
            if answered:
                return
            answered = True
            self.in_flight -= 1
            if self._waiting:
                # Not started from inside this callback: a queue of probes that all fail at
                # once (refused addresses) must not recurse.
                self.loop.call_soon(self._start_waiting)
            done(result)

        try:
            if spec.kind == CheckKind.HTTP and spec.scheme == Scheme.HTTP:
                self.fast.start(spec, host, port, finished)
                return
            task = self.loop.create_task(self._probe_other(spec, host, port))
        except Exception as exc:  # a probe bug shows as that probe's failure
            logger.exception("probe of %s:%s crashed", host, port)
            finished(ProbeResult.failed(f"probe error: {type(exc).__name__}", 0.0))
            return
        task.add_done_callback(lambda t: finished(_outcome(t, host, port)))

    def _start_waiting(self) -> None:
        while self._waiting and self.in_flight < self.concurrency:
            self.start(*self._waiting.popleft())

    async def probe(self, spec: ProbeSpec, host: str, port: int) -> ProbeResult:
        """One probe, awaited (the trial, tests); the same path as the scheduler's."""
        future: asyncio.Future[ProbeResult] = self.loop.create_future()
        self.start(spec, host, port, future.set_result)
        return await future

    async def _probe_other(self, spec: ProbeSpec, host: str, port: int) -> ProbeResult:
        if spec.kind == CheckKind.HTTP:
            return await probe_http(await self.session(), spec, host, port)
        if spec.kind == CheckKind.TCP:
            return await probe_tcp(spec, host, port)
        if spec.kind == CheckKind.GRPC:
            return await probe_grpc(spec, host, port)
        return await probe_tls(spec, host, port)

    def close(self) -> None:
        self.fast.close()
        self.run(asyncio.sleep(0))  # let the closed transports say goodbye
        if self._session is not None and not self._session.closed:
            self.run(self._session.close())
        self.loop.close()


def _outcome(task: asyncio.Task[ProbeResult], host: str, port: int) -> ProbeResult:
    if task.cancelled():
        return ProbeResult.failed("probe error: cancelled", 0.0)
    exc = task.exception()
    if exc is not None:
        logger.error("probe of %s:%s crashed", host, port, exc_info=exc)
        return ProbeResult.failed(f"probe error: {type(exc).__name__}", 0.0)
    return task.result()


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
