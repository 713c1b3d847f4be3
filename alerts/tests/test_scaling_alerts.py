"""A group that keeps scaling is an alert, with a leak-or-load verdict from the instances'
memory; its Slack message offers the remedy (a rolling restart), and Slack scales groups
like the page, the API and the CLI do."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from alerts.choices import IncidentState, RuleKind, Severity
from alerts.models import Incident, Rule, SlackIdentity
from alerts.notifiers.slack import RESTART_ACTION_ID, _incident_blocks
from alerts.tests.conftest import spine
from alerts.tests.test_slack_bot import SECRET, command, signed
from catalog.choices import Lifecycle
from catalog.models import Instance
from scaling import leaks
from scaling.choices import ScalingEvent
from scaling.models import Decision, MetricMinute, ScalingGroup

pytestmark = pytest.mark.django_db


@pytest.fixture
def group(world: Any) -> ScalingGroup:
    return ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"},
        min_instances=1,
        max_instances=10,
        desired=3,
    )


def instances(world: Any, n: int, age_minutes: int, first_port: int = 8000) -> list[Instance]:
    born = timezone.now() - timedelta(minutes=age_minutes)
    return [
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="10.0.0.1",
            port=first_port + i,
            lifecycle=Lifecycle.ACTIVE,
            registered_at=born,
        )
        for i in range(n)
    ]


def minutes(instance: Instance, name: str, values: list[float], end: Any = None) -> None:
    end = (end or timezone.now()).replace(second=0, microsecond=0)
    MetricMinute.objects.bulk_create(
        MetricMinute(
            instance=instance,
            name=name,
            minute=end - timedelta(minutes=len(values) - i),
            total=value,
            count=1,
        )
        for i, value in enumerate(values)
    )


def test_memory_growing_under_flat_load_looks_like_a_leak(world: Any, group: ScalingGroup) -> None:
    for instance in instances(world, 3, 60):
        minutes(instance, "memory_mb", [100 + 0.7 * m for m in range(60)])
        minutes(instance, "cpu_percent", [40.0 + (m % 3) for m in range(60)])
    found = leaks.verdict(group)
    assert found.leak
    assert found.text.startswith("RSS grows 0.7 MB/min per instance while load is flat")
    assert "rolling restart" in found.text


def test_memory_following_load_is_not_called_a_leak(world: Any, group: ScalingGroup) -> None:
    for instance in instances(world, 3, 60):
        minutes(instance, "memory_mb", [100 + 0.7 * m for m in range(60)])
        minutes(instance, "cpu_percent", [10.0 + m for m in range(60)])
    found = leaks.verdict(group)
    assert found.kind == "load"
    assert "memory follows load" in found.text


def test_steady_memory_and_too_little_data(world: Any, group: ScalingGroup) -> None:
    [young] = instances(world, 1, 5)
    minutes(young, "memory_mb", [100.0, 101.0, 102.0])
    assert leaks.verdict(group).kind == "unknown"
    [old] = instances(world, 1, 60, first_port=9000)
    minutes(old, "memory_mb", [100.0 + (m % 2) for m in range(60)])
    assert leaks.verdict(group).kind == "steady"


def churn_rule(world: Any, changes: int = 7) -> Rule:
    Rule.objects.filter(team=world.team).update(enabled=False)
    return Rule.objects.create(
        team=world.team,
        name="churn",
        kind=RuleKind.SCALING_CHURN,
        severity=Severity.TICKET,
        params={"changes": changes, "window_seconds": 3600},
    )


def decided(group: ScalingGroup, manual: bool = False) -> None:
    payload: dict[str, Any] = {"current": 3, "desired": 4}
    if manual:
        payload["manual"] = True
    spine(ScalingEvent.DECIDED, subject=group, service=group.service,
          environment=group.environment, message="scale", payload=payload)  # fmt: skip


def test_seven_scalings_in_an_hour_fire_with_the_leak_verdict(
    world: Any, group: ScalingGroup
) -> None:
    rule = churn_rule(world)
    for instance in instances(world, 3, 60):
        minutes(instance, "memory_mb", [100 + 0.7 * m for m in range(60)])
    # six autoscaling changes and two by hand: not yet
    for _ in range(6):
        decided(group)
    decided(group, manual=True)
    decided(group, manual=True)
    assert not Incident.objects.filter(rule=rule, state=IncidentState.FIRING).exists()
    # the seventh fires, and the reason carries the verdict and the remedy
    decided(group)
    incident = Incident.objects.get(rule=rule)
    assert incident.state == IncidentState.FIRING
    assert incident.title == "checkout/production scaled 7 times in the last hour"
    assert "RSS grows 0.7 MB/min per instance" in incident.reason
    assert "/signalbox scale checkout production restart" in incident.reason
    # its Slack message offers the rolling restart
    blocks = json.dumps(_incident_blocks("trigger", incident))
    assert RESTART_ACTION_ID in blocks


@pytest.fixture
def slack(settings: Any, world: Any) -> Client:
    settings.SLACK_SIGNING_SECRET = SECRET
    SlackIdentity.objects.create(user=world.deployer, slack_team_id="T1", slack_user_id="U-DEP")
    SlackIdentity.objects.create(user=world.viewer, slack_team_id="T1", slack_user_id="U-VIEW")
    return Client()


def test_slack_sets_the_count_pauses_and_restarts_as_the_linked_user(
    slack: Client, group: ScalingGroup
) -> None:
    answer = signed(slack, "/slack/commands", command("scale checkout production 5"))
    assert "set to 5 instances" in answer.json()["text"]
    group.refresh_from_db()
    assert (group.desired, group.enabled) == (5, False)
    assert Decision.objects.get(group=group).reason == "manual"
    # a viewer may not
    refused = signed(slack, "/slack/commands", command("scale checkout production 2", "U-VIEW"))
    assert "may not scale" in refused.json()["text"]
    # outside the bounds is refused with the reason
    too_many = signed(slack, "/slack/commands", command("scale checkout production 50"))
    assert "outside" in too_many.json()["text"]
    # bad words say what to give
    wrong = signed(slack, "/slack/commands", command("scale checkout production lots"))
    assert "give a count" in wrong.json()["text"]
    # resume, and the restart button of a churn alert
    signed(slack, "/slack/commands", command("scale checkout production resume"))
    group.refresh_from_db()
    assert group.enabled
    payload = {
        "type": "block_actions",
        "user": {"id": "U-DEP", "team_id": "T1"},
        "team": {"id": "T1"},
        "response_url": "",
        "actions": [{"action_id": RESTART_ACTION_ID, "value": str(group.pk)}],
    }
    done = signed(slack, "/slack/interactions", urlencode({"payload": json.dumps(payload)}))
    assert "rolling restart started" in done.json()["text"]
    group.refresh_from_db()
    assert group.restart_started_at is not None
