"""Rules over events from the spine: held states, flapping, rollouts, circuits, heartbeats."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from alerts.choices import IncidentState, RuleKind, Severity
from alerts.defaults import DEFAULT_RULES, ROLLBACK_KEY, ensure_default_rules
from alerts.evaluation import evaluate_event, recheck_open, sweep_rules, tick
from alerts.models import Incident, Notification, Rule
from alerts.tests.conftest import service_changed, spine
from catalog.models import Team
from controlplane.models import Event


def make_rule(world: Any, kind: str, severity: str = Severity.PAGE, **params: Any) -> Rule:
    # The defaults every team has would also match; these tests look at one rule at a time.
    Rule.objects.filter(team=world.team).exclude(default_key=ROLLBACK_KEY).update(enabled=False)
    return Rule.objects.create(
        team=world.team, name=f"test {kind}", kind=kind, severity=severity, params=params
    )


def age(event: Any, seconds: int) -> None:
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


@pytest.mark.django_db
def test_every_new_team_gets_the_default_rules_once(world: Any) -> None:
    # given a team created after alerting was installed
    team = Team.objects.create(slug="growth", name="Growth")
    # then it has each default rule, and asking again creates nothing
    assert team.alert_rules.count() == len(DEFAULT_RULES)
    assert ensure_default_rules(team) == 0
    assert team.alert_rules.filter(default_key=ROLLBACK_KEY, enabled=True).exists()


@pytest.mark.django_db
def test_a_service_down_fires_only_once_it_held_for_the_duration(world: Any) -> None:
    rule = make_rule(world, RuleKind.SERVICE_STATE, states=["down"], for_seconds=60)
    # when the service goes down
    event = service_changed(world, "down", reason="3 of 3 instances failing")
    # then an incident is pending, not firing
    incident = Incident.objects.get(rule=rule)
    assert incident.state == IncidentState.PENDING
    assert incident.title == "checkout in production is down"
    # when the clock ticks after the duration, with the service still down
    age(event, 61)
    Incident.objects.filter(pk=incident.pk).update(fire_at=timezone.now() - timedelta(seconds=1))
    tick()
    # then it fires
    incident.refresh_from_db()
    assert incident.state == IncidentState.FIRING
    assert incident.reason == "3 of 3 instances failing"
    assert Event.objects.filter(action="incident.firing").count() == 1


@pytest.mark.django_db
def test_a_blip_shorter_than_the_duration_leaves_no_incident(world: Any) -> None:
    rule = make_rule(world, RuleKind.SERVICE_STATE, states=["down"], for_seconds=60)
    service_changed(world, "down")
    # when it recovers before the minute is up
    service_changed(world, "healthy")
    # then nothing fired and nothing is left
    assert not Incident.objects.filter(rule=rule).exists()
    assert not Event.objects.filter(action="incident.firing").exists()


@pytest.mark.django_db
def test_it_resolves_by_itself_when_the_service_recovers(world: Any) -> None:
    rule = make_rule(world, RuleKind.SERVICE_STATE, states=["down"], for_seconds=0)
    service_changed(world, "down")
    incident = Incident.objects.get(rule=rule)
    assert incident.state == IncidentState.FIRING
    # when
    service_changed(world, "healthy")
    # then
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED
    assert incident.resolved_by == ""
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds[0] == "fired" and kinds[-1] == "resolved"


@pytest.mark.django_db
def test_one_open_incident_per_rule_and_subject(world: Any) -> None:
    rule = make_rule(world, RuleKind.SERVICE_STATE, states=["down", "degraded"], for_seconds=0)
    service_changed(world, "down")
    service_changed(world, "degraded")
    service_changed(world, "down", env=world.staging)
    # then one per environment, and the database refuses a second open one
    assert Incident.objects.filter(rule=rule).open().count() == 2
    first = Incident.objects.filter(rule=rule).first()
    assert first is not None
    with pytest.raises(IntegrityError), transaction.atomic():
        Incident.objects.create(
            rule=rule,
            team=world.team,
            dedup_key=first.dedup_key,
            severity=rule.severity,
            title="dup",
            subject_type="x",
            subject_id="1",
            subject_label="x",
            state=IncidentState.FIRING,
        )


@pytest.mark.django_db
def test_an_old_event_evaluated_late_does_not_undo_a_newer_one(world: Any) -> None:
    rule = make_rule(world, RuleKind.SERVICE_STATE, states=["down"], for_seconds=0)
    from controlplane.events import publish

    # given "down" then "healthy" committed, but evaluated in the opposite order
    down = publish(
        "health.service.changed",
        subject=world.service,
        environment=world.production,
        payload={"from": "healthy", "to": "down", "reason": "r"},
    )
    healthy = publish(
        "health.service.changed",
        subject=world.service,
        environment=world.production,
        payload={"from": "down", "to": "healthy", "reason": "r"},
    )
    evaluate_event(healthy.pk)
    evaluate_event(down.pk)
    # then the latest state wins: nothing open
    assert not Incident.objects.filter(rule=rule).open().exists()


@pytest.mark.django_db
def test_an_event_is_evaluated_once(world: Any) -> None:
    rule = make_rule(world, RuleKind.ROLLOUT_OUTCOME, outcomes=["failed"])
    event = spine(
        "rollout.failed",
        subject=world.service,
        environment=world.production,
        message="progress deadline exceeded",
    )
    # when it is handed over again (a redelivered message, the catch-up sweep)
    assert evaluate_event(event.pk) is False
    assert Incident.objects.filter(rule=rule).count() == 1


@pytest.mark.django_db
def test_a_rollback_always_notifies_the_owning_team(alerting: Any) -> None:
    world = alerting.world
    # given the team routes nothing at the rollback rule's severity (ticket)
    assert not world.team.alert_routes.exists()
    # when a rollout rolls back
    spine(
        "rollout.rolled_back",
        subject=world.service,
        environment=world.production,
        message="error rate 12% > 5% at step 2",
        payload={"reason": "error rate 12% > 5%"},
    )
    # then the incident fires and every channel of the team is notified
    incident = Incident.objects.get(rule__default_key=ROLLBACK_KEY)
    assert incident.state == IncidentState.FIRING
    assert incident.title == "checkout rollout rolled back in production"
    channels = set(
        Notification.objects.filter(incidents=incident).values_list("channel__name", flat=True)
    )
    assert channels == {"slack", "pagerduty", "webhook"}


@pytest.mark.django_db
def test_the_rollback_rule_cannot_be_turned_off(api_as: Any, world: Any) -> None:
    rule = Rule.objects.get(team=world.team, default_key=ROLLBACK_KEY)
    answer = api_as("owner").patch(f"/api/v1/alerts/rules/{rule.pk}", {"enabled": False})
    assert answer.status_code == 400
    assert "enabled" in answer.json()["error"]["fields"]
    assert api_as("owner").delete(f"/api/v1/alerts/rules/{rule.pk}").status_code == 409


@pytest.mark.django_db
def test_a_later_successful_rollout_resolves_the_rollback(world: Any) -> None:
    spine("rollout.rolled_back", subject=world.service, environment=world.production)
    spine("rollout.succeeded", subject=world.service, environment=world.production)
    incident = Incident.objects.get(rule__default_key=ROLLBACK_KEY)
    assert incident.state == IncidentState.RESOLVED


@pytest.mark.django_db
def test_an_instance_flapping_fires_and_calms_down(world: Any) -> None:
    from catalog.models import Instance

    rule = make_rule(world, RuleKind.INSTANCE_FLAPPING, transitions=4, window_seconds=600)
    instance = Instance.objects.create(
        service=world.service, environment=world.production, host="10.0.0.1", port=80
    )
    states = ["fail", "pass", "fail", "pass"]
    events = [
        spine(
            "health.instance.changed",
            subject=instance,
            payload={"from": "x", "to": s, "reason": "", "in_maintenance": False},
        )
        for s in states
    ]
    incident = Incident.objects.get(rule=rule)
    assert incident.state == IncidentState.FIRING
    assert incident.reason == "4 health changes in the last 10 min"
    # when the window passes without changes
    for event in events:
        age(event, 601)
    recheck_open()
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED


@pytest.mark.django_db
def test_a_circuit_open_fires_after_its_duration_and_half_open_keeps_the_clock(
    world: Any,
) -> None:
    rule = make_rule(world, RuleKind.CIRCUIT_OPEN, for_seconds=30)
    # the circuit is a row of the circuits app; any subject with an id shows the contract
    opened = spine(
        "circuit.opened",
        subject=world.other_service,
        service=world.service,
        environment=world.production,
        team=world.team,
    )
    spine(
        "circuit.half_opened",
        subject=world.other_service,
        service=world.service,
        environment=world.production,
        team=world.team,
    )
    incident = Incident.objects.get(rule=rule)
    assert incident.state == IncidentState.PENDING
    age(opened, 31)
    Incident.objects.filter(pk=incident.pk).update(fire_at=timezone.now())
    spine(
        "circuit.opened",
        subject=world.other_service,
        service=world.service,
        environment=world.production,
        team=world.team,
    )
    incident.refresh_from_db()
    assert incident.state == IncidentState.FIRING
    spine(
        "circuit.closed",
        subject=world.other_service,
        service=world.service,
        environment=world.production,
        team=world.team,
    )
    incident.refresh_from_db()
    assert incident.state == IncidentState.RESOLVED


@pytest.mark.django_db
def test_a_late_heartbeat_fires_and_recovery_resolves(world: Any) -> None:
    rule = make_rule(world, RuleKind.HEARTBEAT, Severity.TICKET, on=["late"])
    spine("heartbeat.late", subject=world.service, team=world.team, message="nightly-backup late")
    assert Incident.objects.get(rule=rule).state == IncidentState.FIRING
    spine("heartbeat.recovered", subject=world.service, team=world.team)
    assert Incident.objects.get(rule=rule).state == IncidentState.RESOLVED


@pytest.mark.django_db
def test_the_slo_rule_pages_on_a_fast_burn_from_health_probes(world: Any) -> None:
    from health import rollups
    from health.models.history import HISTOGRAM_SIZE

    rule = make_rule(world, RuleKind.SLO_BURN, objective=0.999, windows=[[3600, 300, 14.4]])
    rule.production_only = True
    rule.save()
    # given an hour of 18 probes a minute, every probe failing in the last 2 minutes
    now = rollups.minute_of(timezone.now())
    rollups.upsert(
        {
            (world.service.pk, world.production.pk, now - timedelta(minutes=ago)): rollups.Bucket(
                count=18, failures=18 if ago <= 2 else 0, histogram=[0] * HISTOGRAM_SIZE
            )
            for ago in range(1, 61)
        }
    )
    # when the clock sweeps the SLO rules
    sweep_rules(now)
    # then 36 failed of 1080 (33x) and of 90 in the last 5 minutes (400x) page
    incident = Incident.objects.get(rule=rule)
    assert incident.state == IncidentState.FIRING
    assert incident.reason == "burn rate 33.3x over 1h and 400.0x over 5m (threshold 14.4x)"


@pytest.mark.django_db
def test_rule_parameters_are_checked(api_as: Any, world: Any) -> None:
    answer = api_as("owner").post(
        "/api/v1/alerts/rules",
        {
            "team": "payments",
            "name": "x",
            "kind": RuleKind.SERVICE_STATE,
            "params": {"states": ["sideways"], "for_seconds": -1, "colour": "red"},
        },
    )
    assert answer.status_code == 400
    assert set(answer.json()["error"]["fields"]) == {"params.colour"}
    answer = api_as("owner").post(
        "/api/v1/alerts/rules",
        {
            "team": "payments",
            "name": "x",
            "kind": RuleKind.SERVICE_STATE,
            "params": {"states": ["sideways"], "for_seconds": -1},
        },
    )
    assert set(answer.json()["error"]["fields"]) == {"params.states", "params.for_seconds"}
