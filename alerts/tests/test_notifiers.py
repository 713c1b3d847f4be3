"""Each channel against a real receiver on loopback: the exact payloads it gets."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest

from alerts.choices import ChannelKind, RuleKind, Severity
from alerts.incidents import acknowledge, resolve
from alerts.models import Channel, Incident, Rule
from alerts.tests.conftest import ROUTING_KEY, WEBHOOK_SECRET, deliver_all, service_changed


def page_rule(world: Any) -> Rule:
    Rule.objects.filter(team=world.team).update(enabled=False)
    return Rule.objects.create(
        team=world.team,
        name="checkout down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )


def fire(alerting: Any) -> Incident:
    world = alerting.world
    world.service.runbook_url = "https://runbooks.example/checkout"
    world.service.save()
    page_rule(world)
    service_changed(world, "down", reason="3 of 3 instances failing /health")
    return Incident.objects.get(state="firing")


@pytest.mark.django_db
def test_slack_gets_block_kit_with_state_links_and_an_acknowledge_button(alerting: Any) -> None:
    # given a page routed to Slack
    alerting.route(alerting.slack)
    # when checkout goes down
    incident = fire(alerting)
    deliver_all()
    # then Slack's webhook gets exactly this message
    [request] = alerting.receiver.wait_for("/slack", 1)
    url = f"https://signalbox.example/alerts/incidents/{incident.pk}/"
    assert request.json() == {
        "text": "FIRING: checkout in production is down",
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "emoji": True,
                    "text": "FIRING: checkout in production is down",
                },
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"🔴 *<{url}|checkout in production is down>*"},
                "fields": [
                    {"type": "mrkdwn", "text": "*State*\nfiring"},
                    {"type": "mrkdwn", "text": "*Severity*\npage"},
                    {"type": "mrkdwn", "text": "*Service*\ncheckout"},
                    {"type": "mrkdwn", "text": "*Environment*\nproduction"},
                ],
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*Reason*\n3 of 3 instances failing /health"},
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in Signalbox", "emoji": True},
                        "url": url,
                        "action_id": f"signalbox_open_{incident.pk}",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Runbook", "emoji": True},
                        "url": "https://runbooks.example/checkout",
                        "action_id": f"signalbox_runbook_{incident.pk}",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Acknowledge", "emoji": True},
                        "style": "primary",
                        "action_id": "signalbox_ack",
                        "value": str(incident.pk),
                    },
                ],
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "Signalbox · team payments"}],
            },
        ],
    }


@pytest.mark.django_db
def test_slack_messages_stay_within_block_kit_limits(alerting: Any) -> None:
    from alerts.notifiers.slack import message

    # given 30 incidents of one service with very long titles and reasons
    rule = page_rule(alerting.world)
    incidents = [
        Incident.objects.create(
            rule=rule,
            team=alerting.world.team,
            service=alerting.world.service,
            environment=alerting.world.production,
            subject_type="t",
            subject_id=str(n),
            subject_label="s",
            dedup_key=f"k{n}",
            severity="page",
            state="firing",
            title="T" * 200,
            reason="R" * 5000,
        )
        for n in range(30)
    ]
    # when they are rendered as one message
    document = message("trigger", incidents)
    # then it respects Slack's limits and says how many were left out
    blocks = document["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert "and 20 more" in blocks[-1]["elements"][0]["text"]


@pytest.mark.django_db
def test_pagerduty_gets_trigger_acknowledge_and_resolve_with_one_dedup_key(alerting: Any) -> None:
    alerting.route(alerting.pagerduty)
    incident = fire(alerting)
    deliver_all()
    acknowledge(incident.pk, alerting.world.deployer)
    deliver_all()
    resolve(incident.pk, alerting.world.deployer)
    deliver_all()
    trigger, ack, res = [r.json() for r in alerting.receiver.wait_for("/pagerduty", 3)]
    key = f"signalbox-incident-{incident.pk}"
    url = f"https://signalbox.example/alerts/incidents/{incident.pk}/"
    assert trigger == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": key,
        "payload": {
            "summary": "checkout in production is down",
            "source": "checkout in production",
            "severity": "critical",
            "timestamp": incident.fired_at.isoformat() if incident.fired_at else None,
            "component": "checkout",
            "group": "payments",
            "class": "service_state",
            "custom_details": {
                "reason": "3 of 3 instances failing /health",
                "rule": "checkout down",
                "environment": "production",
                "state": "firing",
            },
        },
        "client": "Signalbox",
        "client_url": url,
        "links": [
            {"href": url, "text": "Incident in Signalbox"},
            {"href": "https://runbooks.example/checkout", "text": "Runbook"},
        ],
    }
    assert ack == {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": key}
    assert res == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": key}


@pytest.mark.django_db
def test_the_webhook_signature_verifies_with_the_shared_secret(alerting: Any) -> None:
    alerting.route(alerting.webhook)
    incident = fire(alerting)
    deliver_all()
    [request] = alerting.receiver.wait_for("/hook", 1)
    # then a receiver recomputes HMAC-SHA256("<timestamp>.<body>") and gets the header
    timestamp = request.headers["X-Signalbox-Timestamp"]
    expected = hmac.new(
        WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.headers["X-Signalbox-Signature"] == f"sha256={expected}"
    body = request.json()
    assert body["action"] == "trigger"
    assert body["team"] == "payments"
    assert request.headers["X-Signalbox-Delivery"] == str(body["delivery"])
    [sent] = body["incidents"]
    assert sent["id"] == incident.pk
    assert sent["state"] == "firing"
    assert sent["service"] == "checkout"
    assert sent["environment"] == "production"
    assert sent["reason"] == "3 of 3 instances failing /health"


@pytest.mark.django_db
def test_email_goes_through_a_real_smtp_server(alerting: Any, smtp: Any) -> None:
    channel = Channel.objects.create(
        team=alerting.world.team,
        name="mail",
        kind=ChannelKind.EMAIL,
        config={"to": ["oncall@example.com"]},
    )
    alerting.route(channel)
    fire(alerting)
    deliver_all()
    [envelope] = smtp.messages
    assert envelope.rcpt_tos == ["oncall@example.com"]
    text = envelope.content.decode()
    assert "Subject: [Signalbox] FIRING: checkout in production is down" in text
    assert "3 of 3 instances failing /health" in text


@pytest.mark.django_db
def test_send_test_reports_what_the_receiver_answered(alerting: Any, api_as: Any) -> None:
    alerting.receiver.respond("/hook", (410, "gone", {}))
    ok = api_as("owner").post(f"/api/v1/alerts/channels/{alerting.slack.pk}/test")
    failed = api_as("owner").post(f"/api/v1/alerts/channels/{alerting.webhook.pk}/test")
    assert ok.json() == {"ok": True, "status_code": 200, "error": ""}
    assert failed.json()["ok"] is False and failed.json()["status_code"] == 410
    assert "Test notification" in alerting.receiver.to("/slack")[0].json()["text"]


@pytest.mark.django_db
def test_channel_secrets_are_encrypted_and_never_shown_in_full(alerting: Any, api_as: Any) -> None:
    from django.db import connection

    answer = api_as("viewer").get(f"/api/v1/alerts/channels/{alerting.pagerduty.pk}").json()
    assert "secret" not in answer
    assert answer["secret_masked"] == "••••••••BCDE"
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM alerts_channel WHERE id = %s", [alerting.pagerduty.pk])
        stored = cursor.fetchone()[0]
    assert ROUTING_KEY not in stored


@pytest.mark.django_db
def test_a_pagerduty_routing_key_must_be_32_characters(api_as: Any, world: Any) -> None:
    answer = api_as("owner").post(
        "/api/v1/alerts/channels",
        {"team": "payments", "name": "pd", "kind": "pagerduty", "secret": "short"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["fields"] == {
        "secret": ["a PagerDuty routing key is 32 letters and digits"]
    }
