"""What /metrics tells an operator about the fleet: each app's registered source, read at
scrape time from PostgreSQL and Redis, in a number of queries that does not grow with it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.choices import ChannelKind, IncidentState, RuleKind, Severity
from alerts.models import Channel, Incident, Notification, Rule
from catalog.choices import Lifecycle
from catalog.models import Instance, Service
from controlplane import metrics
from controlplane.tests.conftest import RedisServer
from deployments.choices import RolloutState
from deployments.models import Rollout, RolloutStep
from health import scheduler, services
from health.choices import CheckStatus, ServiceStatus
from health.models import InstanceCheck, ServiceHealth
from health.probes.runtime import reset_runtime
from health.tests.conftest import Instances, serve_in_thread
from scaling.models import ScalingGroup

pytestmark = pytest.mark.django_db

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: Client) -> Samples:
    """Every sample of a /metrics answer, parsed by prometheus_client's own parser."""
    response = client.get("/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{labels} is not exposed"
    return samples[key]


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples if n == name]


@pytest.fixture(autouse=True)
def fresh_probe_runtime() -> Iterator[None]:
    yield
    reset_runtime()  # the probes' loop and pool die with the test that made them


@pytest.fixture
def own_redis(settings: Any, redis_server: RedisServer) -> RedisServer:
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_server.url
    return redis_server


def test_each_service_shows_its_health_in_each_environment(
    client: Client, world: Any, own_redis: RedisServer
) -> None:
    # given checkout down in production and healthy in staging, indexer unknown
    ServiceHealth.objects.create(
        service=world.service, environment=world.production, status=ServiceStatus.DOWN
    )
    ServiceHealth.objects.create(
        service=world.service, environment=world.staging, status=ServiceStatus.HEALTHY
    )
    ServiceHealth.objects.create(service=world.other_service, environment=world.production)
    for port, status in [(9001, CheckStatus.FAIL), (9002, CheckStatus.FAIL), (9003, "pass")]:
        instance = Instance.objects.create(
            service=world.service, environment=world.production, host="10.0.0.1", port=port
        )
        services.ensure_checks(instance)
        InstanceCheck.objects.filter(instance=instance).update(status=status)
    # when Prometheus scrapes
    samples = scrape(client)
    # then one series per service and environment, naming its state and team
    health = series(samples, "signalbox_service_health")
    assert {frozenset(labels.items()) for labels in health} == {
        frozenset(labels.items())
        for labels in [
            {"team": "payments", "service": "checkout", "environment": "production",
             "status": "down"},
            {"team": "payments", "service": "checkout", "environment": "staging",
             "status": "healthy"},
            {"team": "search", "service": "indexer", "environment": "production",
             "status": "unknown"},
        ]
    }  # fmt: skip
    checks = {"environment": "production"}
    assert value(samples, "signalbox_instance_checks", **checks, status="fail") == 2
    assert value(samples, "signalbox_instance_checks", **checks, status="pass") == 1
    assert value(samples, "signalbox_instance_checks", **checks, status="warn") == 0
    assert value(samples, "signalbox_metrics_source_up", source="health") == 1


def test_probe_latency_is_a_histogram_across_workers(
    client: Client, world: Any, own_redis: RedisServer
) -> None:
    # given a real instance answering its health check after ~60 ms, and one refusing
    server = Instances(delay=0.06)
    port, stop = serve_in_thread(server.app)
    try:
        slow = Instance.objects.create(
            service=world.service, environment=world.production, host="127.0.0.1", port=port
        )
        services.ensure_checks(slow)
        check = InstanceCheck.objects.get(instance=slow)
        # when a worker probes it twice (the scheduler, as Celery runs it)
        for _ in range(2):
            InstanceCheck.objects.filter(pk=check.pk).update(next_due_at=timezone.now())
            scheduler.run_now([check.pk])
    finally:
        stop()
    # then any web process exposes both probes in the histogram, by kind and result
    samples = scrape(client)
    http_pass = {"kind": "http", "result": "pass"}
    assert value(samples, "signalbox_probe_duration_seconds_count", **http_pass) == 2
    assert value(samples, "signalbox_probe_duration_seconds_bucket", **http_pass, le="0.05") == 0
    assert value(samples, "signalbox_probe_duration_seconds_bucket", **http_pass, le="0.25") == 2
    assert value(samples, "signalbox_probe_duration_seconds_bucket", **http_pass, le="+Inf") == 2
    assert 0.12 <= value(samples, "signalbox_probe_duration_seconds_sum", **http_pass) < 0.5
    assert value(samples, "signalbox_probe_lateness_seconds_count") == 2
    # and the counts live in Redis, not in this process
    assert own_redis.client().hlen("signalbox:metrics:signalbox_probe_duration_seconds") > 0


