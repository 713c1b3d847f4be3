"""The demo fleet reports its instances' memory, CPU and in-flight requests to a live
Signalbox with each team's `report` token, so the leak verdict and the victim choice have
real inputs in `make run`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from catalog.choices import Lifecycle
from catalog.models import ApiToken, Instance
from scaling.models import InstanceMetric
from scaling.tests.fleet import start_fleet

pytestmark = pytest.mark.django_db(transaction=True)


def _latest(instance: Instance, name: str) -> float | None:
    value = InstanceMetric.objects.filter(instance=instance, name=name).values_list(
        "value", flat=True
    )
    return next(iter(value), None)


def test_each_instance_reports_what_it_uses_and_a_leak_shows(
    world: Any, live_server: Any, tmp_path: Path
) -> None:
    _, plain = ApiToken.issue(team=world.team, name="fleet", scopes=["report"])
    tokens = tmp_path / "tokens.json"
    # the fleet starts before the seed has written the tokens (as docker-compose runs them)
    fleet = start_fleet(
        tmp_path, "--report-url", live_server.url, "--report-tokens", str(tokens),
        "--report-interval", "0.3",
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while f"waiting for {tokens}" not in fleet.log.read_text():
            assert time.monotonic() < deadline, fleet.log.read_text()[-2000:]
            time.sleep(0.1)
        tokens.write_text(json.dumps({"payments": plain}))
        leaking, steady = fleet.instances()
        # only the first is in the catalog: the other's values must not sink the batch
        instance = Instance.objects.create(
            service=world.service, environment=world.production, host=leaking["host"],
            port=leaking["port"], version="1.0", lifecycle=Lifecycle.ACTIVE,
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while _latest(instance, "memory_mb") is None:
            assert time.monotonic() < deadline, fleet.log.read_text()[-2000:]
            time.sleep(0.2)
        before = _latest(instance, "memory_mb")
        assert before is not None and 48 <= before < 80  # the instance's baseline
        assert _latest(instance, "in_flight") == 0
        cpu = _latest(instance, "cpu_percent")
        assert cpu is not None and 0 < cpu <= 100
        # when it leaks 600 MB a minute (10 MB/s), its reported memory climbs with it
        fleet.fault(leaking["id"], leak_mb_per_min=600)
        deadline = time.monotonic() + 15
        while (_latest(instance, "memory_mb") or 0) < before + 10:
            assert time.monotonic() < deadline, (before, _latest(instance, "memory_mb"))
            time.sleep(0.2)
        assert not Instance.objects.filter(port=steady["port"]).exists()
        assert "reporting metrics" not in fleet.log.read_text()  # no failure was logged
    finally:
        fleet.stop()


def test_a_wrong_token_is_logged_once_and_the_fleet_keeps_serving(
    world: Any, live_server: Any, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"payments": "sbx_nope_nope"}))
    fleet = start_fleet(
        tmp_path, "--report-url", live_server.url, "--report-tokens", str(tokens),
        "--report-interval", "0.2",
    )  # fmt: skip
    try:
        first = fleet.instances()[0]
        Instance.objects.create(
            service=world.service, environment=world.production, host=first["host"],
            port=first["port"], version="1.0", lifecycle=Lifecycle.ACTIVE,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while "reporting metrics" not in fleet.log.read_text():
            assert time.monotonic() < deadline, fleet.log.read_text()[-2000:]
            time.sleep(0.2)
        time.sleep(1.0)  # several more failed rounds
        log = fleet.log.read_text()
        assert log.count("reporting metrics") == 1 and "401" in log
        assert len(fleet.instances()) == 2  # still up
        assert not InstanceMetric.objects.exists()
    finally:
        fleet.stop()
