"""A real Celery worker killed with SIGKILL in the middle of a step; another one finishes.

At each kind of step: inside a router call that sets weights, during a timed pause,
while measuring, and inside the rollback's router call. The test plays the beat
(claim due rollouts every 0.2 s) and checks HAProxy's weights at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from aiohttp import web
from django.conf import settings
from django.db import connection

from catalog.permissions import Access
from deployments import reconciler
from deployments.actions import start_rollout
from deployments.choices import RolloutState
from deployments.drivers import driver_for
from deployments.drivers.base import Split, Target
from deployments.models import Rollout
from deployments.tests.conftest import Fleet, VersionServers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CELERY = str(ROOT / ".venv" / "bin" / "celery")
LEASE_SECONDS = 2  # how long a dead worker's rollout waits before another takes it


@dataclass
class SlowRuntime:
    """A TCP front for HAProxy's admin socket that can hold `set weight` commands for a while."""

    socket_path: str
    port: int = 0
    hold: float = 0.0
    holding: threading.Event = field(default_factory=threading.Event)
    # Hold only once this is set (the rollback's commands, not the step's before them).
    only_after: threading.Event | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command = await reader.readline()
        armed = self.only_after is None or self.only_after.is_set()
        if self.hold and armed and b"set weight" in command:
            self.holding.set()
            # Hold the command until the hold ends or the worker dies; a dead worker's command
            # is then delivered at once, as a real socket delivers what was already sent.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1), timeout=self.hold)
        upstream_reader, upstream_writer = await asyncio.open_unix_connection(self.socket_path)
        upstream_writer.write(command)
        await upstream_writer.drain()
        writer.write(await upstream_reader.read())
        upstream_writer.close()
        await writer.drain()
        writer.close()


@dataclass
class Hook:
    port: int = 0
    delay: float = 0.0
    status: int = 200
    called: threading.Event = field(default_factory=threading.Event)


def serve(loop: VersionServers, runtime: SlowRuntime, hook: Hook) -> None:
    async def answer(request: web.Request) -> web.Response:
        hook.called.set()
        await asyncio.sleep(hook.delay)
        return web.Response(status=hook.status)

    async def start() -> None:
        server = await asyncio.start_server(runtime.handle, "127.0.0.1", 0)
        runtime.port = server.sockets[0].getsockname()[1]
        app = web.Application()
        app.router.add_post("/hook", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        hook.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    asyncio.run_coroutine_threadsafe(start(), loop.loop).result(5)


class Workers:
    """Celery worker processes on the rollouts queue, pointed at the test database."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": settings.REDIS_URL,
            "SIGNALBOX_ROLLOUT_LEASE_SECONDS": str(LEASE_SECONDS),
        }

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{name}.log").open("wb")
        process = subprocess.Popen(
            [
                CELERY,
                "-A",
                "controlplane",
                "worker",
                "-Q",
                "rollouts",
                "-P",
                "solo",
                "-n",
                f"{name}@test",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    # Messages left by earlier tests in this Redis database would only confuse the story.
    broker = redis.Redis.from_url(settings.REDIS_URL)
    broker.delete("rollouts", "unacked", "unacked_index")
    found = Workers(tmp_path)
    yield found
    found.stop()


@pytest.fixture
def beat() -> Iterator[None]:
    """The beat's job, in a thread: what deployments.tasks.claim_due_rollouts does."""
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.is_set():
                for rollout_id, at in reconciler.claim_due():
                    reconciler.celery_schedule(rollout_id, at)
                time.sleep(0.2)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(10)


def wait_for(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


KINDS: dict[str, tuple[list[dict[str, Any]], int, str]] = {
    # kind: (steps, hook status, where the kill lands)
    "set_weight": ([{"set_weight": 40}, {"set_weight": 100}], 200, "router"),
    "pause": ([{"set_weight": 40}, {"pause": {"seconds": 2}}, {"set_weight": 100}], 200, "pause"),
    "analysis": ([{"set_weight": 40}, {"analysis": {}}, {"set_weight": 100}], 200, "hook"),
    "rollback": ([{"set_weight": 40}, {"analysis": {}}, {"set_weight": 100}], 500, "router"),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_another_worker_finishes_a_rollout_whose_worker_was_killed(
    kind: str, fleet: Fleet, version_servers: VersionServers, workers: Workers, beat: None
) -> None:
    steps, hook_status, kill_in = KINDS[kind]
    # given the router behind a runtime front we can slow down, and a hook for analysis
    runtime, hook = SlowRuntime(fleet.proxy.socket), Hook(status=hook_status)
    serve(version_servers, runtime, hook)
    route = fleet.route
    route.router.connection = {"host": "127.0.0.1", "port": runtime.port}
    route.router.save()
    metric = {
        "provider": "webhook",
        "url": f"http://127.0.0.1:{hook.port}/hook",
        "interval": 0.5,
        "success_count": 1,
        "timeout": 5,
    }
    first = workers.start("first")
    # when a rollout runs and the worker dies in the middle of the step
    if kind == "analysis":
        hook.delay = 3
    if kind == "set_weight":
        runtime.hold = 3
    if kind == "rollback":
        # armed before the start: the rollback's router call follows the failed analysis
        # at once, sooner than a test thread could notice the state and arm it
        runtime.hold, runtime.only_after = 3, hook.called
    rollout, _ = start_rollout(
        access=Access(user=fleet.world.deployer),
        service=fleet.world.service,
        environment=fleet.world.production,
        version="2.0",
        steps=steps,
        analysis=[metric],
    )
    if kind == "pause":
        wait_for(
            lambda: Rollout.objects.filter(pk=rollout.pk, pause_until__isnull=False).exists(),
            20,
            "the timed pause",
        )
    elif kind == "analysis":
        wait_for(hook.called.is_set, 20, "the hook to be called")
    elif kind == "rollback":
        wait_for(
            lambda: Rollout.objects.filter(pk=rollout.pk, state="rolling_back").exists(),
            20,
            "the rollback to start",
        )
        wait_for(runtime.holding.is_set, 20, "the rollback's router call")
    else:
        wait_for(runtime.holding.is_set, 20, "the router call")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    runtime.hold, hook.delay = 0, 0
    at_kill = Rollout.objects.get(pk=rollout.pk)
    assert not at_kill.is_terminal, f"the rollout ended before the kill ({kill_in})"
    workers.start("second")
    # then the other worker takes over once the lease runs out, and finishes it
    final = wait_for(
        lambda: (r := Rollout.objects.get(pk=rollout.pk)).is_terminal and r,
        40,
        f"the rollout to finish after the kill ({kind})",
    )
    expected = RolloutState.ROLLED_BACK if kind == "rollback" else RolloutState.SUCCEEDED
    assert final.state == expected, final.message
    # and HAProxy's weights are right: all on the new version, or all back on stable
    route.refresh_from_db()
    applied = driver_for(route).read(Split(0, (), _canary_targets(fleet)), {})
    want = 0 if kind == "rollback" else 100
    assert applied.canary_percent == want
    assert final.applied_weight == want
    seen = fleet.proxy.traffic(20)
    assert seen == ({"1.0": 20} if want == 0 else {"2.0": 20})
    # and no step ran twice to completion
    done = list(final.step_runs.filter(outcome="done").values_list("index", "kind"))
    assert len(done) == len(set(done))


def _canary_targets(fleet: Fleet) -> tuple[Target, ...]:
    return tuple(Target("127.0.0.1", s.port) for s in fleet.canary)