def test_probes_are_still_written_when_redis_cannot_count_them(
    world: Any, settings: Any, own_redis: RedisServer
) -> None:
    server = Instances()
    port, stop = serve_in_thread(server.app)
    own_redis.stop()
    try:
        instance = Instance.objects.create(
            service=world.service, environment=world.production, host="127.0.0.1", port=port
        )
        services.ensure_checks(instance)
        check = InstanceCheck.objects.get(instance=instance)
        report = scheduler.run_now([check.pk])
    finally:
        stop()
    assert report.written == 1
    check.refresh_from_db()
    assert check.last_result == CheckStatus.PASS


def rollout(world: Any, state: str, **fields: Any) -> Rollout:
    return Rollout.objects.create(
        team=world.team,
        service=world.service,
        environment=world.production,
        to_version="2.0",
        strategy="canary",
        state=state,
        **fields,
    )


def test_rollouts_by_state_and_how_late_their_next_step_is(
    client: Client, world: Any, own_redis: RedisServer
) -> None:
    now = timezone.now()
    # given a rollout whose next step has been due for two minutes, and two finished ones
    active = rollout(world, RolloutState.PROGRESSING, next_action_at=now - timedelta(minutes=2))
    RolloutStep.objects.create(rollout=active, index=0, kind="set_weight", started_at=now)
    RolloutStep.objects.create(
        rollout=active, index=1, kind="pause", started_at=now - timedelta(minutes=5)
    )
    finished = rollout(world, RolloutState.ROLLED_BACK)
    RolloutStep.objects.create(
        rollout=finished, index=0, kind="pause", started_at=now - timedelta(hours=5)
    )  # a finished rollout's unfinished step is no one's current step
    rollout(world, RolloutState.SUCCEEDED)
    samples = scrape(client)
    production = {"environment": "production"}
    assert value(samples, "signalbox_rollouts", **production, state="progressing") == 1
    assert value(samples, "signalbox_rollouts", **production, state="rolled_back") == 1
    assert value(samples, "signalbox_rollouts", **production, state="paused") == 0
    assert 120 <= value(samples, "signalbox_rollout_step_lag_seconds") < 180
    assert 300 <= value(samples, "signalbox_rollout_step_age_seconds") < 360
    # when it runs its step, nothing is late any more
    Rollout.objects.filter(state=RolloutState.PROGRESSING).update(
        next_action_at=now + timedelta(seconds=30)
    )
    assert value(scrape(client), "signalbox_rollout_step_lag_seconds") == 0


def test_incidents_firing_and_the_outbox_depth_and_age(
    client: Client, world: Any, own_redis: RedisServer
) -> None:
    rule = Rule.objects.create(
        team=world.team, name="down", kind=RuleKind.SERVICE_STATE, severity=Severity.PAGE
    )
    for n, state in enumerate([IncidentState.FIRING, IncidentState.FIRING, "resolved"]):
        Incident.objects.create(
            rule=rule, team=world.team, subject_type="catalog.service", subject_id=str(n),
            subject_label=f"s{n}", dedup_key=f"k{n}", severity=Severity.PAGE, state=state,
            title="down",
        )  # fmt: skip
    hook = Channel.objects.create(
        team=world.team, name="hook", kind=ChannelKind.WEBHOOK, url="https://hooks.example/x"
    )
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    Notification.objects.create(channel=hook, action="trigger", created_at=ten_minutes_ago)
    Notification.objects.create(channel=hook, action="trigger", state="delivering")
    Notification.objects.create(channel=hook, action="trigger", state="delivered")
    samples = scrape(client)
    assert value(samples, "signalbox_incidents", state="firing", severity="page") == 2
    assert value(samples, "signalbox_incidents", state="acknowledged", severity="page") == 0
    assert ("signalbox_incidents", frozenset({("state", "resolved")})) not in samples
    depth = "signalbox_notifications_undelivered"
    assert value(samples, depth, kind="webhook", state="pending") == 1
    assert value(samples, depth, kind="webhook", state="delivering") == 1
    assert value(samples, depth, kind="slack", state="pending") == 0
    age = "signalbox_notification_oldest_undelivered_age_seconds"
    assert 600 <= value(samples, age, kind="webhook") < 660
    assert value(samples, age, kind="slack") == 0


