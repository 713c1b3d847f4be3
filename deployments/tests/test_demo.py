"""The demo's HAProxy: the generated config runs and routes traffic; the seed re-runs safely."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from deployments import demo
from deployments.choices import RouterKind
from deployments.models import DeploySettings, TrafficRoute, TrafficRouter
from deployments.tests.conftest import HAPROXY, VersionServers, free_port

pytestmark = pytest.mark.django_db


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
