"""Health test fixtures: a real aiohttp server on 127.0.0.1, and instances pointed at it."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from health.probes.runtime import reset_runtime


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # PBKDF2 costs ~0.35 s per persona; the world fixture makes six. Not a security test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_probe_runtime() -> Iterator[None]:
    # Each test gets its own loop and pool, so no test inherits another's connections.
    yield
    reset_runtime()


def health_json(status: str, **components: tuple[str, str]) -> dict[str, Any]:
    """An application/health+json document with components {name: (status, output)}."""
    return {
        "status": status,
        "checks": {
            name: [{"componentId": name, "status": s, "output": out}]
            for name, (s, out) in components.items()
        },
    }


@dataclass
class Instances:
    """A real HTTP server standing in for service instances; its answers are set per test."""

    port: int = 0
    health: dict[str, Any] = field(default_factory=lambda: health_json("pass"))
    status: int = 200
    delay: float = 0.0
    hits: int = 0

    async def handle_health(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(
            status=self.status,
            body=json.dumps(self.health),
            content_type="application/health+json",
        )

    async def handle_text(self, request: web.Request) -> web.Response:
        return web.Response(text="hello, all systems nominal")

    async def handle_json(self, request: web.Request) -> web.Response:
        return web.json_response({"db": {"connections": 12, "state": "ok"}, "version": "1.2.3"})

    async def handle_redirect_same(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/health")

    async def handle_redirect_off(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

    async def handle_redirect_loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/redirect-loop")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self.handle_health)
        app.router.add_get("/text", self.handle_text)
        app.router.add_get("/json", self.handle_json)
        app.router.add_get("/redirect-same", self.handle_redirect_same)
        app.router.add_get("/redirect-off", self.handle_redirect_off)
        app.router.add_get("/redirect-loop", self.handle_redirect_loop)
        return app


def serve_in_thread(
    app_factory: Callable[[], web.Application], ssl_context: ssl.SSLContext | None = None
) -> tuple[int, Callable[[], None]]:
    """Start an aiohttp app on 127.0.0.1 on a free port in a thread; returns (port, stop)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(app_factory())
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
        loop.run_until_complete(site.start())
        holder["port"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        holder["runner"] = runner
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10), "the test HTTP server did not start"

    def stop() -> None:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)

    return int(holder["port"]), stop


@pytest.fixture
def instances() -> Iterator[Instances]:
    server = Instances()
    port, stop = serve_in_thread(server.app)
    server.port = port
    yield server
    stop()
