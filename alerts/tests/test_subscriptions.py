"""Rollout events to channels without an incident, as Argo Rollouts' notifications: chosen
events of a team's services, through the spine's hand-off and the outbox, formatted per
channel kind, once per channel and event."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest

from alerts.choices import DeliveryState, NotificationAction
from alerts.evaluation import evaluate_event
from alerts.models import Channel, Notification, Subscription
from alerts.tests.conftest import WEBHOOK_SECRET, deliver_all
from controlplane.models import Event
from deployments.choices import RolloutEvent
from deployments.models import Rollout
from deployments.reconciler.events import announce

pytestmark = pytest.mark.django_db


@pytest.fixture
def rollout(world: Any) -> Rollout:
    return Rollout.objects.create(
        team=world.team,
        service=world.service,
        environment=world.production,
        strategy="canary",
        steps=[{"set_weight": 20}, {"pause": {}}, {"set_weight": 100}],
        from_version="1.9",
        to_version="2.0",
    )


def happen(action: str, rollout: Rollout, message: str = "", **extra: Any) -> Event:
    """The reconciler's announcement, then the spine's hand-off to alerting."""
    announce(action, rollout, message=message or f"checkout 2.0 in production: {action}", **extra)
    event = Event.objects.filter(action=action).latest("id")
    evaluate_event(event.pk)
    return event


def subscribe(channel: Channel, events: list[str], **kwargs: Any) -> Subscription:
    return Subscription.objects.create(team=channel.team, channel=channel, events=events, **kwargs)


def test_slack_hears_the_chosen_rollout_events_and_only_those(
    alerting: Any, rollout: Rollout
) -> None:
    subscribe(alerting.slack, ["started", "rolled_back"])
    happen(RolloutEvent.CREATED, rollout, "checkout 1.9 → 2.0 in production started by owner")
    happen(RolloutEvent.PAUSED, rollout)
    happen(RolloutEvent.ROLLED_BACK, rollout, "rolling back: error rate 12%", phase="started")
    happen(RolloutEvent.ROLLED_BACK, rollout, "all traffic back on 1.9", phase="completed")
    deliver_all()
    # (the team's rollback rule also pages about the rollback: that is an incident's message)
    notices = [
        r.json()
        for r in alerting.receiver.to("/slack")
        if "blocks" in r.json() and ": rollout " in r.json()["text"]
    ]
    started, rolled_back = notices
    assert started["text"] == "🚀 checkout 2.0 in production: rollout started"
    assert rolled_back["text"] == "⚠️ checkout 2.0 in production: rollout rolled back"
    fields = [f["text"] for f in rolled_back["blocks"][1]["fields"]]
    assert "*Version*\n1.9 → 2.0" in fields
    assert "*Service*\ncheckout" in fields
    assert rolled_back["blocks"][2]["elements"][0]["text"] == "rolling back: error rate 12%"
    [button] = rolled_back["blocks"][3]["elements"]
    assert button["url"] == f"https://signalbox.example/deployments/rollouts/{rollout.pk}/"
    # news, not incidents: the rows carry no incident, and a retry-safe one per event
    rows = Notification.objects.filter(action=NotificationAction.ROLLOUT)
    assert rows.count() == 2
    assert all(not row.incidents.exists() for row in rows)


def test_the_webhook_gets_signed_json_of_the_event(alerting: Any, rollout: Rollout) -> None:
    subscribe(alerting.webhook, ["succeeded"])
    event = happen(RolloutEvent.SUCCEEDED, rollout, "checkout 2.0 in production succeeded")
    deliver_all()
    [request] = alerting.receiver.wait_for("/hook", 1)
    timestamp = request.headers["X-Signalbox-Timestamp"]
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Signalbox-Signature"] == f"sha256={expected}"
    document = request.json()
    assert document["action"] == "rollout"
    assert document["team"] == "payments"
    details = document["rollout_event"]
    assert details["event"] == event.pk
    assert details["notice"] == "succeeded"
    assert (details["service"], details["environment"]) == ("checkout", "production")
    assert (details["from_version"], details["to_version"]) == ("1.9", "2.0")
    assert details["rollout"] == rollout.pk
    assert details["message"] == "checkout 2.0 in production succeeded"


def test_an_apprise_channel_gets_a_title_and_a_body(alerting: Any, rollout: Rollout) -> None:
    port = alerting.receiver.port
    target = Channel.objects.create(
        team=alerting.world.team,
        name="ntfy-ish",
        kind="apprise",
        secret=f"json://127.0.0.1:{port}/apprise",
    )
    subscribe(target, ["paused"])
    happen(RolloutEvent.PAUSED, rollout, "checkout 2.0 in production paused: waiting for promotion")
    deliver_all()
    [request] = alerting.receiver.wait_for("/apprise", 1)
    body = request.json()
    assert body["title"] == "checkout 2.0 in production: rollout paused"
    assert body["message"].startswith("checkout 2.0 in production paused: waiting for promotion")
    assert "version:     1.9 -> 2.0" in body["message"]
    assert body["type"] == "warning"


def test_pagerduty_gets_a_change_event_not_a_page(world: Any, receiver: Any, rollout: Any) -> None:
    target = Channel.objects.create(
        team=world.team,
        name="pd",
        kind="pagerduty",
        secret="R0123456789abcdef0123456789ABCDE",
        url=receiver.url("/v2/enqueue"),
    )
    subscribe(target, ["started"])
    happen(RolloutEvent.CREATED, rollout)
    deliver_all()
    [request] = receiver.wait_for("/v2/change/enqueue", 1)
    change = request.json()
    assert change["routing_key"] == "R0123456789abcdef0123456789ABCDE"
    assert change["payload"]["summary"] == "checkout 2.0 in production: rollout started"
    assert change["payload"]["source"] == "signalbox"
    assert change["payload"]["custom_details"]["to_version"] == "2.0"
    assert change["links"][0]["href"].endswith(f"/deployments/rollouts/{rollout.pk}/")
    assert receiver.to("/v2/enqueue") == []


def test_the_selector_narrows_by_service_and_environment(
    alerting: Any, rollout: Rollout, world: Any
) -> None:
    subscribe(alerting.slack, ["started"], environment=world.staging)
    subscribe(alerting.webhook, ["started"], production_only=True, service=world.service)
    happen(RolloutEvent.CREATED, rollout)  # production
    deliver_all()
    assert alerting.receiver.to("/slack") == []
    assert len(alerting.receiver.wait_for("/hook", 1)) == 1


def test_one_notice_per_channel_and_event_however_often_it_is_evaluated(
    alerting: Any, rollout: Rollout
) -> None:
    subscribe(alerting.slack, ["started"])
    subscribe(alerting.slack, ["started", "succeeded"])  # overlapping
    event = happen(RolloutEvent.CREATED, rollout)
    evaluate_event(event.pk)  # a redelivered hand-off
    deliver_all()
    deliver_all()
    assert Notification.objects.filter(event_id=event.pk).count() == 1
    assert len(alerting.receiver.wait_for("/slack", 1)) == 1


def test_a_failed_send_is_retried_and_sent_once(alerting: Any, rollout: Rollout) -> None:
    alerting.receiver.respond("/slack", 500)
    subscribe(alerting.slack, ["started"])
    happen(RolloutEvent.CREATED, rollout)
    deliver_all(rounds=1)
    row = Notification.objects.get(action=NotificationAction.ROLLOUT)
    assert (row.state, row.last_status_code) == (DeliveryState.PENDING, 500)
    Notification.objects.filter(pk=row.pk).update(next_attempt_at=row.created_at)
    deliver_all()
    row.refresh_from_db()
    assert (row.state, row.attempts) == (DeliveryState.DELIVERED, 2)


def test_a_disabled_subscription_or_channel_hears_nothing(alerting: Any, rollout: Rollout) -> None:
    subscribe(alerting.slack, ["started"], enabled=False)
    subscribe(alerting.webhook, ["started"])
    Channel.objects.filter(pk=alerting.webhook.pk).update(enabled=False)
    happen(RolloutEvent.CREATED, rollout)
    assert Notification.objects.filter(action=NotificationAction.ROLLOUT).count() == 0


# -- the API ----------------------------------------------------------------------------------


def test_owners_subscribe_a_channel_with_the_default_events(api_as: Any, alerting: Any) -> None:
    answer = api_as("owner").post(
        "/api/v1/alerts/subscriptions",
        {"team": "payments", "channel": alerting.slack.pk, "service": "checkout"},
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    assert answer.json()["events"] == ["started", "paused", "succeeded", "rolled_back"]
    assert Event.objects.filter(action="alert_subscription.created").exists()
    listed = api_as("viewer").get("/api/v1/alerts/subscriptions?team=payments").json()
    assert [s["id"] for s in listed["results"]] == [answer.json()["id"]]


def test_the_api_names_the_field_it_refuses(api_as: Any, alerting: Any, world: Any) -> None:
    def post(**body: Any) -> Any:
        data = {"team": "payments", "channel": alerting.slack.pk, **body}
        return api_as("owner").post("/api/v1/alerts/subscriptions", data, format="json")

    unknown = post(events=["started", "exploded"])
    assert unknown.status_code == 400
    assert "events" in json.dumps(unknown.json()) and "exploded" in json.dumps(unknown.json())
    empty = post(events=[])
    assert empty.status_code == 400 and "events" in json.dumps(empty.json())
    theirs = Channel.objects.create(
        team=world.other_team, name="theirs", kind="webhook", url="http://127.0.0.1:9/x"
    )
    foreign = post(channel=theirs.pk)
    assert foreign.status_code == 400 and "channel" in json.dumps(foreign.json())
    other_service = post(service="indexer")
    assert other_service.status_code == 400 and "service" in json.dumps(other_service.json())


def test_only_the_teams_owners_change_subscriptions(api_as: Any, alerting: Any) -> None:
    body = {"team": "payments", "channel": alerting.slack.pk}
    assert (
        api_as("viewer").post("/api/v1/alerts/subscriptions", body, format="json").status_code
        == 403
    )
    assert (
        api_as("outsider").post("/api/v1/alerts/subscriptions", body, format="json").status_code
        == 403
    )
    made = subscribe(alerting.slack, ["started"])
    gone = api_as("outsider").delete(f"/api/v1/alerts/subscriptions/{made.pk}")
    assert gone.status_code in (403, 404)
    assert Subscription.objects.filter(pk=made.pk).exists()
