"""Scaling with the `process` driver behind a real HAProxy, under steady traffic: scale up
waits for health before traffic; scale down drains, confirms from the router's counters,
hands over to the instance and stops it with zero failed requests; a lying instance is
stopped at the lifecycle timeout; a protected instance is never chosen."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from catalog.choices import Lifecycle
from catalog.models import Instance
from deployments.drivers import driver_for
from deployments.tests.conftest import HAProxy, free_port, make_route
from health import scheduler, services
from health.models import CheckSpec, InstanceCheck
from scaling import lifecycle
from scaling.choices import Ending, LaunchState, TerminationState
from scaling.models import Launch, Protection, ScalingGroup, Termination, protection_until
from scaling.tests.fleet import RunningFleet, Traffic, start_fleet, start_router, until

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Rig:
    fleet: RunningFleet
    proxy: HAProxy
    group: ScalingGroup
    traffic: Traffic

    def step(self) -> None:
        """What the workers do, inline: probe what is due, then one converge pass."""
        checks = list(
            InstanceCheck.objects.filter(instance__lifecycle__in=[Lifecycle.LAUNCHING,
                                                                   Lifecycle.ACTIVE])
            .values_list("pk", flat=True)
        )  # fmt: skip
        if checks:
            scheduler.run_now(checks)
        lifecycle.converge(self.group.pk)

    def set_desired(self, desired: int) -> None:
        ScalingGroup.objects.filter(pk=self.group.pk).update(desired=desired)

    def servers(self) -> dict[str, int]:
        """address -> weight of the servers taking traffic in the real HAProxy."""
        route = self.group.service.traffic_routes.get()
        return {
            s.address: s.weight
            for s in driver_for(route).servers()  # type: ignore[attr-defined]
            if s.takes_traffic
        }


@pytest.fixture
def rig(world: Any, tmp_path: Path, live_server: Any, settings: Any) -> Iterator[Rig]:
    settings.SIGNALBOX_BASE_URL = live_server.url
    fleet = start_fleet(tmp_path)
    try:
        first = fleet.instances()
        proxy = start_router(tmp_path, [(i["host"], i["port"]) for i in first], free_port())
        try:
            make_route(world, proxy.connection)
            CheckSpec.objects.update_or_create(
                service=world.service,
                defaults={"interval_seconds": 1, "timeout_seconds": 1.0, "path": "/health"},
            )
            for row in first:
                instance = Instance.objects.create(
                    service=world.service,
                    environment=world.production,
                    host=row["host"],
                    port=row["port"],
                    version="1.0",
                    lifecycle=Lifecycle.ACTIVE,
                    labels={"driver_ref": row["id"]},
                )
                services.ensure_checks(instance)
            group = ScalingGroup.objects.create(
                service=world.service,
                environment=world.production,
                driver="process",
                driver_config={"control_url": fleet.control_url, "version": "1.0"},
                min_instances=1,
                max_instances=4,
                desired=2,
                enabled=False,
                readiness_delay_seconds=0,
                launch_deadline_seconds=20,
                drain_timeout_seconds=10,
                lifecycle_timeout_seconds=3,
                termination_grace_seconds=5,
            )
            traffic = Traffic(proxy.url()).start()
            try:
                yield Rig(fleet, proxy, group, traffic)
            finally:
                traffic.stop()
        finally:
            proxy.process.terminate()
            proxy.process.wait(5)
    finally:
        fleet.stop()


def test_scale_up_gives_traffic_only_once_healthy_and_scale_down_loses_no_request(
    rig: Rig,
) -> None:
    # given two instances serving steady traffic
    until(lambda: rig.traffic.total > 20, rig.step, 10, "traffic to flow")
    assert len(rig.servers()) == 2
    # when the group wants three
    rig.set_desired(3)
    launch = until(lambda: Launch.objects.filter(group=rig.group).first(), rig.step, 10,
                   "a launch")  # fmt: skip
    assert launch.instance.lifecycle == Lifecycle.LAUNCHING
    # then the new instance runs in the fleet but gets no traffic until its checks pass
    assert launch.instance.address not in rig.servers()
    launched = until(
        lambda: Launch.objects.filter(pk=launch.pk, state=LaunchState.IN_SERVICE).first(),
        rig.step, 20, "the launch to take traffic",
    )  # fmt: skip
    assert launched.healthy_at is not None and launched.healthy_at <= launched.in_service_at
    assert launched.instance.address in rig.servers()
    until(lambda: rig.traffic.served[launched.driver_ref] > 5, rig.step, 10,
          "requests served by the new instance")  # fmt: skip

    # when the group wants two again
    rig.set_desired(2)
    termination = until(
        lambda: Termination.objects.filter(group=rig.group, state=TerminationState.TERMINATED)
        .first(),
        rig.step, 30, "a scale-down to finish",
    )  # fmt: skip
    # then the instance was drained, confirmed, said it was ready, and was stopped
    assert termination.ending == Ending.READY
    assert termination.drain_confirmed_at is not None and termination.ready_at is not None
    # (confirmed from the router's counters, not by waiting out the drain timeout)
    assert termination.message.startswith("the router stopped routing to it")
    assert termination.seconds_to_stop_routing is not None
    assert termination.seconds_to_stop_routing < rig.group.drain_timeout_seconds
    last = rig.traffic.last_served[termination.driver_ref]
    assert last <= termination.drain_confirmed_at.timestamp()
    assert termination.errors_during_drain == 0
    gone = Instance.objects.get(pk=termination.instance_id)
    assert gone.lifecycle == Lifecycle.DEREGISTERED
    assert gone.address not in rig.servers()
    assert termination.driver_ref not in {i["id"] for i in rig.fleet.instances()}
    # and no request failed, from the traffic client's own counts
    served_after = rig.traffic.total
    until(lambda: rig.traffic.total > served_after + 20, rig.step, 10, "more traffic")
    assert rig.traffic.failures == []
    assert (
        Instance.objects.filter(service=rig.group.service, lifecycle=Lifecycle.ACTIVE).count() == 2
    )


def test_an_instance_that_never_says_ready_is_stopped_at_the_lifecycle_timeout(rig: Rig) -> None:
    # given both instances lie: told to drain, they never answer
    for row in rig.fleet.instances():
        rig.fleet.fault(row["id"], ignore_drain=True)
    # when the group shrinks to one
    rig.set_desired(1)
    termination = until(
        lambda: Termination.objects.filter(group=rig.group, state=TerminationState.TERMINATED)
        .first(),
        rig.step, 30, "the liar to be stopped",
    )  # fmt: skip
    # then it was stopped anyway, after the timeout, and the report says so
    assert termination.ending == Ending.TIMED_OUT
    assert termination.ready_at is None
    assert termination.lifecycle_deadline_at is not None
    assert termination.stopped_at >= termination.lifecycle_deadline_at
    assert termination.report()["ending"] == "timed_out"
    assert rig.traffic.failures == []


def test_a_protected_instance_is_never_chosen(rig: Rig) -> None:
    # given the older instance protected itself
    oldest, newest = Instance.objects.filter(service=rig.group.service).order_by("pk")
    Protection.objects.create(instance=oldest, until=protection_until(30), reason="batch job")
    # when the group shrinks to one
    rig.set_desired(1)
    termination = until(
        lambda: Termination.objects.filter(group=rig.group).first(), rig.step, 10,
        "a victim",
    )  # fmt: skip
    # then the other one goes, and the protected one keeps serving
    assert termination.instance_id == newest.pk
    assert oldest.address in rig.servers()


def test_an_haproxy_restart_undoes_neither_a_drain_nor_a_scale_out(rig: Rig) -> None:
    from controlplane.models import Event
    from deployments.reconciler.drift import reconcile_routers
    from deployments.tests.test_router_drift import restart
    from scaling.choices import ScalingEvent

    # given a scale-out in service and a lying instance held in its drain
    rig.set_desired(3)
    launched = until(
        lambda: Launch.objects.filter(group=rig.group, state=LaunchState.IN_SERVICE).first(),
        rig.step, 20, "the launch to take traffic",
    )  # fmt: skip
    for row in rig.fleet.instances():
        rig.fleet.fault(row["id"], ignore_drain=True)
    ScalingGroup.objects.filter(pk=rig.group.pk).update(lifecycle_timeout_seconds=120)
    rig.set_desired(2)
    leaving = until(
        lambda: Termination.objects.filter(
            group=rig.group, state=TerminationState.AWAITING_READY
        ).first(),
        rig.step, 20, "a drain to be confirmed",
    )  # fmt: skip
    assert leaving.instance is not None
    assert leaving.instance.address not in rig.servers()
    # when HAProxy restarts from its config file: the drained server is back in rotation
    # and the server the scale-out added at run time is gone
    restart(rig.proxy)
    assert leaving.instance.address in rig.servers()
    assert launched.instance.address not in rig.servers()
    # then the drift pass puts both right, and says so
    reconcile_routers()
    servers = rig.servers()
    assert leaving.instance.address not in servers
    assert launched.instance.address in servers
    event = Event.objects.get(action=ScalingEvent.ROUTER_REAPPLIED)
    assert leaving.instance.address in event.message or "more" in event.message
