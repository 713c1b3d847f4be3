"""`python -m fleet plan` and `run` as commands: the plan's format, its checks, and a
fleet process that starts on free ports and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fleet.plan import ConfigError, build_plan
from fleet.tests.conftest import DEMO

ROOT = DEMO.parents[1]


def _fleet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=30, env={**os.environ, **(env or {})}, check=False,
    )


def test_it_writes_the_same_plan_in_the_agreed_format_every_time(tmp_path: Path) -> None:
    # when
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    for out in (first, second):
        result = _fleet("plan", "--config", str(DEMO), "--out", str(out))
        assert result.returncode == 0, result.stderr
    # then
    assert first.read_bytes() == second.read_bytes()
    plan = json.loads(first.read_text())
    assert set(plan) == {"control", "teams", "environments", "external_dependencies",
                         "services", "instances"}
    assert plan["control"] == {"host": "127.0.0.1", "port": 7900}
    assert set(plan["services"][0]) == {"slug", "name", "team", "tier", "description",
                                        "depends_on", "external", "repository_url",
                                        "runbook_url"}
    assert plan["instances"][0] == {
        "id": "web-staging-1", "service": "web", "environment": "staging",
        "host": "127.0.0.1", "port": 7101, "version": "3.9.0", "zone": "zone-a",
        "grpc_port": None,
    }
    ports = [i["port"] for i in plan["instances"]]
    assert len(set(ports)) == len(ports)
    assert {len(plan["teams"]), len(plan["services"]), len(plan["external_dependencies"])} \
        == {4, 8, 2}


def test_it_takes_its_ports_from_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "fleet.json"
    result = _fleet("plan", "--config", str(DEMO), "--out", str(out), env={
        "SIGNALBOX_FLEET_BASE_PORT": "17100", "SIGNALBOX_FLEET_CONTROL_PORT": "17900",
    })
    assert result.returncode == 0, result.stderr
    plan = json.loads(out.read_text())
    assert plan["control"]["port"] == 17900
    assert plan["instances"][0]["port"] == 17101


def test_it_skips_the_control_port_when_laying_out_many_instances() -> None:
    plan = build_plan(DEMO, base_port=7100, control_port=7900, count_per_service=60)
    ports = [i.port for i in plan.instances]
    assert len(ports) == 8 * 2 * 60
    assert 7900 not in ports
    assert len(set(ports)) == len(ports)


def test_it_refuses_a_dependency_cycle_naming_it(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(
        "teams: [{slug: t, name: T}]\n"
        "environments: [{slug: prod, name: Prod}]\n"
        "services:\n"
        "  - {slug: a, name: A, team: t, version: '1', depends_on: [b]}\n"
        "  - {slug: b, name: B, team: t, version: '1', depends_on: [a]}\n"
    )
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        build_plan(config)


def test_it_names_the_file_entity_and_field_of_a_bad_reference(tmp_path: Path) -> None:
    config = tmp_path / "fleet.yaml"
    config.write_text(
        "teams: [{slug: t, name: T}]\n"
        "environments: [{slug: prod, name: Prod}]\n"
        "services:\n"
        "  - {slug: a, name: A, team: t, version: '1', external: [stripe]}\n"
    )
    with pytest.raises(ConfigError) as error:
        build_plan(config)
    assert str(error.value) == (
        f"{config}: services[0] (a).external: unknown external dependency 'stripe'"
    )


def test_the_fleet_imports_no_django() -> None:
    code = ("import sys, fleet.__main__, fleet.runtime; "
            "sys.exit(any(m == 'django' or m.startswith('django.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_the_fleet_process_serves_its_plan_and_stops_on_sigterm(tmp_path: Path) -> None:
    # given
    state = tmp_path / "fleet.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", "run", "--config", str(DEMO), "--base-port", "0",
         "--control-port", "0", "--state", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while not state.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "fleet did not start"
            time.sleep(0.05)
        plan = json.loads(state.read_text())
        instance = plan["instances"][0]
        # when
        with urllib.request.urlopen(f"http://127.0.0.1:{instance['port']}/health") as resp:
            health = json.loads(resp.read())
        control = f"http://127.0.0.1:{plan['control']['port']}/fleet/instances"
        with urllib.request.urlopen(control) as resp:
            listed = json.loads(resp.read())
        # then
        assert health["instanceId"] == instance["id"]
        assert listed["count"] == len(plan["instances"])
        assert all(i["port"] for i in plan["instances"])
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, output
    assert "fleet stopped" in output


def test_vendor_host_points_the_demo_vendor_at_its_container(tmp_path: Path) -> None:
    # given the demo's plan as docker-compose writes it (the status page runs as `vendor`)
    out = tmp_path / "fleet.json"
    subprocess.run(
        [sys.executable, "-m", "fleet", "plan", "--config", str(DEMO), "--host", "fleet",
         "--vendor-host", "vendor", "--out", str(out)],
        check=True, capture_output=True,
    )
    # then the vendor watched on the demo page is reached there, others are untouched
    externals = {x["slug"]: x for x in json.loads(out.read_text())["external_dependencies"]}
    stripe = externals["stripe"]
    assert stripe["status_page_url"] == "http://vendor:8950"
    assert stripe["probe_url"] == "http://vendor:8950/v1/ping"
    assert all(
        "127.0.0.1" not in str(x.get("status_page_url", "")) for x in externals.values()
    )
