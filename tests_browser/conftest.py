"""The whole system for the dashboard's browser tests: the demo fleet, Celery, HAProxy.

The browser, the uvicorn server and `log_in` are the shell's (controlplane/tests/browser.py,
loaded by the root conftest). Here: the demo fleet (`python -m fleet run` on free ports),
a Celery worker with its beat (probes, rollouts, alert evaluation, circuit scrapes), the demo
catalog seeded from the running fleet, and HAProxy in front of a service for rollouts.
Nothing is mocked.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from controlplane.tests.browser import ARTIFACTS, subprocess_environment

if TYPE_CHECKING:
    from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[1]
DEMO_PASSWORD = "pw-demo-dashboard"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
# Probes of the tests' services: every 2 s, down at the first failure, so "within one check
# period plus 2 s" is a few seconds, not Kubernetes' default 30.
CHECK_PERIOD_SECONDS = 2
START_SECONDS = 30


def _wait(what: str, ready: Any, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see {log}")
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready in {START_SECONDS} s; see {log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class DemoFleet:
    """The running demo fleet: its plan (real ports) and its control API."""

    state: Path
    process: subprocess.Popen[bytes]

    @property
    def plan(self) -> dict[str, Any]:
        return dict(json.loads(self.state.read_text()))

    @property
    def control(self) -> str:
        control = self.plan["control"]
        return f"http://{control['host']}:{control['port']}"

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.control + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def fault(self, instance_id: str, **faults: Any) -> None:
        self.call("POST", f"/fleet/instances/{instance_id}/faults", faults)

    def instances(self, service: str, environment: str = "production") -> list[dict[str, Any]]:
        return [
            i
            for i in self.plan["instances"]
            if i["service"] == service and i["environment"] == environment
        ]

    def reset(self) -> None:
        """Every instance back to no faults (tests share the fleet)."""
        for spec in self.plan["instances"]:
            self.fault(spec["id"], reset=True)


@pytest.fixture(scope="session")
def demo_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoFleet]:
    """`python -m fleet run` with the demo shop on free ports, for the whole session."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "demo-fleet.log"
    state = tmp_path_factory.mktemp("fleet") / "fleet.json"
    command = [
        sys.executable, "-m", "fleet", "run", "--config", "fleet/demo.yaml",
        "--base-port", "0", "--control-port", "0", "--state", str(state), "--traffic", "0",
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    fleet = DemoFleet(state, process)
    try:
        _wait("the demo fleet", state.exists, process, log)
        yield fleet
    finally:
        _stop(process)


@pytest.fixture
def workers(transactional_db: None, tmp_path: Path) -> Iterator[None]:
    """A Celery worker on every queue, with its beat, against the test database.

    One per test: it must be gone before the test database is flushed (a TRUNCATE racing
    the worker's transactions deadlocks), and stopping it waits for its running tasks.
    """
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "celery-worker.log"
    environment = subprocess_environment()
    celery = [sys.executable, "-m", "celery", "-A", "controlplane"]
    # Tasks left on this run's Redis by earlier tests name rows that are gone: drop them.
    subprocess.run([*celery, "purge", "-f"], cwd=ROOT, env=environment, check=False,
                   capture_output=True)  # fmt: skip
    command = [
        *celery, "worker", "--beat", "--schedule", str(tmp_path / "beat-schedule"),
        "--concurrency", "2", "-Q", "probes,rollouts,notify,default", "--loglevel", "INFO",
        "--without-heartbeat", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    with log.open("a") as output:
        output.write(f"\n==== worker for {os.environ.get('PYTEST_CURRENT_TEST', '?')}\n")
        output.flush()
        start = log.stat().st_size
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT
        )

    def ready() -> bool:
        with log.open() as text:
            text.seek(start)
            return "ready." in text.read()

    try:
        _wait("the celery worker", ready, process, log)
        yield
    finally:
        _stop(process)


@pytest.fixture
def fleet(demo_fleet: DemoFleet) -> Iterator[DemoFleet]:
    """The session's fleet, with every fault this test set cleared afterwards."""
    yield demo_fleet
    demo_fleet.reset()


@pytest.fixture
def demo(fleet: DemoFleet, transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> DemoFleet:
    """The demo catalog, people and instances seeded from the running fleet, as `make run`
    does, with fast health checks. People: alice/bob/carol own/deploy/view storefront,
    dave/erin/frank commerce (checkout, payments, inventory), all with DEMO_PASSWORD."""
    from health.models import CheckSpec, InstanceCheck

    monkeypatch.setenv("SIGNALBOX_DEMO_PASSWORD", DEMO_PASSWORD)
    call_command("seed_demo", "--fleet", str(fleet.state), stdout=io.StringIO())
    CheckSpec.objects.update(
        interval_seconds=CHECK_PERIOD_SECONDS, timeout_seconds=1.0, failure_threshold=1
    )
    InstanceCheck.objects.update(next_due_at=timezone.now())
    return fleet


def wait_until(condition: Any, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll `condition()` until it returns something truthy (for the "given" of a test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HAProxy:
    socket: str
    port: int
    process: subprocess.Popen[bytes]


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Any]:
    """haproxy(backend, addresses): a real HAProxy with that backend and its runtime socket."""
    started: list[HAProxy] = []

    def start(backend: str, addresses: list[str]) -> HAProxy:
        admin = str(tmp_path / "admin.sock")
        port = free_port()
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            "\n".join(
                [
                    "global",
                    f"  stats socket {admin} mode 600 level admin",
                    "defaults",
                    "  mode http",
                    "  timeout connect 1s",
                    "  timeout client 10s",
                    "  timeout server 10s",
                    f"frontend fe_{backend}",
                    f"  bind 127.0.0.1:{port}",
                    f"  default_backend {backend}",
                    f"backend {backend}",
                    "  balance roundrobin",
                    *(f"  server s{i} {a} weight 1" for i, a in enumerate(addresses)),
                ]
            )
            + "\n"
        )
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        while not os.path.exists(admin):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("haproxy did not start")
            time.sleep(0.02)
        started.append(HAProxy(admin, port, process))
        return started[-1]

    yield start
    for proxy in started:
        _stop(proxy.process)


@pytest.fixture
def other_tab(page: Page) -> Page:
    """A second tab of the same browser session (same login) as `page`."""
    return page.context.new_page()
