"""Converge's rules without a fleet: a launch that never turns healthy is removed and
reported with its last probe output; scale-in waits while a rollout is active; two workers
never both converge one group.

The driver here is a test platform (registered like any driver) whose instances are real
HTTP servers on loopback: what it launches is really probed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from catalog.choices import Lifecycle
from catalog.models import Instance
from controlplane.models import Event
from deployments.choices import RolloutState
from deployments.models import Rollout
from health import scheduler
from health.models import CheckSpec, InstanceCheck
from scaling import lifecycle
from scaling.choices import LaunchState, ScalingEvent
from scaling.drivers import DRIVERS
from scaling.drivers.base import InstanceDriver, Running
from scaling.models import Launch, ScalingGroup, Termination

pytestmark = pytest.mark.django_db


class Unhealthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status": "fail", "output": "database unreachable"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/health+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Platform(InstanceDriver):
    """Launches real (unhealthy) HTTP servers; records what it was asked to stop."""

    servers: list[ThreadingHTTPServer] = []
    stopped: list[str] = []

    def launch(self, count: int) -> list[Running]:
        started = []
        for _ in range(count):
            server = ThreadingHTTPServer(("127.0.0.1", 0), Unhealthy)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers.append(server)
            started.append(Running(f"srv-{server.server_port}", "127.0.0.1", server.server_port,
                                   "1.0"))  # fmt: skip
        return started

    def terminate(self, ref: str, grace_seconds: float) -> None:
        self.stopped.append(ref)

    def running(self) -> list[Running]:
        return []

    def protect(self, ref: str, protected: bool) -> None:
        pass

    def lifecycle_heartbeat(self, ref: str) -> None:
        pass

    def lifecycle_complete(self, ref: str) -> None:
        pass


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Platform]]:
    monkeypatch.setitem(DRIVERS, "process", Platform)
    Platform.servers, Platform.stopped = [], []
    yield Platform
    for server in Platform.servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def group(world: Any) -> ScalingGroup:
    CheckSpec.objects.update_or_create(
        service=world.service, defaults={"interval_seconds": 1, "timeout_seconds": 1.0}
    )
    return ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        min_instances=0,
        max_instances=4,
        desired=1,
        enabled=False,
        launch_deadline_seconds=2,
    )


def test_a_launch_that_never_turns_healthy_is_removed_with_its_last_probe_output(
    group: ScalingGroup, platform: type[Platform]
) -> None:
    # given a group wanting one instance, whose launches answer 503 to their checks
    lifecycle.converge(group.pk)
    launch = Launch.objects.get(group=group)
    assert launch.instance is not None
    assert launch.instance.lifecycle == Lifecycle.LAUNCHING
    scheduler.run_now(list(InstanceCheck.objects.values_list("pk", flat=True)))
    # when its deadline passes
    later = timezone.now() + timedelta(seconds=3)
    lifecycle.converge(group.pk, now=later)
    # then it is stopped, deregistered and reported with what its probe last saw
    launch.refresh_from_db()
    assert launch.state == LaunchState.FAILED
    assert "never passed its health checks within 2s" in launch.message
    assert launch.last_probe_output["result"] == "fail"
    assert "503" in str(launch.last_probe_output["reason"])
    assert platform.stopped == [launch.driver_ref]
    assert launch.instance is not None
    assert Instance.objects.get(pk=launch.instance.pk).lifecycle == Lifecycle.DEREGISTERED
    event = Event.objects.get(action=ScalingEvent.LAUNCH_FAILED)
    assert launch.driver_ref in event.message
    # and the same pass launches a replacement
    assert Launch.objects.filter(group=group, state=LaunchState.WAITING_HEALTHY).count() == 1


def test_repeated_failed_launches_say_so(group: ScalingGroup, platform: type[Platform]) -> None:
    now = timezone.now()
    for n in range(3):
        lifecycle.converge(group.pk, now=now + timedelta(seconds=3 * n))
    lifecycle.converge(group.pk, now=now + timedelta(seconds=9))
    last = Event.objects.filter(action=ScalingEvent.LAUNCH_FAILED).order_by("-pk").first()
    assert last is not None
    assert last.payload["repeated"] is True
    assert "failed launches in the last hour" in last.message


def test_scale_in_waits_while_a_rollout_of_the_service_is_active(
    group: ScalingGroup, platform: type[Platform], world: Any
) -> None:
    # given three instances in service and a group that wants one
    for port in (9001, 9002, 9003):
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=port,
            version="1.0",
            lifecycle=Lifecycle.ACTIVE,
        )
    Rollout.objects.create(
        team=world.team,
        service=world.service,
        environment=world.production,
        from_version="1.0",
        to_version="2.0",
        strategy="canary",
        steps=[{"set_weight": 10}],
        state=RolloutState.PROGRESSING,
    )
    # when it converges during the rollout
    lifecycle.converge(group.pk)
    # then nobody is drained
    assert not Termination.objects.exists()
    # and once the rollout is over, scale-in goes ahead
    Rollout.objects.update(state=RolloutState.SUCCEEDED)
    lifecycle.converge(group.pk)
    assert Termination.objects.count() == 2


def test_two_workers_never_both_converge_one_group(group: ScalingGroup) -> None:
    first = lifecycle.claim_due()
    second = lifecycle.claim_due()
    assert first == [group.pk]
    assert second == []
