"""The demo: its HAProxy config runs and routes traffic, the seed re-runs safely, and the
documented bad canary (docs/deployments.md) rolls back by itself."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command

from controlplane.tests.browser import subprocess_environment
from deployments import demo
from deployments.choices import RolloutState, RouterKind
from deployments.models import DeploySettings, Rollout, TrafficRoute, TrafficRouter
from deployments.tests.conftest import (
    HAPROXY,
    VersionServers,
    free_port,
    run_cli,
    run_haproxy,
)

pytestmark = pytest.mark.django_db
# A version containing "bad" misbehaves by itself in the fleet (docs/fleet.md).
BAD_VERSION = "9.9.9-bad"
STABLE_VERSION = "1.4.2"  # checkout in production, fleet/demo.yaml
FLEET_START_SECONDS = 30


def plan_for(servers: list[Any]) -> dict[str, Any]:
    return {
        "control": {"host": "127.0.0.1", "port": 7900},
        "services": [{"slug": "checkout"}],
        "instances": [
            {
                "id": f"checkout-production-{i}",
                "service": "checkout",
                "environment": "production",
                "host": "127.0.0.1",
                "port": s.port,
                "version": s.version,
            }
            for i, s in enumerate(servers, 1)
        ]
        + [
            {
                "id": "checkout-staging-1",
                "service": "checkout",
                "environment": "staging",
                "host": "127.0.0.1",
                "port": 1,
                "version": "9",
            }
        ],
    }


def test_seed_deployments_writes_a_working_config_and_registers_the_router(
    world: Any,
    version_servers: VersionServers,
    tmp_path: Path,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # not 7800: a `make run` on this machine may hold it
    monkeypatch.setattr(demo, "FRONTEND_BASE_PORT", port)
    monkeypatch.setattr(demo, "PREVIEW_BASE_PORT", free_port())
    # given a fleet plan with two production instances of checkout
    servers = [version_servers.start("1.4.2"), version_servers.start("1.4.2")]
    plan = tmp_path / "fleet.json"
    plan.write_text(json.dumps(plan_for(servers)))
    config = tmp_path / "haproxy.cfg"
    # when the seed runs twice
    for _ in range(2):
        call_command("seed_deployments", fleet=str(plan), config=str(config))
    # then HAProxy accepts the config, and the router is registered once
    check = subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    router = TrafficRouter.objects.get()
    assert router.kind == RouterKind.HAPROXY
    assert router.connection == {"socket": str(tmp_path / "haproxy.sock")}
    route = TrafficRoute.objects.get()
    assert (route.service, route.environment, route.backend) == (
        world.service,
        world.production,
        "be_checkout",
    )
    assert route.preview_backend == "be_checkout_preview"
    assert DeploySettings.objects.get(service=world.service).analysis
    assert f"checkout: http://127.0.0.1:{port}/" in capsys.readouterr().out
    assert "checkout-staging-1" not in config.read_text()
    # and real requests to the frontend reach the instances
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)])
    try:
        import time

        import httpx

        for _ in range(100):
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        assert answer.text == "1.4.2"
    finally:
        process.terminate()
        process.wait(5)


def test_seed_deployments_says_how_to_make_a_missing_plan(world: Any, tmp_path: Path) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="python -m fleet plan"):
        call_command("seed_deployments", fleet=str(tmp_path / "nope.json"))


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1 (the demo's frontends)."""
    for _ in range(50):
        first = free_port()
        with contextlib.ExitStack() as held:
            try:
                for port in range(first, first + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports on 127.0.0.1")


def manage(*argv: str) -> str:
    """`manage.py ARGV` as its own process against the test database; its stdout."""
    done = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=settings.BASE_DIR,
        env=subprocess_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {' '.join(argv)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def fleet_plan(tmp_path: Path) -> Iterator[Path]:
    """`python -m fleet plan`, then `run --plan` on it, as `make run` does, on free ports;
    the plan file, once the running fleet has written its real ports into it."""
    plan = tmp_path / "fleet.json"
    fleet = [sys.executable, "-m", "fleet"]
    subprocess.run(
        [*fleet, "plan", "--config", "fleet/demo.yaml", "--base-port", "0", "--control-port", "0",
         "--out", str(plan)],
        cwd=settings.BASE_DIR, check=True, capture_output=True,
    )  # fmt: skip
    with (tmp_path / "fleet.log").open("w") as log:
        process = subprocess.Popen(
            [*fleet, "run", "--plan", str(plan), "--traffic", "0"],
            cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + FLEET_START_SECONDS
        while demo.load_plan(plan)["control"]["port"] == 0:
            assert process.poll() is None, (tmp_path / "fleet.log").read_text()
            assert time.monotonic() < deadline, "the fleet did not start"
            time.sleep(0.1)
        yield plan
    finally:
        process.terminate()
        process.wait(15)


@pytest.fixture
def seeded_demo(
    fleet_plan: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """The rest of `make run`: seed_demo, seed_deployments and its HAProxy (the `router`);
    the plan as the fleet last wrote it."""
    plan = demo.load_plan(fleet_plan)
    # Free frontend and preview ports, not 7800... and 7850...: a `make run` on this machine
    # may hold those.
    count = len(demo.frontends(plan))
    first = free_ports(2 * count)
    monkeypatch.setattr(demo, "FRONTEND_BASE_PORT", first)
    monkeypatch.setattr(demo, "PREVIEW_BASE_PORT", first + count)
    monkeypatch.setenv("SIGNALBOX_DEMO_PASSWORD", "pw-demo")
    config = tmp_path / "haproxy.cfg"
    call_command("seed_demo", "--fleet", str(fleet_plan), stdout=io.StringIO())
    call_command(
        "seed_deployments", "--fleet", str(fleet_plan), "--config", str(config),
        stdout=io.StringIO(),
    )  # fmt: skip
    router = run_haproxy(config, str(tmp_path / "haproxy.sock"))
    try:
        yield plan
    finally:
        router.terminate()
        router.wait(5)


class Shoppers:
    """Business calls to checkout through its HAProxy frontend, in a thread, until stopped:
    what the fleet's traffic generator sends, at a rate that reads well within one interval."""

    def __init__(self, plan: dict[str, Any]) -> None:
        port = next(f.port for f in demo.frontends(plan) if f.service == "checkout")
        self.url = f"http://127.0.0.1:{port}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._shop, daemon=True)

    def _shop(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get(f"{self.url}/api/work")

    def versions(self, requests: int) -> set[str]:
        with httpx.Client(timeout=5) as client:
            return {client.get(f"{self.url}/version").json()["version"] for _ in range(requests)}

    def __enter__(self) -> Shoppers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_documented_bad_canary_is_rolled_back_by_itself(
    seeded_demo: dict[str, Any], fleet_plan: Path, live_server: Any, reconciling: None
) -> None:
    # given the demo as `make run` leaves it, and the documented deploy token
    token = manage(
        "issue_token", "--team", "commerce", "--scopes", "read,deploy", "--name", "demo"
    ).strip()
    # when demo_canary starts a bad version failing half its requests, as documented
    started = manage(
        "demo_canary", "--service", "checkout", "--version", BAD_VERSION, "--error-rate", "50",
        "--fleet", str(fleet_plan),
    )  # fmt: skip
    # and the command it prints rolls it out while shoppers keep calling checkout
    assert f"checkout {BAD_VERSION} runs at 127.0.0.1:" in started
    rollout_command = (
        f"rollout start --service checkout --env production --version {BAD_VERSION} --wait"
    )
    assert rollout_command in started
    ci = {"SIGNALBOX_URL": live_server.url, "SIGNALBOX_TOKEN": token}
    with Shoppers(seeded_demo) as shoppers:
        code, out, err = run_cli(ci, *rollout_command.split(), "--poll", "0.5", "--timeout", "60")
    # then the rollout was created and rolled back on HAProxy's 5xx rate, and says so
    assert code == 1, (out, err)
    rollout = Rollout.objects.get(service__slug="checkout", to_version=BAD_VERSION)
    assert rollout.state == RolloutState.ROLLED_BACK
    assert rollout.message.startswith("analysis failed: errors: 5xx rate"), rollout.message
    assert f"rolled back: {rollout.message}" in out
    # and every request reaches the stable version again
    assert shoppers.versions(20) == {STABLE_VERSION}
