"""The autoscaler's tick against real PostgreSQL: the pool it reads, the decision it stores,
scale-in held by stabilisation and by an active rollout, and one worker per group."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.choices import Lifecycle
from catalog.models import Instance
from controlplane.models import Event
from deployments.choices import RolloutState
from deployments.models import Rollout
from health.choices import CheckStatus
from health.models import InstanceCheck
from scaling import autoscaler
from scaling.models import Decision, InstanceMetric, ScalingGroup, ScalingMetric

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(world: Any, routed: Any) -> ScalingGroup:
    made = ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"},
        min_instances=1,
        max_instances=10,
        desired=2,
    )
    ScalingMetric.objects.create(group=made, source="cpu", target=60)
    return made


def instance(
    world: Any, port: int, cpu: float | None, version: str = "1.0", age: int = 600
) -> Instance:
    made = Instance.objects.create(
        service=world.service,
        environment=world.production,
        host="10.0.0.1",
        port=port,
        version=version,
        lifecycle=Lifecycle.ACTIVE,
        registered_at=timezone.now() - timedelta(seconds=age),
    )
    InstanceCheck.objects.update_or_create(instance=made, defaults={"status": CheckStatus.PASS})
    if cpu is not None:
        InstanceMetric.objects.create(
            instance=made, name="cpu_percent", value=cpu, at=timezone.now()
        )
    return made


def test_busy_instances_ask_for_more_and_the_decision_says_why(
    world: Any, group: ScalingGroup
) -> None:
    # given two instances at 90 % CPU against a 60 % target
    instance(world, 1, 90)
    instance(world, 2, 90)
    # when the group is decided
    result = autoscaler.tick(group.pk)
    # then it wants ceil(2 * 90 / 60) = 3, and the decision keeps every input
    group.refresh_from_db()
    assert (result.changed, group.desired) == (True, 3)
    decision = Decision.objects.get(group=group)
    assert (decision.current, decision.recommended, decision.desired) == (2, 3, 3)
    assert decision.inputs == [
        {
            "metric": "cpu",
            "target": 60.0,
            "average": 90.0,
            "readings": 2,
            "missing": 0,
            "not_ready": 0,
        }
    ]
    assert "cpu: ceil(2 * 90 / 60) = 3" in decision.steps
    event = Event.objects.get(action="scaling.decided")
    assert event.payload["desired"] == 3 and "2 -> 3" in event.message


def test_a_quiet_fleet_waits_out_the_stabilisation_window_before_scaling_in(
    world: Any, group: ScalingGroup
) -> None:
    # given four idle instances
    for port in range(4):
        instance(world, port + 1, 5)
    group.desired = 4
    group.save()
    start = timezone.now()

    def decide_at(seconds: int) -> int:
        at = start + timedelta(seconds=seconds)
        InstanceMetric.objects.update(at=at)  # the instances keep reporting 5 %
        autoscaler.tick(group.pk, at)
        group.refresh_from_db()
        return group.desired

    # when decided now and again 200 s later, the window (300 s) holds the first count
    assert decide_at(0) == 4
    assert decide_at(200) == 4
    # and once 300 s have passed with nothing higher, it scales in
    assert decide_at(301) == 1


def test_scale_in_is_frozen_while_a_rollout_is_active_and_reads_the_stable_pool(
    world: Any, group: ScalingGroup
) -> None:
    # given idle stable instances and a hot canary of a rollout in progress
    for port in range(3):
        instance(world, port + 1, 5)
    instance(world, 9, 99, version="2.0")
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
    group.desired = 4
    group.down_stabilization_seconds = 0
    group.save()
    # when decided
    autoscaler.tick(group.pk)
    # then nothing is removed, the canary's CPU was not read, and the page can say why
    group.refresh_from_db()
    assert group.desired == 4
    decision_steps = Event.objects.filter(action="scaling.decided")
    assert not decision_steps.exists()  # nothing changed, so nothing was decided
    tick = autoscaler.tick(group.pk, timezone.now() + timedelta(seconds=20))
    assert tick.decided is not None
    assert tick.decided.held_by == f"scale-in frozen: rollout #{Rollout.objects.get().pk} is active"
    assert any("stable 1.0 instance(s) only" in step for step in tick.decided.steps)
    assert tick.decided.inputs[0]["average"] == 5.0


def test_no_metric_data_changes_nothing(world: Any, group: ScalingGroup) -> None:
    instance(world, 1, None)
    instance(world, 2, None)
    result = autoscaler.tick(group.pk)
    assert result.changed is False
    assert result.decided is not None and result.decided.held_by == "no data"


def test_a_paused_group_is_not_decided(world: Any, group: ScalingGroup) -> None:
    instance(world, 1, 99)
    group.enabled = False
    group.save()
    assert autoscaler.tick(group.pk).decided is None
    group.refresh_from_db()
    assert group.desired == 2


def test_two_workers_never_claim_one_group(group: ScalingGroup) -> None:
    first = autoscaler.claim_due()
    second = autoscaler.claim_due()
    assert first == [group.pk]
    assert second == []
    group.refresh_from_db()
    assert group.lease_until is not None


@pytest.mark.django_db(transaction=True)
def test_the_beat_skips_a_group_another_worker_is_deciding(
    world: Any, group: ScalingGroup
) -> None:
    import threading

    from django.db import connection, transaction

    from scaling import tasks

    instance(world, 1, 90)
    instance(world, 2, 90)
    seen: list[int] = []

    def second_worker() -> None:
        try:
            seen.append(tasks.decide_due())
        finally:
            connection.close()

    # given a worker halfway through deciding the group (its row locked, as decide_due holds it)
    with transaction.atomic():
        ScalingGroup.objects.select_for_update().get(pk=group.pk)
        other = threading.Thread(target=second_worker)
        other.start()
        other.join(timeout=30)
    # then the other worker's beat passed it by instead of deciding it twice or waiting
    assert seen == [0]
    assert not Decision.objects.exists()
    # and once free, one beat decides it (busy: scaled up) and the next finds nothing due
    ticks = autoscaler.decide_due()
    assert [t.group_id for t in ticks] == [group.pk] and ticks[0].changed
    assert autoscaler.decide_due() == []
    group.refresh_from_db()
    assert group.desired == 3 and group.lease_until is None
    assert group.next_due_at > timezone.now() + timedelta(seconds=group.sync_seconds - 5)
    assert Decision.objects.filter(group=group).count() == 1


def test_a_changed_count_is_acted_on_at_the_next_beat_not_the_idle_look(
    world: Any, group: ScalingGroup
) -> None:
    from scaling import lifecycle

    # given a group at rest: its last converge pass said come back in IDLE_EVERY (5 s)
    later = timezone.now() + lifecycle.IDLE_EVERY
    ScalingGroup.objects.filter(pk=group.pk).update(converge_due_at=later)
    instance(world, 1, 60)
    instance(world, 2, 60)
    # when a tick keeps the count, the converge pass still waits
    assert autoscaler.tick(group.pk).changed is False
    assert lifecycle.claim_due() == []
    # when a tick changes it (busy instances), the next converge beat claims the group
    InstanceMetric.objects.update(value=90)
    assert autoscaler.tick(group.pk).changed is True
    assert lifecycle.claim_due() == [group.pk]


def test_a_count_set_by_hand_or_a_restart_is_acted_on_at_the_next_beat(
    world: Any, group: ScalingGroup
) -> None:
    from catalog.permissions import Access
    from scaling import controls, lifecycle

    later = timezone.now() + lifecycle.IDLE_EVERY
    actor = Access(user=world.owner)

    def set_by_hand() -> None:
        controls.set_desired(group, 3, actor)

    def restart() -> None:
        controls.start_restart(group, actor)

    for act in (set_by_hand, restart):
        # given a group at rest
        ScalingGroup.objects.filter(pk=group.pk).update(
            converge_due_at=later, converge_lease_until=None
        )
        assert lifecycle.claim_due() == []
        # when someone acts on it, then the next converge beat claims it
        act()
        assert lifecycle.claim_due() == [group.pk]
