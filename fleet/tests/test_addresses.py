"""Where the fleet says it is (`plan --host`, registered and probed by Signalbox) and where
it listens (`run --listen`): loopback unless asked, and the two can differ."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from fleet.plan import build_plan
from fleet.runtime import Fleet, listen_address
from fleet.tests.conftest import DEMO, FAST_BREAKER
from fleet.tests.test_plan import ROOT, _fleet

# Linux answers on all of 127.0.0.0/8, so this is a second loopback address to bind.
ALIAS = "127.0.0.2"
# Only ever passed around below, never bound: tests listen on loopback.
EVERY_ADDRESS = "0.0.0.0"  # noqa: S104


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@contextmanager
def _running(state: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Any]:
    """`python -m fleet run --config` on free ports, one instance per service and
    environment; yields the state file's plan once it is up."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", "run", "--config", str(DEMO), "--count-per-service",
         "1", "--base-port", "0", "--control-port", "0", "--state", str(state), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + 15
        while not state.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.05)
        yield json.loads(state.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, output


def test_it_writes_the_host_it_is_given_as_every_instances_address(tmp_path: Path) -> None:
    # when
    out = tmp_path / "fleet.json"
    result = _fleet("plan", "--config", str(DEMO), "--out", str(out), "--host", "fleet")
    # then
    assert result.returncode == 0, result.stderr
    plan = json.loads(out.read_text())
    assert plan["control"] == {"host": "fleet", "port": 7900}
    assert {i["host"] for i in plan["instances"]} == {"fleet"}
    assert "38 instances on fleet" in result.stdout


def test_it_takes_the_host_from_the_environment_and_the_flag_beats_it(tmp_path: Path) -> None:
    # given
    env = {"SIGNALBOX_FLEET_HOST": "fleet.internal"}
    # when
    from_env, from_flag = tmp_path / "env.json", tmp_path / "flag.json"
    results = [
        _fleet("plan", "--config", str(DEMO), "--out", str(from_env), env=env),
        _fleet("plan", "--config", str(DEMO), "--out", str(from_flag), "--host", "10.0.0.7",
               env=env),
    ]
    # then
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert json.loads(from_env.read_text())["instances"][0]["host"] == "fleet.internal"
    assert json.loads(from_flag.read_text())["instances"][0]["host"] == "10.0.0.7"


@pytest.mark.parametrize(("host", "reason"), [
    (EVERY_ADDRESS, "no one can connect to 0.0.0.0"),
    ("my fleet", "must be a host name"),
    ("::1", "the fleet listens on IPv4 only"),
])
def test_it_refuses_a_host_no_one_could_connect_to(
    tmp_path: Path, host: str, reason: str,
) -> None:
    # when
    out = tmp_path / "fleet.json"
    result = _fleet("plan", "--config", str(DEMO), "--out", str(out), "--host", host)
    # then
    assert result.returncode == 2
    assert f"--host {host!r}: {reason}" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_it_listens_where_it_is_told_and_still_registers_the_plans_host(
    tmp_path: Path, how: str,
) -> None:
    # given
    args = ("--listen", ALIAS) if how == "flag" else ()
    env = {"SIGNALBOX_FLEET_LISTEN": ALIAS} if how == "environment" else {}
    # when
    with _running(tmp_path / "fleet.json", *args, env=env) as plan:
        instance = plan["instances"][0]
        with urllib.request.urlopen(f"http://{ALIAS}:{instance['port']}/health") as resp:
            health = json.loads(resp.read())
        control = f"http://{ALIAS}:{plan['control']['port']}/health"
        with urllib.request.urlopen(control) as resp:
            control_status = resp.status
        # then
        assert health["instanceId"] == instance["id"]
        assert control_status == 200
        assert not _connects("127.0.0.1", instance["port"])
        assert {i["host"] for i in plan["instances"]} == {"127.0.0.1"}


def test_it_refuses_a_listen_address_that_is_not_an_ipv4_address(tmp_path: Path) -> None:
    # when
    result = _fleet("run", "--config", str(DEMO), "--base-port", "0", "--control-port", "0",
                    "--state", str(tmp_path / "fleet.json"), "--listen", "localhost")
    # then
    assert result.returncode == 2
    assert "--listen 'localhost': must be an IPv4 address of this machine" in result.stderr


def test_it_listens_on_the_plans_host_only_when_that_is_an_address_of_this_machine() -> None:
    assert listen_address(None, ALIAS) == ALIAS
    # 192.0.2.0/24 is for documentation: never an address of this machine.
    assert listen_address(None, "192.0.2.10") == "127.0.0.1"
    assert listen_address(None, "fleet") == "127.0.0.1"
    assert listen_address(EVERY_ADDRESS, "fleet") == EVERY_ADDRESS


def test_a_fleet_on_every_address_calls_itself_over_loopback() -> None:
    # when (not started: nothing is bound)
    plan = build_plan(DEMO, base_port=0, control_port=0, count_per_service=1, host="fleet")
    fleet = Fleet(plan, listen=EVERY_ADDRESS)
    # then
    assert fleet.listen == EVERY_ADDRESS
    assert fleet.local_host == "127.0.0.1"
    assert fleet.control_url.startswith("http://127.0.0.1:")


@pytest.mark.asyncio
async def test_a_fleet_registered_under_a_name_listens_on_loopback_and_its_calls_work(
    http: aiohttp.ClientSession,
) -> None:
    # given: a name this machine cannot resolve, as in a plan written for docker compose
    plan = build_plan(DEMO, base_port=0, control_port=0, count_per_service=1,
                      host="fleet.invalid")
    fleet = Fleet(plan, breaker_config=FAST_BREAKER, shutdown_timeout=0.5)
    await fleet.start()
    try:
        web = fleet.instances["web-production-1"]
        # when
        async with http.get(f"http://127.0.0.1:{web.spec.port}/api/work") as resp:
            body = await resp.json()
        # then
        assert fleet.listen == "127.0.0.1"
        assert not _connects(ALIAS, web.spec.port)
        assert resp.status == 200
        assert body["degraded"] is False
        assert {i.spec.host for i in fleet.instances.values()} == {"fleet.invalid"}
    finally:
        await fleet.stop()
