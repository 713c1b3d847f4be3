"""The outbox: retries with backoff, no retry on 4xx, grouping, silences, repeats, escalation,
and no notification sent twice or lost, with concurrent workers and dead ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from alerts import outbox
from alerts.choices import DeliveryState, IncidentState, RuleKind, Severity
from alerts.evaluation import tick
from alerts.incidents import acknowledge, resolve
from alerts.models import DeliveryAttempt, Incident, Notification, Rule, Silence
from alerts.tests.conftest import deliver_all, service_changed
from controlplane.models import Event


def page_rule(world: Any, **params: Any) -> Rule:
    Rule.objects.filter(team=world.team).update(enabled=False)
    return Rule.objects.create(
        team=world.team,
        name="down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0, **params},
    )


def deliver_until_settled(timeout: float = 5.0) -> None:
    """Run the delivery loop, waiting out backoffs, until nothing is pending or delivering."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliver_all()
        if not Notification.objects.filter(
            state__in=[DeliveryState.PENDING, DeliveryState.DELIVERING]
        ).exists():
            return
        time.sleep(0.01)
    raise AssertionError("notifications still pending")


@pytest.mark.django_db
def test_it_retries_a_failing_receiver_with_growing_backoff(alerting: Any) -> None:
    # given a webhook that answers 500 twice, then 200
    alerting.route(alerting.webhook)
    alerting.receiver.respond("/hook", 500, 503)
    page_rule(alerting.world)
    # when checkout goes down and workers deliver
    service_changed(alerting.world, "down")
    deliver_until_settled()
    # then the third try got through, and the delivery log has each response code
    notification = Notification.objects.get()
    assert notification.state == DeliveryState.DELIVERED
    assert notification.attempts == 3
    codes = list(notification.attempt_log.values_list("status_code", flat=True))
    assert codes == [500, 503, 200]
    assert len(alerting.receiver.to("/hook")) == 3


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    base = settings.ALERTS_RETRY_BASE_MS / 1000
    for attempts in range(1, 8):
        full = min(settings.ALERTS_RETRY_MAX_SECONDS, base * 2 ** (attempts - 1))
        delays = [outbox.backoff(attempts) for _ in range(50)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert outbox.backoff(50) <= settings.ALERTS_RETRY_MAX_SECONDS
    assert outbox.backoff(1, retry_after=30) == 30


@pytest.mark.django_db
def test_it_does_not_retry_a_4xx_and_says_so(alerting: Any) -> None:
    alerting.route(alerting.webhook)
    alerting.receiver.respond("/hook", (404, "no such hook", {}))
    page_rule(alerting.world)
    service_changed(alerting.world, "down")
    deliver_until_settled()
    notification = Notification.objects.get()
    assert notification.state == DeliveryState.FAILED
    assert notification.attempts == 1
    assert notification.last_status_code == 404
    failed = Event.objects.get(action="notification.failed")
    assert "HTTP 404: no such hook" in failed.message
    incident = Incident.objects.get()
    assert incident.timeline.filter(kind="delivery_failed").exists()


@pytest.mark.django_db
def test_it_retries_429_after_the_time_slack_asks_for(alerting: Any) -> None:
    alerting.route(alerting.slack)
    alerting.receiver.respond("/slack", (429, "rate_limited", {"Retry-After": "0"}))
    page_rule(alerting.world)
    service_changed(alerting.world, "down")
    deliver_until_settled()
    assert Notification.objects.get().state == DeliveryState.DELIVERED
    assert [r.status_code for r in DeliveryAttempt.objects.all()] == [429, 200]


@pytest.mark.django_db
def test_incidents_of_one_service_within_the_group_wait_make_one_message(alerting: Any) -> None:
    # given a route that waits 30 s for more incidents of the same service
    alerting.route(alerting.slack, group_wait_seconds=30)
    world = alerting.world
    Rule.objects.filter(team=world.team).update(enabled=False)
    for name, state in [("down", "down"), ("degraded", "degraded")]:
        Rule.objects.create(
            team=world.team,
            name=name,
            kind=RuleKind.SERVICE_STATE,
            severity=Severity.PAGE,
            params={"states": [state, "down"], "for_seconds": 0},
        )
    service_changed(world, "down")
    service_changed(world, "down", env=world.staging)
    # then nothing is due yet; one row per service and environment
    assert deliver_all() == 0
    assert Notification.objects.count() == 2
    # when the group wait is over
    Notification.objects.update(next_attempt_at=timezone.now())
    deliver_all()
    # then Slack got one message per environment, each naming both incidents
    messages = [r.json() for r in alerting.receiver.wait_for("/slack", 2)]
    assert sorted(m["text"] for m in messages) == [
        "FIRING: 2 incidents in checkout (production)",
        "FIRING: 2 incidents in checkout (staging)",
    ]


@pytest.mark.django_db
def test_a_resolve_inside_the_group_wait_sends_nothing_at_all(alerting: Any) -> None:
    alerting.route(alerting.slack, group_wait_seconds=30)
    page_rule(alerting.world)
    service_changed(alerting.world, "down")
    service_changed(alerting.world, "healthy")
    Notification.objects.update(next_attempt_at=timezone.now())
    deliver_all()
    assert alerting.receiver.to("/slack") == []
    assert Notification.objects.get().state == DeliveryState.CANCELLED


@pytest.mark.django_db
def test_a_silence_suppresses_the_trigger_but_the_incident_is_recorded(alerting: Any) -> None:
    world = alerting.world
    alerting.route(alerting.webhook)
    Silence.objects.create(
        team=world.team,
        comment="planned migration",
        created_by_label="owner",
        matchers=[{"label": "service", "op": "=", "value": "checkout"}],
        ends_at=timezone.now() + timedelta(hours=1),
    )
    page_rule(world)
    service_changed(world, "down")
    incident = Incident.objects.get()
    assert incident.state == IncidentState.FIRING
    assert incident.suppressed_by.startswith("silence ")
    assert incident.timeline.filter(kind="suppressed").exists()
    # when it resolves, nothing was notified so nothing is resolved
    service_changed(world, "healthy")
    deliver_all()
    assert alerting.receiver.to("/hook") == []


@pytest.mark.django_db
def test_a_resolve_is_delivered_even_when_a_silence_started_after_the_trigger(
    alerting: Any,
) -> None:
    world = alerting.world
    alerting.route(alerting.webhook)
    alerting.route(alerting.pagerduty)
    page_rule(world)
    service_changed(world, "down")
    deliver_all()
    # given someone silences checkout while it is firing
    Silence.objects.create(
        team=world.team,
        comment="shh",
        created_by_label="owner",
        matchers=[{"label": "service", "op": "=~", "value": "check.*"}],
        ends_at=timezone.now() + timedelta(hours=1),
    )
    # when it recovers
    service_changed(world, "healthy")
    deliver_all()
    # then both channels that heard the trigger hear the resolve
    hook = [r.json()["action"] for r in alerting.receiver.to("/hook")]
    pagerduty = [r.json()["event_action"] for r in alerting.receiver.to("/pagerduty")]
    assert hook == ["trigger", "resolve"]
    assert pagerduty == ["trigger", "resolve"]


@pytest.mark.django_db
def test_an_incident_silenced_at_first_is_notified_when_the_silence_ends(alerting: Any) -> None:
    world = alerting.world
    alerting.route(alerting.webhook)
    silence = Silence.objects.create(
        team=world.team,
        comment="c",
        created_by_label="owner",
        ends_at=timezone.now() + timedelta(hours=1),
    )
    page_rule(world)
    service_changed(world, "down")
    assert not Notification.objects.exists()
    silence.expire()
    tick()
    deliver_all()
    assert [r.json()["action"] for r in alerting.receiver.to("/hook")] == ["trigger"]


@pytest.mark.django_db
def test_a_maintenance_window_suppresses_notifications(alerting: Any) -> None:
    alerting.route(alerting.webhook)
    page_rule(alerting.world)
    service_changed(alerting.world, "down", in_maintenance=True)
    incident = Incident.objects.get()
    assert incident.suppressed_by == "maintenance"
    assert not Notification.objects.exists()


@pytest.mark.django_db
def test_an_unacknowledged_page_repeats_and_escalates_until_acknowledged(alerting: Any) -> None:
    # given Slack at level 0 and PagerDuty at level 1
    alerting.route(alerting.slack)
    alerting.route(alerting.pagerduty, escalation_level=1)
    page_rule(alerting.world)
    service_changed(alerting.world, "down")
    deliver_all()
    incident = Incident.objects.get()
    # when nobody acknowledges past the escalation delay
    Incident.objects.filter(pk=incident.pk).update(escalate_at=timezone.now())
    tick()
    deliver_all()
    # then PagerDuty is paged
    assert [r.json()["event_action"] for r in alerting.receiver.to("/pagerduty")] == ["trigger"]
    # when the repeat interval passes, every level so far hears it again
    Incident.objects.filter(pk=incident.pk).update(next_repeat_at=timezone.now())
    tick()
    deliver_all()
    assert len(alerting.receiver.to("/slack")) == 2
    assert len(alerting.receiver.to("/pagerduty")) == 2
    # when someone acknowledges, repeats stop
    acknowledge(incident.pk, alerting.world.deployer)
    Incident.objects.filter(pk=incident.pk).update(next_repeat_at=timezone.now())
    tick()
    deliver_all()
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds.count("escalated") == 1
    assert kinds.count("repeated") == 2  # once per escalation level reached, then no more
    assert alerting.receiver.to("/pagerduty")[-1].json()["event_action"] == "acknowledge"


@pytest.mark.django_db(transaction=True)
def test_three_concurrent_workers_never_send_a_notification_twice(alerting: Any) -> None:
    # given 60 due notifications
    alerting.route(alerting.webhook)
    rule = page_rule(alerting.world)
    for n in range(60):
        incident = Incident.objects.create(
            rule=rule,
            team=alerting.world.team,
            subject_type="t",
            subject_id=str(n),
            subject_label=f"s{n}",
            dedup_key=f"k{n}",
            severity="page",
            state="firing",
            title=f"incident {n}",
        )
        row = Notification.objects.create(channel=alerting.webhook, action="trigger")
        row.incidents.add(incident)
    ids = list(Notification.objects.values_list("id", flat=True))
    alerting.receiver.delay = 0.005
    errors: list[BaseException] = []

    def sweeping_worker(name: str) -> None:
        try:
            while outbox.deliver_due(name, limit=3):
                pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def task_worker(name: str) -> None:
        # Celery tasks for the same rows, racing the sweeps (a duplicate message each)
        try:
            for notification_id in ids:
                outbox.deliver(notification_id, name)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    # when three workers deliver at once (two sweeping loops and one running tasks)
    threads = [
        threading.Thread(target=sweeping_worker, args=("worker-1",)),
        threading.Thread(target=sweeping_worker, args=("worker-2",)),
        threading.Thread(target=task_worker, args=("worker-3",)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # then each notification reached the receiver exactly once
    assert errors == []
    deliveries = [r.headers["X-Signalbox-Delivery"] for r in alerting.receiver.to("/hook")]
    assert len(deliveries) == 60
    assert len(set(deliveries)) == 60
    assert Notification.objects.filter(state=DeliveryState.DELIVERED).count() == 60
    workers = set(DeliveryAttempt.objects.values_list("worker", flat=True))
    assert len(workers) >= 2  # the work really was shared


@pytest.mark.django_db(transaction=True)
def test_a_notification_claimed_by_a_killed_worker_is_delivered_after_its_lease(
    alerting: Any,
) -> None:
    # given a due notification
    alerting.route(alerting.webhook)
    page_rule(alerting.world)
    service_changed(alerting.world, "down")
    row = Notification.objects.get()
    # when a real worker process claims it and is killed with SIGKILL before sending
    env = {
        **os.environ,
        "DATABASE_URL": _url_of_test_db(),
        "SIGNALBOX_ENV": "test",
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
    }
    script = (
        "import django, time; django.setup(); from alerts import outbox; "
        f"assert outbox.claim({row.pk}, 'doomed'); print('claimed', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        cwd=settings.BASE_DIR,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "claimed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)
    # then no other worker takes it while the lease holds
    assert deliver_all("survivor") == 0
    # when the lease runs out (moved into the past instead of waiting a minute)
    Notification.objects.filter(pk=row.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    deliver_all("survivor")
    # then it is delivered, once
    assert len(alerting.receiver.to("/hook")) == 1
    row.refresh_from_db()
    assert row.state == DeliveryState.DELIVERED and row.attempts == 2


@pytest.mark.django_db(transaction=True)
def test_a_lost_task_message_is_found_by_the_sweep(
    alerting: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controlplane.celery import app

    # given the broker is unreachable (Redis restarting): mocked, because the shared Redis
    # of this machine serves other test runs and cannot be restarted here
    def broker_down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    settings.ALERTS_DISPATCH = True
    alerting.route(alerting.webhook)
    page_rule(alerting.world)
    # when the incident fires, its delivery task cannot be enqueued
    service_changed(alerting.world, "down")
    assert Notification.objects.get().state == DeliveryState.PENDING
    # then the sweep, reading the database, finds and delivers it
    assert outbox.due_ids() == [Notification.objects.get().pk]
    deliver_all()
    assert len(alerting.receiver.to("/hook")) == 1


def _url_of_test_db() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db
def test_a_person_resolving_is_recorded_and_a_second_resolve_changes_nothing(
    alerting: Any,
) -> None:
    alerting.route(alerting.webhook)
    page_rule(alerting.world)
    service_changed(alerting.world, "down")
    incident = Incident.objects.get()
    assert resolve(incident.pk, alerting.world.owner) is not None
    assert resolve(incident.pk, alerting.world.owner) is None
    incident.refresh_from_db()
    assert incident.resolved_by == "owner"


@pytest.mark.django_db
def test_a_health_maintenance_window_suppresses_until_it_ends(alerting: Any) -> None:
    from health.models import MaintenanceWindow

    # given a maintenance window over checkout in production (health's own record)
    world = alerting.world
    window = MaintenanceWindow.objects.create(
        service=world.service,
        environment=world.production,
        reason="db upgrade",
        starts_at=timezone.now() - timedelta(minutes=5),
        ends_at=timezone.now() + timedelta(hours=1),
    )
    alerting.route(alerting.webhook)
    page_rule(world)
    # when it goes down during the window, nobody is told
    service_changed(world, "down")
    assert Incident.objects.get().suppressed_by == "maintenance"
    assert not Notification.objects.exists()
    # when the window ends while it is still down, the next tick tells them
    MaintenanceWindow.objects.filter(pk=window.pk).update(ends_at=timezone.now())
    tick()
    deliver_all()
    assert [r.json()["action"] for r in alerting.receiver.to("/hook")] == ["trigger"]