def test_scaling_groups_desired_against_actual(
    client: Client, world: Any, own_redis: RedisServer
) -> None:
    ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"},
        desired=3,
    )
    for port, lifecycle in [(1, Lifecycle.ACTIVE), (2, Lifecycle.LAUNCHING), (3, "draining")]:
        Instance.objects.create(
            service=world.service, environment=world.production, host="10.0.0.2", port=port,
            lifecycle=lifecycle,
        )  # fmt: skip
    samples = scrape(client)
    group = {"service": "checkout", "environment": "production"}
    assert value(samples, "signalbox_scaling_group_desired_instances", **group) == 3
    assert value(samples, "signalbox_scaling_group_instances", **group) == 2  # draining left
    assert value(samples, "signalbox_scaling_group_autoscaling_enabled", **group) == 1


def fleet(world: Any, start: int, stop: int) -> None:
    """Services svc-START..STOP, each with a health row, two instance checks, a rollout, an
    incident with its notification, and a scaling group."""
    rule, _ = Rule.objects.get_or_create(team=world.team, name="r", kind=RuleKind.SERVICE_STATE)
    hook, _ = Channel.objects.get_or_create(team=world.team, name="h", kind=ChannelKind.WEBHOOK)
    for n in range(start, stop):
        service = Service.objects.create(slug=f"svc-{n}", name=f"svc {n}", team=world.team)
        ServiceHealth.objects.create(service=service, environment=world.production)
        for port in (1, 2):
            instance = Instance.objects.create(
                service=service, environment=world.production, host=f"h{n}", port=port
            )
            InstanceCheck.objects.create(instance=instance)
        Rollout.objects.create(
            team=world.team, service=service, environment=world.production, to_version="2",
            strategy="canary", state=RolloutState.PAUSED,
        )  # fmt: skip
        incident = Incident.objects.create(
            rule=rule, team=world.team, service=service, subject_type="s", subject_id=str(n),
            subject_label="s", dedup_key=str(n), severity=Severity.TICKET, title="t",
            state=IncidentState.FIRING,
        )  # fmt: skip
        Notification.objects.create(channel=hook, action="trigger").incidents.add(incident)
        ScalingGroup.objects.create(
            service=service, environment=world.production, driver="process", desired=2
        )


def queries_to_scrape(client: Client) -> tuple[int, Samples]:
    with CaptureQueriesContext(connection) as captured:
        samples = scrape(client)
    return len(captured.captured_queries), samples


def test_a_scrape_runs_the_same_queries_for_10_or_200_services(
    client: Client, world: Any, own_redis: RedisServer
) -> None:
    fleet(world, 0, 10)
    small, samples = queries_to_scrape(client)
    assert len(series(samples, "signalbox_service_health")) == 10
    # when the fleet grows to 200 services
    fleet(world, 10, 200)
    large, samples = queries_to_scrape(client)
    assert len(series(samples, "signalbox_service_health")) == 200
    assert value(samples, "signalbox_incidents", state="firing", severity="ticket") == 200
    assert len(series(samples, "signalbox_scaling_group_instances")) == 200
    assert large == small
    assert large <= 10  # one or two per source (and none per service)


def test_a_broken_source_is_reported_down_and_the_rest_still_answer(
    client: Client, world: Any, own_redis: RedisServer
) -> None:
    def broken() -> Any:
        raise RuntimeError("this source is broken")

    saved = metrics.sources()
    metrics.register("broken", broken)
    try:
        samples = scrape(client)
    finally:
        metrics._SOURCES.clear()
        metrics._SOURCES.update(saved)
    assert value(samples, "signalbox_metrics_source_up", source="broken") == 0
    assert value(samples, "signalbox_metrics_source_up", source="deployments") == 1
    assert value(samples, "signalbox_celery_queue_depth", queue="probes") == 0
    assert value(samples, "signalbox_metrics_source_duration_seconds", source="health") >= 0
