"""The scheduler: leases, SKIP LOCKED claims, bulk writes, thresholds, transitions, rollups."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from catalog.models import Instance
from controlplane.models import Event
from health import scheduler, services
from health.choices import CheckStatus, ServiceStatus, TransitionLevel
from health.models import (
    CheckSpec,
    InstanceCheck,
    MaintenanceWindow,
    MinuteRollup,
    ServiceHealth,
    Transition,
)
from health.probes.runtime import runtime
from health.tests.conftest import Instances, health_json


def add_instance(world: Any, port: int, host: str = "127.0.0.1", env: Any = None) -> InstanceCheck:
    instance = Instance.objects.create(
        service=world.service, environment=env or world.production, host=host, port=port
    )
    services.ensure_checks(instance)
    return InstanceCheck.objects.get(instance=instance)


def probe_now(*checks: InstanceCheck) -> scheduler.BatchReport:
    report = scheduler.run_now([c.pk for c in checks])
    for check in checks:
        check.refresh_from_db()
    return report


@pytest.mark.django_db
def test_a_new_instance_gets_a_check_with_kubernetes_defaults_and_a_jittered_start(
    world: Any,
) -> None:
    # when instances register
    checks, offsets = [], []
    for i in range(20):
        before = timezone.now()
        check = add_instance(world, 10_000 + i)
        took = (timezone.now() - before).total_seconds()
        checks.append(check)
        offsets.append((check.next_due_at - before).total_seconds())
        # each check's first probe is due within one period of its registration
        assert 0 <= offsets[-1] <= 10 + took
    # then the service has the default spec
    spec = CheckSpec.objects.get(service=world.service)
    assert (spec.interval_seconds, spec.timeout_seconds) == (10, 1.0)
    assert (spec.failure_threshold, spec.success_threshold) == (3, 1)
    assert len({round(o, 3) for o in offsets}) > 15  # spread out, not a herd
    assert (
        ServiceHealth.objects.get(service=world.service, environment=world.production).unknown == 20
    )


@pytest.mark.django_db
def test_it_probes_writes_the_result_and_schedules_the_next_probe(
    world: Any, instances: Instances
) -> None:
    # given a registered instance
    check = add_instance(world, instances.port)
    # when the scheduler runs it
    report = probe_now(check)
    # then the result, the reason, the components and the next due time are written
    assert (report.probed, report.written) == (1, 1)
    assert check.status == CheckStatus.PASS
    assert check.last_reason == "HTTP 200"
    assert check.lease_until is None
    assert check.last_checked_at is not None
    assert 9.5 < (check.next_due_at - check.last_checked_at).total_seconds() < 10.5
    health = ServiceHealth.objects.get(service=world.service, environment=world.production)
    assert (health.status, health.passing) == (ServiceStatus.HEALTHY, 1)


@pytest.mark.django_db
def test_it_goes_down_after_three_failures_and_publishes_only_transitions(
    world: Any, instances: Instances
) -> None:
    # given a passing instance
    check = add_instance(world, instances.port)
    probe_now(check)
    events_before = Event.objects.filter(action__startswith="health.").count()
    # when its database fails for three probes
    instances.status = 503
    instances.health = health_json("fail", db=("fail", "too many connections"))
    statuses = []
    for _ in range(3):
        probe_now(check)
        statuses.append(check.status)
    # then it turns failing only on the third, with the reason, and says so once
    assert statuses == ["pass", "pass", "fail"]
    assert check.last_reason == "HTTP 503; component db fail: too many connections"
    changed = Event.objects.filter(action="health.instance.changed").order_by("-id").first()
    assert changed is not None
    assert changed.payload == {
        "from": "pass",
        "to": "fail",
        "reason": "HTTP 503; component db fail: too many connections",
        "in_maintenance": False,
    }
    service_event = Event.objects.get(action="health.service.changed", payload__to="down")
    assert service_event.environment == world.production
    assert Event.objects.filter(action__startswith="health.").count() == events_before + 2
    # and a fourth failure publishes nothing new
    probe_now(check)
    assert Event.objects.filter(action__startswith="health.").count() == events_before + 2
    transitions = Transition.objects.filter(to_status__in=["fail", "down"])
    assert {t.level for t in transitions} == {TransitionLevel.INSTANCE, TransitionLevel.SERVICE}


@pytest.mark.django_db
def test_service_health_is_degraded_when_some_instances_fail(
    world: Any, instances: Instances
) -> None:
    # given two instances, one of them on a closed port
    good = add_instance(world, instances.port)
    bad = add_instance(world, 1, host="127.0.0.1")
    CheckSpec.objects.filter(service=world.service).update(failure_threshold=1)
    # when both are probed
    probe_now(good, bad)
    # then the service is degraded and says why
    health = ServiceHealth.objects.get(service=world.service, environment=world.production)
    assert health.status == ServiceStatus.DEGRADED
    assert health.reason == "1/2 passing, 1 failing: 127.0.0.1:1 connection refused"
    assert services.service_health(world.service.pk, world.production.pk) == "degraded"
    assert services.instance_status([good.instance_id, bad.instance_id, 999]) == {
        good.instance_id: "pass",
        bad.instance_id: "fail",
        999: "unknown",
    }
    assert services.service_healths(world.production.pk) == {
        (world.service.pk, world.production.pk): "degraded"
    }


@pytest.mark.django_db
def test_an_instance_override_beats_the_service_spec(world: Any, instances: Instances) -> None:
    check = add_instance(world, instances.port)
    CheckSpec.objects.create(instance=check.instance, path="/text", body_contains="nominal")
    probe_now(check)
    assert check.status == CheckStatus.PASS
    assert "components" not in check.last_output  # /text was probed, not /health


@pytest.mark.django_db(transaction=True)
def test_claims_skip_rows_another_scheduler_holds(world: Any) -> None:
    # given ten due checks
    checks = [add_instance(world, 20_000 + i) for i in range(10)]
    InstanceCheck.objects.update(next_due_at=timezone.now() - timedelta(seconds=1))
    # when two schedulers claim at once
    first = scheduler.claim_due(limit=6)
    second = scheduler.claim_due(limit=6)
    # then no row is handed out twice and all rows are leased
    assert len(first.ids) == 6
    assert len(second.ids) == 4
    assert not set(first.ids) & set(second.ids)
    assert InstanceCheck.objects.filter(lease_until__isnull=True).count() == 0
    # and a third claim finds nothing until the leases run out
    assert scheduler.claim_due().ids == []
    assert len(checks) == 10


@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_batch_is_claimed_again_after_its_lease(
    world: Any, instances: Instances
) -> None:
    # given a batch claimed by a worker that then died (claimed, never completed)
    check = add_instance(world, instances.port)
    InstanceCheck.objects.update(next_due_at=timezone.now())
    claim = scheduler.claim_due()
    assert claim.ids == [check.pk]
    # when the clock has not passed the lease yet
    assert scheduler.claim_due().ids == []
    # when it has (we move the clock instead of waiting 71 s)
    later = timezone.now() + timedelta(seconds=scheduler.LEASE_SECONDS + 1)
    again = scheduler.claim_due(now=later)
    # then another worker claims it and its probe is written
    assert again.ids == [check.pk]
    report = scheduler.run_batch(again.ids, again.lease_until)
    assert report.written == 1
    check.refresh_from_db()
    assert check.status == CheckStatus.PASS
    # and the dead worker's task, redelivered, finds nothing of its claim left to run
    assert scheduler.run_batch(claim.ids, claim.lease_until).probed == 0


@pytest.mark.django_db(transaction=True)
def test_a_late_writer_cannot_overwrite_a_row_reclaimed_by_another_worker(
    world: Any, instances: Instances
) -> None:
    # given a batch whose lease ran out and whose rows another worker claimed
    check = add_instance(world, instances.port)
    InstanceCheck.objects.update(next_due_at=timezone.now())
    scheduler.claim_due()
    rows = scheduler._load([check.pk], timezone.now())
    InstanceCheck.objects.filter(pk=check.pk).update(
        lease_until=timezone.now() + timedelta(seconds=99)
    )
    # when the first worker finally writes
    runtime().run(scheduler._probe_all(rows))
    written, _ = scheduler._write(rows)
    # then nothing of it lands
    assert written == 0
    check.refresh_from_db()
    assert check.status == CheckStatus.UNKNOWN


@pytest.mark.django_db
def test_probes_wait_for_their_due_time(world: Any, instances: Instances) -> None:
    # given a check due in 0.3 s, claimed ahead of time
    add_instance(world, instances.port)
    InstanceCheck.objects.update(next_due_at=timezone.now() + timedelta(seconds=0.3))
    claim = scheduler.claim_due(horizon=1.0)
    # when its batch runs
    report = scheduler.run_batch(claim.ids, claim.lease_until)
    # then it started at its due time, not before and not much after
    assert len(report.lateness) == 1
    # (the event loop's monotonic timer and the wall clock the lateness is read on may
    # disagree by microseconds: "not before" allows a millisecond of that)
    assert -0.001 <= report.lateness[0] < 0.1


@pytest.mark.django_db
def test_rollups_count_per_service_and_minute_not_per_probe(
    world: Any, instances: Instances
) -> None:
    # given three instances, one failing
    checks = [add_instance(world, instances.port, host=h) for h in ("127.0.0.1", "localhost")]
    checks.append(add_instance(world, 1))
    # when probed twice
    probe_now(*checks)
    probe_now(*checks)
    # then one row per service, environment and minute holds the counts
    rows = list(MinuteRollup.objects.all())
    assert len(rows) in (1, 2)  # two if the minute turned between the batches
    assert sum(r.count for r in rows) == 6
    assert sum(r.failures for r in rows) == 2
    assert sum(sum(r.histogram) for r in rows) == 4  # latencies of the successes only
    assert all(r.latency_max_ms > 0 for r in rows)


@pytest.mark.django_db
def test_transitions_in_a_maintenance_window_are_marked(world: Any, instances: Instances) -> None:
    # given a maintenance window covering production now
    now = timezone.now()
    MaintenanceWindow.objects.create(
        service=world.service,
        environment=world.production,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(minutes=30),
        reason="database upgrade",
    )
    check = add_instance(world, instances.port)
    CheckSpec.objects.filter(service=world.service).update(failure_threshold=1)
    probe_now(check)
    # when the instance fails during the window
    instances.status = 503
    probe_now(check)
    # then probes went on and the transitions say "in maintenance"
    assert check.status == CheckStatus.FAIL
    failing = Transition.objects.filter(to_status__in=["fail", "down"])
    assert failing.count() == 2
    assert all(t.in_maintenance for t in failing)
    event = Event.objects.get(action="health.instance.changed", payload__to="fail")
    assert event.payload["in_maintenance"] is True


@pytest.mark.django_db
def test_a_window_elsewhere_does_not_mark(world: Any, instances: Instances) -> None:
    now = timezone.now()
    MaintenanceWindow.objects.create(
        service=world.service,
        environment=world.staging,
        starts_at=now - timedelta(minutes=5),
        ends_at=now + timedelta(minutes=30),
    )
    check = add_instance(world, 1)
    CheckSpec.objects.filter(service=world.service).update(failure_threshold=1)
    probe_now(check)
    assert not Transition.objects.filter(in_maintenance=True).exists()


@pytest.mark.django_db
def test_a_vanished_instance_is_tolerated(world: Any, instances: Instances) -> None:
    check = add_instance(world, instances.port)
    claim = scheduler.claim([check.pk])
    check.instance.delete()
    assert scheduler.run_batch(claim.ids).probed == 0


@pytest.mark.django_db
def test_deregistration_stops_probing(world: Any, instances: Instances) -> None:
    check = add_instance(world, instances.port)
    services.forget_checks(check.instance)
    assert not InstanceCheck.objects.filter(pk=check.pk).exists()
    health = ServiceHealth.objects.get(service=world.service, environment=world.production)
    assert health.total == 0


@pytest.mark.django_db
def test_reconcile_picks_up_instances_created_without_the_api(world: Any) -> None:
    # given instances created directly (seed, admin), which send no signal
    for port in (30_001, 30_002):
        Instance.objects.create(
            service=world.other_service, environment=world.staging, host="10.1.0.1", port=port
        )
    # when the reconciler runs
    created, removed = services.reconcile()
    # then they have checks and the service a spec
    assert (created, removed) == (2, 0)
    assert InstanceCheck.objects.filter(instance__service=world.other_service).count() == 2
    assert CheckSpec.objects.filter(service=world.other_service).exists()
    assert services.reconcile() == (0, 0)


@pytest.mark.django_db
def test_the_registration_signal_creates_checks(
    world: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from catalog import signals

    instance = Instance.objects.create(
        service=world.service, environment=world.staging, host="10.2.0.1", port=80
    )
    with django_capture_on_commit_callbacks(execute=True):
        signals.send_on_commit(signals.instance_registered, instance)
    assert InstanceCheck.objects.filter(instance=instance).exists()
    with django_capture_on_commit_callbacks(execute=True):
        signals.send_on_commit(signals.instance_deregistered, instance)
    assert not InstanceCheck.objects.filter(instance=instance).exists()
