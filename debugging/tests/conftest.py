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
