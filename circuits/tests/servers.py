"""Real HTTP servers for scrape tests: a resilience4j /metrics page and a Hystrix stream.

Each runs an aiohttp app on 127.0.0.1 (a free port) in its own thread and event loop, so
the synchronous scraper under test talks to it over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class FakeInstance:
    """What the fake instance serves; tests change these between scrapes."""

    metrics: str = ""
    commands: list[dict[str, Any]] = field(default_factory=list)
    hystrix_interval: float = 0.1
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.address}{path}"


def resilience4j_page(
    name: str,
    state: str,
    *,
    failure_rate: float = -1.0,
    ok: int = 0,
    failed: int = 0,
    not_permitted: int = 0,
    buffered: tuple[int, int] = (0, 0),
) -> str:
    """A /metrics page as resilience4j-micrometer writes it, for one breaker."""
    metric = "resilience4j_circuitbreaker_"
    who = f'name="{name}"'
    lines = [
        f"# HELP {metric}state The states of the circuit breaker",
        f"# TYPE {metric}state gauge",
    ]
    for s in ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only"):
        lines.append(f'{metric}state{{{who},state="{s}"}} {1 if s == state else 0}.0')
    lines += [
        f"# TYPE {metric}failure_rate gauge",
        f"{metric}failure_rate{{{who}}} {failure_rate}",
        f"# TYPE {metric}slow_call_rate gauge",
        f"{metric}slow_call_rate{{{who}}} -1.0",
        f"# TYPE {metric}buffered_calls gauge",
        f'{metric}buffered_calls{{kind="successful",{who}}} {buffered[0]}.0',
        f'{metric}buffered_calls{{kind="failed",{who}}} {buffered[1]}.0',
        f"# TYPE {metric}calls_seconds summary",
        f'{metric}calls_seconds_count{{kind="successful",{who}}} {ok}.0',
        f'{metric}calls_seconds_sum{{kind="successful",{who}}} 1.5',
        f'{metric}calls_seconds_count{{kind="failed",{who}}} {failed}.0',
        f'{metric}calls_seconds_sum{{kind="failed",{who}}} 0.5',
        f"# TYPE {metric}not_permitted_calls_total counter",
        f'{metric}not_permitted_calls_total{{kind="not_permitted",{who}}} {not_permitted}.0',
        "# TYPE jvm_threads_live gauge",
        "jvm_threads_live 42.0",
    ]
    return "\n".join(lines) + "\n"


def hystrix_command(
    name: str,
    *,
    open_: bool = False,
    error_percentage: int = 0,
    success: int = 0,
    failure: int = 0,
    short_circuited: int = 0,
    force_open: bool = False,
) -> dict[str, Any]:
    return {
        "type": "HystrixCommand",
        "name": name,
        "group": "checkout",
        "isCircuitBreakerOpen": open_,
        "errorPercentage": error_percentage,
        "requestCount": success + failure + short_circuited,
        "rollingCountSuccess": success,
        "rollingCountFailure": failure,
        "rollingCountShortCircuited": short_circuited,
        "rollingCountTimeout": 0,
        "latencyExecute": {"0": 1, "50": 12, "99": 250, "100": 400},
        "propertyValue_circuitBreakerErrorThresholdPercentage": 50,
        "propertyValue_circuitBreakerRequestVolumeThreshold": 20,
        "propertyValue_circuitBreakerForceOpen": force_open,
        "propertyValue_circuitBreakerForceClosed": False,
    }


def _app(fake: FakeInstance) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=fake.metrics, content_type="text/plain")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        try:
            while True:
                await response.write(b"ping: \n\n")
                for command in list(fake.commands):
                    await response.write(f"data: {json.dumps(command)}\n\n".encode())
                await asyncio.sleep(fake.hystrix_interval)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/hystrix.stream", stream)
    app.router.add_get("/elsewhere", redirect)
    return app


@contextmanager
def serving(fake: FakeInstance) -> Iterator[FakeInstance]:
    """Serve `fake` on a free port of 127.0.0.1 until the block ends."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(_app(fake), handler_cancellation=True)

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True
    )
    thread.start()
    ready.wait(5)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
