"""Fixtures of the debugging tests: a config changed through the API, instances, tokens."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def instance(world: Any) -> Any:
    from catalog.models import Instance

    return Instance.objects.create(
        service=world.service,
        environment=world.production,
        host="127.0.0.1",
        port=18001,
        zone="eu-west-1a",
    )


@pytest.fixture
def report_token(world: Any) -> str:
    from catalog.choices import Scope
    from catalog.models import ApiToken

    _, plain = ApiToken.issue(team=world.team, name="instances", scopes=[Scope.REPORT])
    return plain


CONFIG_URL = "/api/v1/runtime-config/checkout/production"


ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 30


@dataclass
class RunningFleet:
    """`python -m fleet run` on free ports: its plan, read from the state file it writes."""

    state: Path

    def instances(self, service: str, environment: str = "production") -> list[dict[str, Any]]:
        plan = json.loads(self.state.read_text())
        return [
            i
            for i in plan["instances"]
            if i["service"] == service and i["environment"] == environment
        ]

    def logger(self, spec: dict[str, Any], name: str) -> dict[str, Any]:
        url = f"http://{spec['host']}:{spec['port']}/actuator/loggers/{name}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return dict(json.loads(answer.read()))


@pytest.fixture(scope="module")
def demo_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFleet]:
    """The demo fleet as its own process (it serves /actuator/loggers on every instance)."""
    state = tmp_path_factory.mktemp("fleet") / "fleet.json"
    log = tmp_path_factory.mktemp("fleet-log") / "fleet.log"
    command = [
        sys.executable, "-m", "fleet", "run", "--config", "fleet/demo.yaml",
        "--base-port", "0", "--control-port", "0", "--state", str(state), "--traffic", "0",
    ]  # fmt: skip
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not state.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the demo fleet did not start; see {log}")
            time.sleep(0.1)
        yield RunningFleet(state)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Hook:
    """A real HTTP webhook receiver on a loopback port (http.server in a thread). It records
    each request's headers and raw body and answers from a plan: a status to send, else 200
    with `{"level": <the level it was asked for>}`, as a receiver that took it does."""

    server: Any
    requests: list[tuple[dict[str, str], bytes]]
    plan: list[int]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def fail(self, *statuses: int) -> None:
        self.plan.extend(statuses)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def hook() -> Iterator[Hook]:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    requests: list[tuple[dict[str, str], bytes]] = []
    plan: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            requests.append((dict(self.headers.items()), body))
            if plan:
                status, answer = plan.pop(0), b"receiver broke"
            else:
                status, answer = 200, json.dumps({"level": json.loads(body)["level"]}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Hook(server, requests, plan)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
