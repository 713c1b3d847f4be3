"""The native Opsgenie channel against a real HTTP receiver on loopback: the exact paths,
headers and JSON of create, acknowledge and close (Alert API v2), the outbox's retries, the
key encrypted at rest, the region, and "send a test"."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection

from alerts.choices import ChannelKind, DeliveryState, RuleKind, Severity
from alerts.incidents import acknowledge, resolve
from alerts.models import Channel, DeliveryAttempt, Incident, Notification, Rule
from alerts.notifiers import opsgenie
from alerts.tests.conftest import deliver_all, service_changed

pytestmark = pytest.mark.django_db
GENIE_KEY = "1b2c3d4e-0000-4000-8000-00000000abcd"


@pytest.fixture
def genie(alerting: Any) -> Channel:
    channel = Channel.objects.create(
        team=alerting.world.team, name="opsgenie", kind=ChannelKind.OPSGENIE,
        secret=GENIE_KEY, url=alerting.receiver.url("/genie"),
    )  # fmt: skip
    alerting.route(channel)
    Rule.objects.filter(team=alerting.world.team).update(enabled=False)
    Rule.objects.create(
        team=alerting.world.team, name="checkout down", kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE, params={"states": ["down"], "for_seconds": 0},
    )  # fmt: skip
    return channel


def deliver_until_settled(timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliver_all()
        busy = [DeliveryState.PENDING, DeliveryState.DELIVERING]
        if not Notification.objects.filter(state__in=busy).exists():
            return
        time.sleep(0.01)
    raise AssertionError("notifications still pending")


def test_it_creates_acknowledges_and_closes_one_alert_by_alias(
    alerting: Any, genie: Channel
) -> None:
    # when checkout goes down, someone acknowledges, then resolves it
    service_changed(alerting.world, "down", reason="3 of 3 instances failing /health")
    incident = Incident.objects.get(state="firing")
    deliver_all()
    acknowledge(incident.pk, alerting.world.deployer)
    deliver_all()
    resolve(incident.pk, alerting.world.deployer)
    deliver_all()
    # then Opsgenie got the create, then the ack and the close by the incident's alias
    alias = f"signalbox-incident-{incident.pk}"
    created = alerting.receiver.wait_for("/genie/v2/alerts", 1)
    acked = alerting.receiver.wait_for(f"/genie/v2/alerts/{alias}/acknowledge", 1)
    closed = alerting.receiver.wait_for(f"/genie/v2/alerts/{alias}/close", 1)
    for request in (*created, *acked, *closed):
        assert request.method == "POST"
        assert request.headers["Authorization"] == f"GenieKey {GENIE_KEY}"
        assert request.headers["Content-Type"] == "application/json"
    assert [r.query for r in (*acked, *closed)] == ["identifierType=alias"] * 2
    url = f"https://signalbox.example/alerts/incidents/{incident.pk}/"
    assert created[0].json() == {
        "message": "checkout in production is down",
        "alias": alias,
        "description": f"3 of 3 instances failing /health\n\n{url}",
        "source": "Signalbox",
        "entity": "checkout in production",
        "priority": "P1",
        "tags": ["team:payments", "severity:page", "service:checkout"],
        "details": {
            "reason": "3 of 3 instances failing /health",
            "rule": "checkout down",
            "state": "firing",
            "signalbox_url": url,
            "environment": "production",
        },
    }
    assert acked[0].json() == {
        "source": "Signalbox", "user": "Signalbox", "note": "acknowledged in Signalbox"
    }  # fmt: skip
    assert closed[0].json() == {
        "source": "Signalbox", "user": "Signalbox", "note": "resolved in Signalbox"
    }  # fmt: skip
    # and each incident is its own alert: nothing grouped under a channel-wide key
    assert Notification.objects.filter(channel=genie, group_key="").count() == 3


def test_it_retries_a_5xx_and_a_429_then_delivers(alerting: Any, genie: Channel) -> None:
    alerting.receiver.respond("/genie/v2/alerts", 503, (429, "slow down", {"Retry-After": "0"}))
    service_changed(alerting.world, "down")
    deliver_until_settled()
    notification = Notification.objects.get(channel=genie)
    assert notification.state == DeliveryState.DELIVERED and notification.attempts == 3
    assert [a.status_code for a in DeliveryAttempt.objects.order_by("id")] == [503, 429, 200]
    assert len(alerting.receiver.to("/genie/v2/alerts")) == 3


def test_a_refused_key_is_not_retried(alerting: Any, genie: Channel) -> None:
    alerting.receiver.respond("/genie/v2/alerts", (401, '{"message":"Key is not valid"}', {}))
    service_changed(alerting.world, "down")
    deliver_until_settled()
    notification = Notification.objects.get(channel=genie)
    assert notification.state == DeliveryState.FAILED and notification.attempts == 1
    assert "HTTP 401" in notification.last_error and "Key is not valid" in notification.last_error


def test_the_key_is_encrypted_at_rest_and_masked(genie: Channel, api_as: Any) -> None:
    answer = api_as("viewer").get(f"/api/v1/alerts/channels/{genie.pk}").json()
    assert "secret" not in answer and answer["secret_masked"].endswith("abcd")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM alerts_channel WHERE id = %s", [genie.pk])
        assert GENIE_KEY not in cursor.fetchone()[0]


def test_send_a_test_creates_and_closes_a_p5_alert(
    alerting: Any, genie: Channel, api_as: Any
) -> None:
    answer = api_as("owner").post(f"/api/v1/alerts/channels/{genie.pk}/test")
    assert answer.json() == {"ok": True, "status_code": 200, "error": ""}
    [created] = alerting.receiver.to("/genie/v2/alerts")
    assert created.json() == {
        "message": "Test notification from Signalbox (payments/opsgenie)",
        "alias": f"signalbox-test-{genie.pk}", "source": "Signalbox", "priority": "P5",
    }  # fmt: skip
    [closed] = alerting.receiver.to(f"/genie/v2/alerts/signalbox-test-{genie.pk}/close")
    assert closed.query == "identifierType=alias"
    assert closed.headers["Authorization"] == f"GenieKey {GENIE_KEY}"


def test_the_region_picks_the_api_and_bad_settings_are_400(api_as: Any, world: Any) -> None:
    base = {"team": "payments", "name": "og", "kind": "opsgenie", "secret": GENIE_KEY}
    eu = api_as("owner").post(
        "/api/v1/alerts/channels", {**base, "config": {"region": "eu"}}, format="json"
    )
    assert eu.status_code == 201, eu.json()
    channel = Channel.objects.get(pk=eu.json()["id"])
    assert opsgenie.base_url(channel) == "https://api.eu.opsgenie.com"
    channel.config = {}
    assert opsgenie.base_url(channel) == "https://api.opsgenie.com"
    for body, field, reason in [
        ({**base, "name": "a", "secret": "not-a-key"}, "secret", "an Opsgenie API key looks like"),
        (
            {**base, "name": "b", "config": {"region": "mars"}},
            "config.region",
            "must be one of us, eu",
        ),
        ({**base, "name": "c", "config": {"colour": "red"}}, "config", "unknown settings: colour"),
    ]:
        answer = api_as("owner").post("/api/v1/alerts/channels", body, format="json")
        assert answer.status_code == 400, body
        assert reason in str(answer.json()["error"]["fields"][field])


def test_a_rollout_notice_is_an_informational_alert(world: Any, receiver: Any) -> None:
    from alerts.evaluation import evaluate_event
    from alerts.models import Subscription
    from controlplane.models import Event
    from deployments.choices import RolloutEvent
    from deployments.models import Rollout
    from deployments.reconciler.events import announce

    # given an Opsgenie channel subscribed to rollout starts
    channel = Channel.objects.create(
        team=world.team, name="og", kind=ChannelKind.OPSGENIE, secret=GENIE_KEY,
        url=receiver.url("/og"),
    )  # fmt: skip
    Subscription.objects.create(team=world.team, channel=channel, events=["started"])
    rollout = Rollout.objects.create(
        team=world.team, service=world.service, environment=world.production,
        strategy="canary", steps=[{"set_weight": 100}], from_version="1.9", to_version="2.0",
    )  # fmt: skip
    # when a rollout starts
    announce(RolloutEvent.CREATED, rollout, message="checkout 2.0 in production: started")
    evaluate_event(Event.objects.filter(action=RolloutEvent.CREATED).latest("id").pk)
    deliver_all()
    # then Opsgenie gets a P5 alert with the rollout's own alias, never a page
    [request] = receiver.wait_for("/og/v2/alerts", 1)
    assert request.headers["Authorization"] == f"GenieKey {GENIE_KEY}"
    body = request.json()
    assert body["priority"] == "P5" and body["alias"].startswith(f"signalbox-rollout-{rollout.pk}-")
    assert body["message"] == "checkout 2.0 in production: rollout started"
    assert "1.9" in body["description"] and "2.0" in body["description"]
