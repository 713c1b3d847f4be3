"""A scaling rig of real parts: the demo fleet as a process (its control API launches and
stops instances), a real HAProxy in front of checkout, a live Signalbox for the fleet's
handshake answers, and a traffic client counting every failed request."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deployments.tests.conftest import HAProxy, run_haproxy

ROOT = Path(__file__).resolve().parents[2]

# One service, the world's checkout, two instances in production (staging too: the
# planner wants every environment the config names).
FLEET_YAML = """
host: 127.0.0.1
base_port: 0
control_port: 0
zones: [zone-a, zone-b]
teams:
  - {slug: payments, name: Payments}
environments:
  - {slug: production, name: Production, order: 20, is_production: true, instances: 2}
services:
  - slug: checkout
    name: Checkout
    team: payments
    tier: 1
    version: "1.0"
"""


@dataclass
class RunningFleet:
    process: subprocess.Popen[bytes]
    state: Path
    log: Path

    def plan(self) -> dict[str, Any]:
        return dict(json.loads(self.state.read_text()))

    @property
    def control_url(self) -> str:
        control = self.plan()["control"]
        return f"http://{control['host']}:{control['port']}"

    def instances(self) -> list[dict[str, Any]]:
        answer = httpx.get(self.control_url + "/fleet/instances", timeout=5).json()
        return list(answer["instances"])

    def fault(self, instance_id: str, **faults: Any) -> None:
        httpx.post(
            f"{self.control_url}/fleet/instances/{instance_id}/faults", json=faults, timeout=5
        ).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def start_fleet(directory: Path, *extra: str) -> RunningFleet:
    config = directory / "fleet.yaml"
    config.write_text(FLEET_YAML)
    state = directory / "fleet-state.json"
    log = directory / "fleet.log"
    command = [
        sys.executable, "-m", "fleet", "run", "--config", str(config), "--base-port", "0",
        "--control-port", "0", "--state", str(state), "--traffic", "0", *extra,
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    fleet = RunningFleet(process, state, log)
    deadline = time.monotonic() + 20
    while not state.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            fleet.stop()
            raise RuntimeError(f"the fleet did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return fleet


def start_router(directory: Path, servers: list[tuple[str, int]], port: int) -> HAProxy:
    """HAProxy with checkout's backend listing the fleet's starting instances."""
    sock = str(directory / "admin.sock")
    lines = [
        "global",
        f"  stats socket {sock} mode 600 level admin",
        "defaults",
        "  mode http",
        "  timeout connect 1s",
        "  timeout client 10s",
        "  timeout server 10s",
        "frontend fe_checkout",
        f"  bind 127.0.0.1:{port}",
        "  default_backend be_checkout",
        "backend be_checkout",
        "  balance roundrobin",
        "  retries 0",
    ]
    for index, (host, server_port) in enumerate(servers):
        lines.append(f"  server s{index} {host}:{server_port} weight 1")
    config = directory / "haproxy.cfg"
    config.write_text("\n".join(lines) + "\n")
    process = run_haproxy(config, sock)
    return HAProxy(socket=sock, ports={"be_checkout": port}, process=process, config=config)


@dataclass
class Traffic:
    """Steady requests through the router from a thread; every answer counted by instance."""

    url: str
    rate: float = 50.0
    served: Counter[str] = field(default_factory=Counter)
    last_served: dict[str, float] = field(default_factory=dict)  # instance -> time.time()
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    answer = client.get(self.url + "api/work")
                    if answer.status_code >= 500:
                        self.failures.append(f"{answer.status_code}: {answer.text[:100]}")
                    else:
                        instance = str(answer.json().get("instance"))
                        self.served[instance] += 1
                        self.last_served[instance] = time.time()
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(max(0.0, 1 / self.rate - (time.monotonic() - began)))

    @property
    def total(self) -> int:
        return sum(self.served.values()) + len(self.failures)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def until(check: Callable[[], Any], step: Callable[[], None], timeout: float, what: str) -> Any:
    """Run `step` until `check()` is truthy (its value is returned), or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        step()
        time.sleep(0.1)
