"""The plain-HTTP client under a descriptor limit (health/probes/fast.py): more instances than
RLIMIT_NOFILE allows connections, and every probe still passes. Real servers on 127.0.0.1;
the probing side is a real subprocess with a low RLIMIT_NOFILE (the limit is per process)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from health.choices import CheckStatus
from health.probes.fast import open_limit

ROOT = Path(__file__).resolve().parents[2]
REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/health+json\r\n"
    b'Content-Length: 18\r\n\r\n{"status": "pass"}'
)


class ManyServers:
    """`count` keep-alive HTTP servers on 127.0.0.1 ephemeral ports, one asyncio loop."""

    def __init__(self, count: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.accepted = 0
        self.ports: list[int] = []
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(count, ready), daemon=True)
        self.thread.start()
        assert ready.wait(30)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(REPLY)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _run(self, count: int, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.servers = [
                await asyncio.start_server(self._handle, "127.0.0.1", 0) for _ in range(count)
            ]
            self.ports = [s.sockets[0].getsockname()[1] for s in self.servers]

        self.loop.run_until_complete(start())
        ready.set()
        self.loop.run_forever()

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# The probing process: RLIMIT_NOFILE soft = hard = LIMIT (so raising soft to hard gains
# nothing), `waste` extra descriptors held open (something else in the process eating the
# reserve), then every port probed ROUNDS times, all at once each round.
CHILD = """
import asyncio, json, os, resource, sys
limit, waste, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
ports = json.loads(sys.stdin.read())
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
import django
django.setup()
from health.probes.runtime import ProbeRuntime
from health.specs import ProbeSpec
held = [os.open(os.devnull, os.O_RDONLY) for _ in range(waste)]
rt = ProbeRuntime(concurrency=1000)
spec = ProbeSpec(timeout_seconds=20)

async def round_():
    return await asyncio.gather(*(rt.probe(spec, "127.0.0.1", p) for p in ports))

statuses, reasons, peak = {}, {}, 0
for _ in range(rounds):
    for r in rt.run(round_()):
        statuses[r.status] = statuses.get(r.status, 0) + 1
        if r.reason:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
fast = rt.fast
print(json.dumps({
    "statuses": statuses, "reasons": reasons, "max_open": fast.max_open,
    "opened": fast.opened, "evicted": fast.evicted, "waits": fast.descriptor_waits,
    "fds": len(os.listdir("/proc/self/fd")),
}))
"""


@pytest.fixture
def many() -> Iterator[Callable[[int], ManyServers]]:
    started: list[ManyServers] = []

    def start(count: int) -> ManyServers:
        servers = ManyServers(count)
        started.append(servers)
        return servers

    yield start
    for servers in started:
        servers.stop()


def run_child(ports: list[int], limit: int, waste: int, rounds: int) -> dict[str, Any]:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="controlplane.settings")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(limit), str(waste), str(rounds)],
        input=json.dumps(ports),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_more_instances_than_descriptors_all_pass(many: Callable[[int], ManyServers]) -> None:
    # given 400 instances and a probing process allowed 256 descriptors
    servers = many(400)
    # when every instance is probed three times, all at once each round
    out = run_child(servers.ports, limit=256, waste=0, rounds=3)
    # then every probe passed: none failed for want of a descriptor
    assert out["statuses"] == {CheckStatus.PASS: 1200}, out
    assert set(out["reasons"]) == {"HTTP 200"}, out  # none "cannot connect"
    # and the client stayed under its cap, closing idle connections to make room
    assert out["max_open"] == open_limit(256) == 192
    assert out["evicted"], out
    assert out["fds"] < 256, out


def test_descriptors_eaten_by_something_else_make_probes_wait_not_fail(
    many: Callable[[int], ManyServers],
) -> None:
    # given a process at 256 descriptors where other files already hold 120 of them, so the
    # client's own cap (192) is past what is really free and connect() meets EMFILE
    servers = many(300)
    out = run_child(servers.ports, limit=256, waste=120, rounds=2)
    # then every probe still passed: EMFILE made them wait and retry, never fail
    assert out["statuses"] == {CheckStatus.PASS: 600}, out
    assert set(out["reasons"]) == {"HTTP 200"}, out  # none "cannot connect"
    assert out["waits"], out
