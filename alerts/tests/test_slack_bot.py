"""The Slack bot: signed requests only, fresh ones only, acting as the linked Signalbox user."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from alerts.choices import IncidentState, RuleKind, Severity
from alerts.models import Incident, Rule, SlackIdentity
from alerts.slack_bot import signature
from alerts.tests.conftest import service_changed

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
def slack(settings: Any, world: Any) -> Client:
    settings.SLACK_SIGNING_SECRET = SECRET
    SlackIdentity.objects.create(user=world.deployer, slack_team_id="T1", slack_user_id="U-DEP")
    SlackIdentity.objects.create(user=world.viewer, slack_team_id="T1", slack_user_id="U-VIEW")
    return Client()


def signed(client: Client, path: str, body: str, *, secret: str = SECRET, age: int = 0) -> Any:
    timestamp = str(int(time.time()) - age)
    return client.post(
        path,
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_SLACK_SIGNATURE=signature(secret, timestamp, body.encode()),
    )


def command(text: str, user: str = "U-DEP") -> str:
    return urlencode(
        {
            "command": "/signalbox",
            "text": text,
            "team_id": "T1",
            "user_id": user,
            "response_url": "https://hooks.slack.com/commands/x",
        }
    )


def firing_incident(world: Any) -> Incident:
    Rule.objects.filter(team=world.team).update(enabled=False)
    Rule.objects.create(
        team=world.team,
        name="down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )
    service_changed(world, "down")
    return Incident.objects.get()


@pytest.mark.django_db
def test_a_correctly_signed_status_command_is_answered(slack: Client, world: Any) -> None:
    firing_incident(world)
    answer = signed(slack, "/slack/commands", command("status checkout"))
    assert answer.status_code == 200
    text = answer.json()["text"]
    assert "1 firing, 0 acknowledged" in text
    assert "checkout in production is down" in text


@pytest.mark.django_db
def test_a_wrong_signature_is_refused(slack: Client) -> None:
    answer = signed(slack, "/slack/commands", command("status"), secret="not-the-secret")
    assert answer.status_code == 401
    assert answer.json() == {"error": "bad X-Slack-Signature"}


@pytest.mark.django_db
def test_a_request_older_than_five_minutes_is_refused(slack: Client) -> None:
    answer = signed(slack, "/slack/commands", command("status"), age=301)
    assert answer.status_code == 401
    assert "more than 5 minutes" in answer.json()["error"]


@pytest.mark.django_db
def test_a_tampered_body_is_refused(slack: Client) -> None:
    timestamp = str(int(time.time()))
    good = signature(SECRET, timestamp, command("status").encode())
    answer = slack.post(
        "/slack/commands",
        data=command("ack 1"),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_SLACK_SIGNATURE=good,
    )
    assert answer.status_code == 401


@pytest.mark.django_db
def test_ack_acts_as_the_linked_user_with_their_permissions(slack: Client, world: Any) -> None:
    incident = firing_incident(world)
    # a viewer may not
    refused = signed(slack, "/slack/commands", command(f"ack {incident.pk}", user="U-VIEW"))
    assert "may not acknowledge" in refused.json()["text"]
    # a deployer of the owning team may
    done = signed(slack, "/slack/commands", command(f"ack #{incident.pk}"))
    assert done.json()["response_type"] == "in_channel"
    incident.refresh_from_db()
    assert incident.state == IncidentState.ACKNOWLEDGED
    assert incident.acknowledged_by == "deployer"


@pytest.mark.django_db
def test_an_unlinked_slack_user_is_told_how_to_get_linked(slack: Client) -> None:
    answer = signed(slack, "/slack/commands", command("status", user="U-NOBODY"))
    assert "link Slack user `T1/U-NOBODY`" in answer.json()["text"]


@pytest.mark.django_db
def test_the_acknowledge_button_acknowledges(slack: Client, world: Any, receiver: Any) -> None:
    incident = firing_incident(world)
    payload = {
        "type": "block_actions",
        "user": {"id": "U-DEP", "team_id": "T1"},
        "team": {"id": "T1"},
        "response_url": receiver.url("/response"),
        "actions": [{"action_id": "signalbox_ack", "value": str(incident.pk)}],
    }
    answer = signed(slack, "/slack/interactions", urlencode({"payload": json.dumps(payload)}))
    assert answer.status_code == 200
    incident.refresh_from_db()
    assert incident.state == IncidentState.ACKNOWLEDGED
    [reply] = receiver.wait_for("/response", 1)
    assert "acknowledged by deployer" in reply.json()["text"]


@pytest.mark.django_db
def test_rollout_commands_call_deployments_or_say_they_are_unavailable(
    slack: Client, world: Any
) -> None:
    answer = signed(slack, "/slack/commands", command("pause 999999"))
    text = answer.json()["text"]
    assert "No rollout `999999`" in text or "Deployments are unavailable" in text


@pytest.mark.django_db
def test_without_a_signing_secret_the_bot_is_off(settings: Any, world: Any) -> None:
    settings.SLACK_SIGNING_SECRET = ""
    answer = Client().post(
        "/slack/commands", data="text=status", content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code == 401
    assert "not configured" in answer.json()["error"]
