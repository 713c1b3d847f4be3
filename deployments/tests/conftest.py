"""Real processes for rollout tests: HAProxy, aiohttp servers that answer with their version."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from cli.signalbox_cli.main import main

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
# Thousands of test requests would bury the failure output.
logging.getLogger("httpx").setLevel(logging.WARNING)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class VersionServer:
    """An HTTP server on 127.0.0.1 answering `GET /` with its version (or 500 when failing)."""

    version: str
    port: int = 0
    failing: bool = False
    hits: int = 0
    runner: Any = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class VersionServers:
    """Runs VersionServers in one background event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[VersionServer] = []

    def start(self, version: str) -> VersionServer:
        server = VersionServer(version)
        asyncio.run_coroutine_threadsafe(self._start(server), self.loop).result(5)
        self.servers.append(server)
        return server

    async def _start(self, server: VersionServer) -> None:
        async def handle(request: web.Request) -> web.Response:
            server.hits += 1
            if server.failing:
                return web.Response(status=500, text=f"{server.version} failing")
            return web.Response(text=server.version)

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(text="", content_type="text/plain")

        app = web.Application()
        app.router.add_get("/", handle)
        app.router.add_get("/version", handle)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.runner = runner

    def close(self) -> None:
        for server in self.servers:
            if server.runner is not None:
                asyncio.run_coroutine_threadsafe(server.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def version_servers() -> Iterator[VersionServers]:
    servers = VersionServers()
    yield servers
    servers.close()


@dataclass
class HAProxy:
    """A running HAProxy with one frontend per backend and an admin runtime socket."""

    socket: str
    ports: dict[str, int]
    process: subprocess.Popen[bytes]
    config: Path
    seen: Counter[str] = field(default_factory=Counter)

    @property
    def connection(self) -> dict[str, Any]:
        return {"socket": self.socket}

    def url(self, backend: str = "be_checkout") -> str:
        return f"http://127.0.0.1:{self.ports[backend]}/"

    def traffic(self, requests: int, backend: str = "be_checkout") -> Counter[str]:
        """Send real requests through the frontend; count answers by body (a version or 5xx)."""
        counts: Counter[str] = Counter()
        with httpx.Client(timeout=5) as client:
            for _ in range(requests):
                response = client.get(self.url(backend), headers={"Connection": "close"})
                key = response.text if response.status_code < 500 else f"{response.status_code}"
                counts[key] += 1
        return counts


def start_haproxy(
    directory: Path, backends: dict[str, list[VersionServer]], health_checks: bool = False
) -> HAProxy:
    sock = str(directory / "admin.sock")
    ports = {name: free_port() for name in backends}
    lines = [
        "global",
        f"  stats socket {sock} mode 600 level admin",
        "defaults",
        "  mode http",
        "  timeout connect 1s",
        "  timeout client 10s",
        "  timeout server 10s",
    ]
    for name, servers in backends.items():
        lines += [
            f"frontend fe_{name}",
            f"  bind 127.0.0.1:{ports[name]}",
            f"  default_backend {name}",
            f"backend {name}",
            "  balance roundrobin",
        ]
        for index, server in enumerate(servers):
            check = " check inter 500ms" if health_checks else ""
            lines.append(f"  server s{index} {server.address} weight 1{check}")
    config = directory / "haproxy.cfg"
    config.write_text("\n".join(lines) + "\n")
    process = run_haproxy(config, sock)
    return HAProxy(socket=sock, ports=ports, process=process, config=config)


def run_haproxy(config: Path, sock: str) -> subprocess.Popen[bytes]:
    """HAProxy in the foreground on `config`, once its admin socket `sock` is up."""
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 5
    while not os.path.exists(sock):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"haproxy did not start: {process.stderr.read() if process.stderr else ''!r}"
            )
        time.sleep(0.02)
    return process


@pytest.fixture
def haproxy_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[HAProxy] = []

    def make(backends: dict[str, list[VersionServer]], **kwargs: Any) -> HAProxy:
        directory = tmp_path / f"haproxy{len(started)}"
        directory.mkdir()
        proxy = start_haproxy(directory, backends, **kwargs)
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.process.terminate()
        proxy.process.wait(5)


