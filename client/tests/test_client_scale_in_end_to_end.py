"""The scale-in handshake against the real control plane (pytest-django's live server, the
client talking to it over sockets as a service would): a busy instance is spared; a drained
one hears it, heartbeats while its work lasts and says ready when the work ends, and only
then is it stopped; an instance that protects itself is never chosen.

The instance is this test process (the client runs in it, as in a service). Its group uses
the process driver with no fleet behind it: Signalbox did not launch the instance, so it has
no driver id for it and nothing to stop but the catalog entry, as for any instance that
registered itself. The service has no traffic route, so the drain is confirmed at once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from signalbox_client import Drain, Signalbox

from catalog.choices import Lifecycle
from catalog.models import ApiToken, Instance
from scaling import lifecycle
from scaling.choices import Ending, TerminationState
from scaling.models import InstanceMetric, Protection, ScalingGroup, Termination
from scaling.tests.fleet import until
from tests.fake_control_plane import closed_port_url

pytestmark = pytest.mark.django_db(transaction=True)

PORT = 18080


@pytest.fixture
def group(world: Any) -> ScalingGroup:
    """checkout in production wants no instance (autoscaling paused): any one there goes."""
    return ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        driver_config={"control_url": closed_port_url()},
        min_instances=0,
        max_instances=2,
        desired=0,
        enabled=False,
        lifecycle_timeout_seconds=4,  # below the API's 30 s minimum, to keep the test short
    )


@pytest.fixture
def signalbox(world: Any, live_server: Any) -> Iterator[Signalbox]:
    _, plain = ApiToken.issue(team=world.team, name="checkout-prod", scopes=["report"])
    client = Signalbox(
        live_server.url,
        plain,
        service="checkout",
        environment="production",
        host="127.0.0.1",
        port=PORT,
        version="1.4.2",
        register=True,
        lifecycle_interval=0.2,
        metrics_interval=0.5,
    )
    yield client
    client.stop(timeout=5)


def registered(signalbox: Signalbox) -> Instance:
    signalbox.start()
    found: Instance = until(
        lambda: Instance.objects.filter(port=PORT).first(), lambda: None, 5, "registration"
    )
    return found


def reported(instance: Instance, name: str, value: float) -> bool:
    return InstanceMetric.objects.filter(instance=instance, name=name, value=value).exists()


def test_a_drained_instance_finishes_its_work_heartbeating_then_says_ready(
    group: ScalingGroup, signalbox: Signalbox, world: Any
) -> None:
    def converge() -> None:
        lifecycle.converge(group.pk)

    heard: list[Drain] = []
    signalbox.on_drain(heard.append)
    # given the instance is busy with a request, and Signalbox has heard so
    instance = registered(signalbox)
    signalbox.begin_work()
    until(lambda: reported(instance, "in_flight", 1), lambda: None, 5, "in_flight 1")
    # when the group converges on no instance
    for _ in range(3):
        converge()
    # then the busy instance is spared
    assert not Termination.objects.exists()

    # when its request ends, Signalbox chooses it, and one last request arrives before the drain
    signalbox.end_work()
    termination = until(lambda: Termination.objects.first(), converge, 10, "the idle one chosen")
    signalbox.begin_work()
    # then it hears the drain once, on its own thread
    until(lambda: heard, converge, 5, "on_drain")
    until(
        lambda: Termination.objects.filter(state=TerminationState.AWAITING_READY).first(),
        converge, 5, "the drain confirmed",
    )  # fmt: skip
    termination.refresh_from_db()
    first_deadline = termination.lifecycle_deadline_at
    assert first_deadline is not None
    # and while the request lasts past the lifecycle timeout, its heartbeats keep it waiting
    keep_until = time.monotonic() + 6
    while time.monotonic() < keep_until:
        converge()
        time.sleep(0.2)
    termination.refresh_from_db()
    assert termination.state == TerminationState.AWAITING_READY
    assert termination.ready_at is None
    assert termination.last_heartbeat_at is not None
    assert termination.lifecycle_deadline_at is not None
    assert termination.lifecycle_deadline_at > first_deadline + timedelta(seconds=4)
    assert signalbox.stats()["lifecycle_heartbeats"] >= 3
    drain = signalbox.drain
    assert drain is not None and drain.deadline is not None
    assert abs(drain.deadline - termination.lifecycle_deadline_at) < timedelta(seconds=2)

    # when the request ends
    signalbox.end_work()
    # then the instance says ready by itself, and Signalbox stops it
    ready = until(
        lambda: Termination.objects.filter(pk=termination.pk, ready_at__isnull=False).first(),
        lambda: None, 3, "ready-to-terminate",
    )  # fmt: skip
    assert "no work in flight" in ready.message
    done = until(
        lambda: Termination.objects.filter(pk=termination.pk, state=TerminationState.TERMINATED)
        .first(),
        converge, 5, "the termination to finish",
    )  # fmt: skip
    assert done.ending == Ending.READY and done.stopped_at is not None
    assert done.ready_at is not None and done.ready_at < done.lifecycle_deadline_at
    assert Instance.objects.get(pk=instance.pk).lifecycle == Lifecycle.DEREGISTERED
    # and the drain report the API shows says how it ended
    deployer = APIClient()
    deployer.force_authenticate(world.deployer)
    [row] = deployer.get(f"/api/v1/scaling/groups/{group.pk}/terminations").json()["results"]
    assert row["report"]["ending"] == "ready"
    assert row["report"]["chosen_because"].startswith("lowest-ranked: deletion cost 0")
    # and it has heard it is terminated, so it will not register itself back to life
    until(lambda: signalbox.lifecycle == "terminated", lambda: None, 3, "terminated")
    assert signalbox.handshake.finished and signalbox.stats()["ready_sent"]
    assert len(heard) == 1


def test_a_protected_instance_is_spared_until_it_lifts_the_protection(
    group: ScalingGroup, signalbox: Signalbox
) -> None:
    def converge() -> None:
        lifecycle.converge(group.pk)

    # given an instance that protects itself for a nightly export, at a high deletion cost
    instance = registered(signalbox)
    signalbox.deletion_cost = 50
    signalbox.protect(30, reason="nightly export")
    until(lambda: signalbox.protected_until is not None, lambda: None, 5, "the protection")
    protection = Protection.objects.get(instance=instance)
    assert protection.reason == "nightly export"
    minutes = (protection.until - timezone.now()).total_seconds() / 60
    assert 29 < minutes <= 30
    assert signalbox.protected_until == protection.until
    until(lambda: reported(instance, "deletion_cost", 50), lambda: None, 5, "deletion cost")
    # when the group converges on no instance
    for _ in range(3):
        converge()
    # then it is not chosen
    assert not Termination.objects.exists()
    # when it lifts the protection
    signalbox.unprotect()
    until(lambda: signalbox.protected_until is None, lambda: None, 5, "the protection lifted")
    assert not Protection.objects.filter(instance=instance).exists()
    # then it is chosen at the next pass, its deletion cost in the reason
    termination = until(lambda: Termination.objects.first(), converge, 5, "a victim")
    assert termination.instance_id == instance.pk
    assert "deletion cost 50" in termination.chosen_because