@pytest.fixture(autouse=True)
def _fresh_breakers() -> None:
    """Breaker state lives in Redis and must not leak between tests."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("signalbox:breaker:*"):
        client.delete(key)


@dataclass
class Fleet:
    """checkout in production: stable 1.0 servers and canary 2.0 servers behind a real HAProxy."""

    world: Any
    proxy: HAProxy
    stable: list[VersionServer]
    canary: list[VersionServer]
    route: Any

    def register(self, server: VersionServer) -> Any:
        from catalog.models import Instance

        return Instance.objects.create(
            service=self.world.service,
            environment=self.world.production,
            host="127.0.0.1",
            port=server.port,
            version=server.version,
        )


def make_route(world: Any, connection: dict[str, Any], backend: str = "be_checkout") -> Any:
    from deployments.choices import RouterKind
    from deployments.models import TrafficRoute, TrafficRouter

    router = TrafficRouter.objects.create(
        name=f"haproxy-{backend}",
        kind=RouterKind.HAPROXY,
        connection=connection,
        timeout_seconds=1.0,
        retries=1,
    )
    return TrafficRoute.objects.create(
        router=router, service=world.service, environment=world.production, backend=backend
    )


@pytest.fixture
def fleet(world: Any, version_servers: VersionServers, haproxy_factory: Any) -> Fleet:
    stable = [version_servers.start("1.0"), version_servers.start("1.0")]
    canary = [version_servers.start("2.0")]
    proxy = haproxy_factory({"be_checkout": stable + canary})
    route = make_route(world, proxy.connection)
    found = Fleet(world, proxy, stable, canary, route)
    for server in stable + canary:
        found.register(server)
    return found


def drive(
    rollout_id: int,
    until: Any,
    *,
    timeout: float = 15.0,
    between: Any = None,
) -> Any:
    """Run the reconciler inline (no broker) whenever the rollout is due, until `until(r)`."""
    from django.utils import timezone

    from deployments import reconciler
    from deployments.models import Rollout

    deadline = time.monotonic() + timeout
    while True:
        rollout = Rollout.objects.get(pk=rollout_id)
        if until(rollout):
            return rollout
        if time.monotonic() > deadline:
            raise AssertionError(
                f"rollout {rollout_id} still {rollout.state} at {rollout.step_label}: "
                f"{rollout.message}"
            )
        if rollout.next_action_at is not None and rollout.next_action_at <= timezone.now():
            reconciler.advance(rollout_id)
            if between is not None:
                between(Rollout.objects.get(pk=rollout_id))
        else:
            if between is not None:
                between(rollout)
            time.sleep(0.02)


def start(world: Any, version: str = "2.0", steps: Any = None, **kwargs: Any) -> Any:
    """Start a rollout of checkout in production as the world's deployer."""
    from catalog.permissions import Access
    from deployments.actions import start_rollout

    rollout, _ = start_rollout(
        access=Access(user=world.deployer),
        service=world.service,
        environment=world.production,
        version=version,
        steps=steps,
        **kwargs,
    )
    return rollout


def lb_metric(**overrides: Any) -> dict[str, Any]:
    return {
        "provider": "lb_stats",
        "interval": 0.5,
        "success_count": 1,
        "min_requests": 3,
        **overrides,
    }


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """The world's six personas cost ~3 s of PBKDF2 per test; passwords are not under test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def routed(world: Any, tmp_path: Any) -> Any:
    """checkout in production (two 1.0 instances, one 2.0), routed by an HAProxy that is not
    running: nothing advances, for tests of what the API accepts."""
    from catalog.models import Instance

    for port, version in ((9001, "1.0"), (9002, "1.0"), (9003, "2.0")):
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=port,
            version=version,
        )
    return make_route(world, {"socket": str(tmp_path / "haproxy.sock")})


@pytest.fixture
def rollout(world: Any) -> Any:
    """A canary of checkout 1.0 -> 2.0 in production, as providers are handed it."""
    from deployments.models import Rollout

    return Rollout.objects.create(
        team=world.team,
        service=world.service,
        environment=world.production,
        from_version="1.0",
        to_version="2.0",
        strategy="canary",
        steps=[{"set_weight": 100}],
    )


@pytest.fixture
def reconciling() -> Iterator[None]:
    """The reconciler's loop in a thread, as a worker would run it (claim due, one step each)."""
    from django.db import connection

    from deployments import reconciler

    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.is_set():
                for rollout_id, _ in reconciler.claim_due(horizon=timedelta(0)):
                    reconciler.advance(rollout_id)
                time.sleep(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


def run_cli(env: dict[str, str], *argv: str) -> tuple[int, str, str]:
    """`signalbox ARGV` in this process, with `env` set: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = main(list(argv), out=out, err=err)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return code, out.getvalue(), err.getvalue()


def at_once(work: Any, workers: int = 2, timeout: float = 30) -> list[Any]:
    """Run `work()` in `workers` threads released at the same moment (as that many worker
    processes would); their results, each thread closing its own database connection."""
    from django.db import connection

    gate = threading.Barrier(workers)
    results: list[Any] = []

    def worker() -> None:
        try:
            gate.wait(5)
            results.append(work())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results
